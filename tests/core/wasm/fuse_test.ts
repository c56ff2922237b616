// Fused elementwise loops on the Wasm backend: the reference's f32 results (bit for bit but for the
// polynomial exp and tanh, within an ulp), through
// broadcasts, permutes, slices, reshapes, casts and where; compiled once per graph structure.

import fc from "fast-check";
import {
  grad,
  normal,
  ops,
  randomKey,
  readAll,
  resetStats,
  setBackend,
  stats,
  type Tensor,
  tensor,
} from "../../../mod.ts";
import { assertClose } from "../../helpers.ts";
import { apply } from "../../../core/tensor.ts";
import { type Node, rewrite, schedule } from "../../../core/graph.ts";
import type { CpuArray } from "../../../core/prim.ts";
import { PRIMS } from "../../../core/prims/mod.ts";
import { fusedPlanner, type ViewMatmul } from "../../../core/wasm/fuse.ts";
import { kernelCtx, onBoth } from "./backend_helpers.ts";

Deno.test("fused elementwise chains through views equal the reference (bit for bit without exp and tanh)", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 5 }),
      fc.integer({ min: 1, max: 9 }),
      fc.nat(1000),
      async (B, N, seed) => {
        const x = normal(randomKey(seed), [B, 3, N]), bias = normal(randomKey(seed + 1), [N]);
        const { wasm, cpu } = await onBoth(() => {
          const y = x.mul(1.5).add(bias).tanh().mul(x).sub(0.25); // broadcast bias, a chain of five
          const t = y.transpose(0, 2).slice([0, 1], [N, 3]).exp(); // a permuted, sliced view
          const m = x.gt(0).where(x.sqrt(), x.neg().log()).cast("i32").cast("f32"); // where, casts
          const r = y.reshape([B * 3, N]).maximum(0).pow(2); // a reindexing reshape of a fused value
          return [y, t, m, r, y.sum({ axis: 1 })];
        });
        // exp and tanh are polynomials within an ulp of the reference's; what does not use them is exact.
        wasm.forEach((w, i) => {
          const tol = i === 2 ? { rtol: 0, atol: 0 } : { rtol: 1e-6, atol: 1e-7 };
          assertClose(w, cpu[i], { ...tol, msg: `output ${i}` });
        });
      },
    ),
    { numRuns: 25 },
  );
});

Deno.test("gradients through fused chains match the reference, and a repeated step compiles no loop", async () => {
  const w = normal(randomKey(7), [6, 5]), x = normal(randomKey(8), [4, 6]);
  const loss = (p: Tensor) => ops.softmax(ops.silu(x.matmul(p)).add(1)).square().sum();
  const { wasm, cpu } = await onBoth(() => [grad(loss)(w)]);
  assertClose(wasm[0], cpu[0], { rtol: 1e-5, atol: 1e-6 }); // the matmul sums in f32 on wasm
  await setBackend("wasm");
  await grad(loss)(w).data();
  resetStats();
  await grad(loss)(tensor(new Float32Array(30).fill(0.5), { shape: [6, 5] })).data();
  await setBackend("cpu");
  if (stats().shaderModules !== 0) throw new Error(`a repeated step compiled ${stats().shaderModules} loops`);
});

Deno.test("a plan reused for a graph of the same structure computes the new graph's values", async () => {
  // Same structure, different leaves (values and which tensor is which): the cached plan must read
  // each realization's own inputs.
  const f = (x: Tensor, y: Tensor) => [x.mul(y).add(x.transpose().matmul(y)).exp(), y.sub(x).sum({ axis: 0 })];
  const pairs = [1, 2, 3].map((s) => [normal(randomKey(s), [4, 4]), normal(randomKey(s + 10), [4, 4])]);
  const { wasm, cpu } = await onBoth(() => pairs.flatMap(([x, y]) => [f(x, y), f(y, x)]).flat());
  wasm.forEach((w, i) => assertClose(w, cpu[i], { rtol: 1e-5, atol: 1e-6, msg: `output ${i}` }));
  await setBackend("wasm");
  const one = await Promise.all(pairs.map(([x, y]) => readAll(f(x, y))));
  await setBackend("cpu");
  one.forEach((vals, k) => vals.forEach((v, i) => assertClose(v, cpu[4 * k + i], { rtol: 1e-5, atol: 1e-6 })));
});

Deno.test("a repeated training step on Wasm compiles no module and plans nothing new, with its losses the reference's", async () => {
  // Large enough for the Wasm SIMD loops, with JavaScript loops (a permute), softmax and matmuls.
  const x = normal(randomKey(20), [64, 32]), w0 = normal(randomKey(21), [32, 64]).mul(0.2);
  const loss = (w: Tensor) => ops.softmax(ops.silu(x.matmul(w)).transpose().add(1)).square().sum();
  const run = async () => {
    let w = w0;
    const losses: number[] = [], compiled: number[] = [];
    for (let i = 0; i < 3; i++) {
      resetStats();
      const g = grad(loss)(w);
      w = w.sub(g.mul(0.1));
      const [l] = await readAll([loss(w), w]);
      losses.push(l[0]);
      compiled.push(stats().shaderModules);
    }
    return { losses, compiled };
  };
  await setBackend("wasm");
  const wasm = await run();
  await setBackend("cpu");
  const cpu = await run();
  if (wasm.compiled[1] !== 0 || wasm.compiled[2] !== 0) throw new Error(`steps compiled ${wasm.compiled}`);
  assertClose(wasm.losses, cpu.losses, { rtol: 1e-5, atol: 1e-6 });
});

Deno.test("a reshape of memory is planned as that memory, not copied, however many read it", () => {
  // grad aliases each input with a same-shape reshape; two matmuls and a loop read this one.
  const w = normal(randomKey(3), [4, 4]), x = normal(randomKey(4), [3, 4]);
  const alias = apply("reshape", [w], { shape: [4, 4] });
  const targets = [x.matmul(alias).node, alias.matmul(alias).node, alias.mul(2).node];
  const order = schedule(rewrite(targets));
  const mm: ViewMatmul = (_a, _la, _b, _lb, _node, _bIn, out) => (out.fill(1), false);
  const rule = (n: Node) => (ins: readonly CpuArray[], node: Node) =>
    PRIMS[n.op as "reshape"].cpu(ins as [CpuArray], node.src, node, node.params as never, kernelCtx);
  const steps = fusedPlanner({ matmul: mm })(order, new Set(targets), rule, (_d, n) => new Float32Array(n));
  const wValue = new Float32Array(16).fill(3);
  // No step (its readers read w through it) or one that returns w's memory itself.
  const step = steps.find((s) => s.node === alias.node);
  if (step !== undefined && step.run((n) => (n === w.node ? wValue : new Float32Array(n.size))) !== wValue) {
    throw new Error("the reshape was computed into new memory");
  }
});

Deno.test("reshape and permute to what a tensor already is return the tensor itself", () => {
  const x = normal(randomKey(5), [2, 3]);
  if (x.reshape([2, 3]) !== x || x.reshape([-1, 3]) !== x || x.permute([0, 1]) !== x || x.transpose(1, 1) !== x) {
    throw new Error("an identity view made a node");
  }
  if (x.reshape([3, 2]) === x || x.permute([1, 0]) === x) throw new Error("a real view returned its input");
});

Deno.test("a view of memory that only loops read is inlined into each, not materialized, with the reference's bits", async () => {
  const x = normal(randomKey(6), [5, 1]), y = normal(randomKey(7), [5, 6]);
  const make = () => {
    const wide = x.broadcastTo([5, 6]); // read by two loops, one of them a root of its own
    return [wide.mul(y).exp(), wide.add(y).sqrt(), wide.sub(y)];
  };
  const targets = make().map((t) => t.node);
  const order = schedule(rewrite(targets));
  const rule = (n: Node) => (ins: readonly CpuArray[], node: Node) =>
    PRIMS[n.op as "broadcast"].cpu(ins as [CpuArray], node.src, node, node.params as never, kernelCtx);
  const steps = fusedPlanner()(order, new Set(targets), rule, (_d, n) => new Float32Array(n));
  const planned = steps.map((s) => s.node.op);
  if (planned.includes("broadcast")) throw new Error(`the broadcast was materialized: ${planned}`);
  const { wasm, cpu } = await onBoth(make);
  wasm.forEach((w, i) => assertClose(w, cpu[i], { rtol: i === 0 ? 1e-6 : 0, atol: 0, msg: `output ${i}` }));
});

Deno.test("a broadcast weight read by several matmuls is read through by each, with the reference's values", async () => {
  // [B, T, D] activations times a [D, N] weight, forward and backward: the weight's broadcast over
  // the batch is read by the forward product and (transposed) by the input's gradient.
  const w = normal(randomKey(8), [16, 12]), x = normal(randomKey(9), [3, 10, 16]);
  const loss = (p: Tensor, v: Tensor) => v.matmul(p).tanh().sum();
  const make = () => [x.matmul(w), ...(grad(loss, { argnums: [0, 1] })(w, x) as unknown as Tensor[])];
  const targets = make().map((t) => t.node);
  const order = schedule(rewrite(targets));
  const rule = (n: Node) => (ins: readonly CpuArray[], node: Node) =>
    PRIMS[n.op as "broadcast"].cpu(ins as [CpuArray], node.src, node, node.params as never, kernelCtx);
  const mm: ViewMatmul = (_a, _la, _b, _lb, _node, _bIn, out) => (out.fill(1), false);
  const steps = fusedPlanner({ matmul: mm })(order, new Set(targets), rule, (_d, n) => new Float32Array(n));
  const copied = steps.filter((s) => s.node.op === "broadcast" && s.node.src[0].size === w.size);
  if (copied.length > 0) throw new Error(`the weight's broadcast was materialized ${copied.length} times`);
  const { wasm, cpu } = await onBoth(make);
  wasm.forEach((g, i) => assertClose(g, cpu[i], { rtol: 1e-5, atol: 1e-6, msg: `output ${i}` }));
});
