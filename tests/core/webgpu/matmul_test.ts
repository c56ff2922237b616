// The matmul kernel against the CPU reference for every operand layout it specializes on.

import fc from "fast-check";
import { normal, randomKey, type Tensor } from "../../../mod.ts";
import { assertClose } from "../../helpers.ts";
import { gpuTest, onBoth } from "./gpu.ts";

type Layout = "nn" | "nt" | "tn" | "tt";

function operands(
  layout: Layout,
  batch: readonly number[],
  m: number,
  k: number,
  n: number,
  seed: number,
): [Tensor, Tensor] {
  const [ka, kb] = [randomKey(seed), randomKey(seed + 1)];
  // A transposed operand is stored the other way round and viewed through a transpose.
  const a = layout[0] === "t" ? normal(ka, [...batch, k, m]).transpose() : normal(ka, [...batch, m, k]);
  const b = layout[1] === "t" ? normal(kb, [...batch, n, k]).transpose() : normal(kb, [...batch, k, n]);
  return [a, b];
}

gpuTest("matmul matches the CPU for every layout, odd sizes and batches", async () => {
  const dim = fc.integer({ min: 1, max: 13 });
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom<Layout>("nn", "nt", "tn", "tt"),
      fc.constantFrom([], [2], [2, 3]),
      dim,
      fc.oneof(dim, fc.constantFrom(4, 8, 12)),
      fc.oneof(dim, fc.constantFrom(4, 8, 16)),
      fc.nat(1000),
      async (layout, batch, m, k, n, seed) => {
        const { gpu, cpu } = await onBoth(() => [operands(layout, batch, m, k, n, seed)].map(([a, b]) => a.matmul(b)));
        // Sums of k <= 16 products of unit normals in f32: 1e-5 relative plus a small absolute floor.
        assertClose(gpu[0], cpu[0], { rtol: 1e-5, atol: 1e-5, msg: `${layout} ${batch} ${m}x${k}x${n}` });
      },
    ),
    { numRuns: 40 },
  );
});

gpuTest("matmul reads broadcast and sliced operands without copies", async () => {
  const w = normal(randomKey(5), [8, 12]);
  const x = normal(randomKey(6), [3, 5, 16]);
  const { gpu, cpu } = await onBoth(() => [
    x.slice([0, 0, 4], [3, 5, 12]).matmul(w), // sliced A, B broadcast over the batch
    x.slice([1, 1, 0], [2, 5, 16]).transpose().matmul(x.slice([1, 1, 0], [2, 5, 16])), // A^T A of a slice
  ]);
  gpu.forEach((g, i) => assertClose(g, cpu[i], { rtol: 1e-5, atol: 1e-5, msg: `case ${i}` }));
});

gpuTest("a large matmul with a long contraction matches the CPU", async () => {
  const { gpu, cpu } = await onBoth(() => {
    const a = normal(randomKey(7), [67, 300]), b = normal(randomKey(8), [300, 45]);
    return [a.matmul(b), a.matmul(b.transpose().transpose())];
  });
  // 300-term f32 sums of unit normals: values ~17, rounding differences ~1e-5 relative.
  gpu.forEach((g, i) => assertClose(g, cpu[i], { rtol: 1e-4, atol: 1e-4, msg: `case ${i}` }));
});

gpuTest("a matmul epilogue that reads an operand again keeps buffers apart", async () => {
  // x is bound twice in the fused kernel (as vec4 rows for the product, as floats for the add);
  // its buffer must go back to the pool once, or later intermediates of its size would share it.
  const { gpu, cpu } = await onBoth(() => {
    const x = normal(randomKey(30), [8, 8]).exp();
    const y = x.matmul(normal(randomKey(31), [8, 8])).add(x);
    const p = y.sin(), q = y.cos();
    const r = p.matmul(q.transpose()).add(p.mul(q));
    return [y, r, r.matmul(p)];
  });
  gpu.forEach((g, i) => assertClose(g, cpu[i], { rtol: 1e-4, atol: 1e-4, msg: `output ${i}` }));
});

gpuTest("a matmul followed by a bias and an activation is one dispatch", async () => {
  const { ops, realize, resetStats, setBackend, stats } = await import("../../../mod.ts");
  await setBackend("webgpu");
  const x = normal(randomKey(40), [16, 12]), w = normal(randomKey(41), [12, 20]), b = normal(randomKey(42), [20]);
  await realize([x.add(0), w.add(0), b.add(0)]); // uploads the leaves
  resetStats();
  const y = ops.silu(x.matmul(w).add(b)); // silu(z) uses z twice, both inside the same kernel
  await realize([y]);
  if (stats().dispatches !== 1) throw new Error(`expected 1 dispatch, got ${stats().dispatches}`);
  const { gpu, cpu } = await onBoth(() => [ops.silu(x.matmul(w).add(b))]);
  assertClose(gpu[0], cpu[0], { rtol: 1e-5, atol: 1e-5 });
});

gpuTest("large products (16 rows per thread) match the CPU in every layout", async () => {
  for (const layout of ["nn", "nt", "tn", "tt"] as Layout[]) {
    const { gpu, cpu } = await onBoth(() => [operands(layout, [], 1024, 20, 1030, 70)].map(([a, b]) => a.matmul(b)));
    assertClose(gpu[0], cpu[0], { rtol: 1e-5, atol: 1e-5, msg: layout });
  }
});
