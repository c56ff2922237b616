// Sums with fused prologues on the Wasm backend: a sum of an elementwise chain read by nothing else
// (over the last axes, or columns over leading or middle ones) is one step that never materializes
// the chain, with the reference's bits (float64 sums in index order); where it does not apply
// (fewer than eight row sums, rows off four lanes, other readers) the unfused steps give the same bits.

import fc from "fast-check";
import { normal, ops, randomKey } from "../../../mod.ts";
import { assertClose } from "../../helpers.ts";
import { type Node, rewrite, schedule } from "../../../core/graph.ts";
import type { CpuArray } from "../../../core/prim.ts";
import { PRIMS } from "../../../core/prims/mod.ts";
import { fusedPlanner } from "../../../core/wasm/fuse.ts";
import { SimdLoops } from "../../../core/wasm/simd_loop.ts";
import { kernelCtx, onBoth } from "./backend_helpers.ts";

Deno.test("row and column sums of fused chains equal the reference bit for bit, chunked or not, through views", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 70 }),
      fc.integer({ min: 1, max: 3 }),
      fc.integer({ min: 1, max: 40 }),
      fc.nat(1000),
      async (M, H, n4, seed) => {
        const N = 4 * n4 + (seed % 5 === 0 ? 1 : 0); // some rows off four lanes: unfused
        const x = normal(randomKey(seed), [M, H, N]), y = normal(randomKey(seed + 1), [M, H, N]);
        const w = normal(randomKey(seed + 2), [N]), s = normal(randomKey(seed + 3), [M, H, 1]);
        const { wasm, cpu } = await onBoth(() => [
          x.square().sum({ axis: -1 }), // an rmsNorm's sum of squares
          x.mul(w).mul(y).sum({ axis: -1, keepdims: true }), // a row repeated, kept dims
          x.sub(s).mul(y.add(1)).sum({ axis: [1, 2] }), // two trailing axes, a value per row
          x.permute([1, 0, 2]).mul(2).sum({ axis: -1 }), // rows through a permute
          x.transpose().add(1).sum({ axis: -1 }), // a transpose: strided reads
          ops.rmsNorm(x, { weight: w }),
          x.mul(y).sum({ axis: 0 }), // column sums: a weight's gradient over rows
          x.sub(s).square().sum({ axis: [0, 1] }), // two leading axes, inner N
          x.add(w).sum({ axis: 1 }), // the middle axis: outer, reduced and inner
          x.permute([1, 0, 2]).mul(y.permute([1, 0, 2])).sum({ axis: 1 }), // through permutes
        ]);
        wasm.forEach((g, i) => assertClose(g, cpu[i], { rtol: 0, atol: 0, msg: `output ${i} [${M}, ${H}, ${N}]` }));
      },
    ),
    { numRuns: 40 },
  );
});

Deno.test("a row sum of a chain read by nothing else does not materialize the chain; one read twice does", () => {
  const x = normal(randomKey(1), [64, 128]);
  const sq = x.square(), alone = x.mul(3).sum({ axis: -1 }), shared = sq.sum({ axis: -1 }), other = sq.add(1);
  const cols = x.mul(4).sum({ axis: 0 });
  const targets = [alone.node, shared.node, other.node, cols.node];
  const rule = (n: Node) => (ins: readonly CpuArray[], node: Node) =>
    // deno-lint-ignore no-explicit-any
    (PRIMS[n.op as "sum"].cpu as any)(ins, node.src, node, node.params, kernelCtx);
  const steps = fusedPlanner({ simd: new SimdLoops() })(
    schedule(rewrite(targets)),
    new Set(targets),
    rule,
    (_d, n) => new Float32Array(n),
  );
  const computed = new Set(steps.map((s) => s.node));
  if (computed.has(alone.node.src[0])) throw new Error("the chain of a sum was materialized");
  if (computed.has(cols.node.src[0])) throw new Error("the chain of a column sum was materialized");
  if (!computed.has(sq.node)) throw new Error("a chain read twice was not materialized");
  if (steps.find((s) => s.node === alone.node)?.reads.includes(x.node) !== true) {
    throw new Error("the fused sum does not read the chain's input");
  }
});
