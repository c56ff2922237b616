// A batched product summed over its batch (a weight's gradient from [B, T, D] activations) is one
// product on the Wasm backend, its contraction running on through the batch: the planner gives the
// matmul the folded sizes where the operands' batch strides continue their contraction's, and
// leaves the product and the sum apart where they do not; values match the float64 reference.

import assert from "node:assert/strict";
import fc from "fast-check";
import { grad, normal, randomKey, readAll, setBackend, type Tensor } from "../../../mod.ts";
import { assertClose } from "../../helpers.ts";
import { type Node, rewrite, schedule } from "../../../core/graph.ts";
import type { CpuArray } from "../../../core/prim.ts";
import { fusedPlanner, type MatmulDims, type ViewMatmul } from "../../../core/wasm/fuse.ts";
import { createWasm } from "../../../core/wasm/mod.ts";
import { on } from "./backend_helpers.ts";

// The sizes each planned matmul was given, and the ops of the planned steps' nodes (a folded sum's
// step is the sum's, its product none of its own).
function planned(targets: readonly Tensor[]): { dims: MatmulDims[]; ops: string[] } {
  const dims: MatmulDims[] = [];
  const mm: ViewMatmul = (_a, _la, _b, _lb, d, _bIn, out) => (dims.push(d), out.fill(0), false);
  const rule = (_n: Node) => (_ins: readonly CpuArray[], node: Node) => new Float32Array(node.size);
  const nodes = targets.map((t) => t.node), order = schedule(rewrite(nodes));
  const steps = fusedPlanner({ matmul: mm })(order, new Set(nodes), rule, (_d, n) => new Float32Array(n));
  for (const s of steps) s.run((n) => new Float32Array(n.size));
  return { dims, ops: steps.map((s) => s.node.op) };
}

Deno.test("a product summed over its batch is planned as one product over the batch's contraction", () => {
  const x = normal(randomKey(1), [3, 5, 4]), g = normal(randomKey(2), [3, 5, 6]);
  // x^T g per batch element, summed: the weight gradient of x @ w.
  const folded = planned([x.transpose().matmul(g).sum({ axis: 0 })]);
  assert.deepEqual(folded.dims, [{ batch: [1], M: 4, K: 15, N: 6 }]);
  assert.ok(!folded.ops.includes("matmul"), `steps ${folded.ops}`); // the sum's step computes the product
  // Two batch axes fold too.
  const x4 = normal(randomKey(3), [2, 3, 5, 4]), g4 = normal(randomKey(4), [2, 3, 5, 6]);
  assert.deepEqual(planned([x4.transpose().matmul(g4).sum({ axis: [0, 1] })]).dims, [{
    batch: [1],
    M: 4,
    K: 30,
    N: 6,
  }]);
  // A batch axis whose stride does not continue the contraction's (x's batch is its middle axis),
  // a sum over part of the batch, and a product read elsewhere too stay a product and a sum.
  const xt = normal(randomKey(5), [5, 3, 4]).permute([1, 2, 0]); // [3, 4, 5], batch stride 4
  const apart = [
    xt.matmul(g).sum({ axis: 0 }),
    x4.transpose().matmul(g4).sum({ axis: 0 }),
  ];
  for (const t of apart) {
    const p = planned([t]);
    assert.ok(p.dims.every((d) => d.batch[0] !== 1 || d.batch.length !== 1), `folded: ${JSON.stringify(p.dims)}`);
    assert.ok(p.ops.includes("matmul") && p.ops.includes("sum"), `steps ${p.ops}`);
  }
  const shared = x.transpose().matmul(g);
  assert.ok(planned([shared.sum({ axis: 0 }), shared.mul(2)]).ops.includes("matmul"));
});

Deno.test("folded weight gradients match the float64 reference, on one and two threads", async () => {
  const one = (await createWasm({ threads: 1 }))!, two = (await createWasm({ threads: 2, threadedWork: 1 }))!;
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 4 }),
      fc.integer({ min: 1, max: 40 }),
      fc.integer({ min: 1, max: 24 }),
      fc.integer({ min: 1, max: 20 }),
      fc.nat(1000),
      async (B, T, D, N, seed) => {
        const x = normal(randomKey(seed), [B, T, D]), w = normal(randomKey(seed + 1), [D, N]);
        const y = normal(randomKey(seed + 2), [B, T, N]);
        // The gradient of w through a [B, T, D] @ [D, N] product: autodiff sums one product per batch element.
        const make = () => grad((w: Tensor) => x.matmul(w).mul(y).sum())(w) as Tensor;
        const got = [await on(one, () => readAll([make()])), await on(two, () => readAll([make()]))];
        await setBackend("cpu", { precision: "f64" });
        const [want] = await readAll([make()]);
        await setBackend("cpu");
        const K = B * T, tol = { rtol: 1e-5 * Math.sqrt(K), atol: 1e-5 * Math.sqrt(K) };
        got.forEach(([g], i) =>
          assertClose(g, want, { ...tol, msg: `${i + 1} threads [${B}, ${T}, ${D}] x [${D}, ${N}]` })
        );
      },
    ),
    { numRuns: 25 },
  );
  one.matmul.close();
  two.matmul.close();
});
