// The in-place few-row matmul (B read where it lies, no packed copy) against float64 sums, and the
// packed-copy cache's budget.

import assert from "node:assert/strict";
import fc from "fast-check";
import { normal, randomKey, readAll, setBackend } from "../../../mod.ts";
import { type Layout, WasmMatmul } from "../../../core/wasm/matmul.ts";
import { CHUNK, FEW_ROWS, inPlaceLayout } from "../../../core/wasm/few_rows.ts";
import { createWasm } from "../../../core/wasm/mod.ts";
import { assertClose } from "../../helpers.ts";
import { on } from "./backend_helpers.ts";

// f32 products summed in f32 against float64 sums: the error grows like sqrt(K) ulps of the terms.
const tol = (K: number) => ({ rtol: 1e-5 * Math.sqrt(K + 1), atol: 1e-6 * Math.sqrt(K + 1) });

// Element (z, i, k) of A and (z, k, j) of B through their layouts, summed in float64.
function reference(a: Float32Array, la: Layout, b: Float32Array, lb: Layout, [Z, M, K, N]: readonly number[]) {
  const o = new Float64Array(Z * M * N);
  const [az, ar, ac] = la.strides, [bz, br, bc] = lb.strides;
  for (let z = 0; z < Z; z++) {
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += a[la.c + z * az + i * ar + k * ac] * b[lb.c + z * bz + k * br + j * bc];
        o[(z * M + i) * N + j] = s;
      }
    }
  }
  return o;
}

const rand = (seed: number) => {
  let s = seed;
  return () => ((s = (s * 1103515245 + 12345) | 0) >>> 8) / 2 ** 24 - 0.5;
};

Deno.test("few-row products read B in place, row-major or transposed, batched, with padded strides", async () => {
  const mm = await WasmMatmul.create();
  const dim = fc.oneof(fc.constantFrom(1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 33), fc.integer({ min: 1, max: 70 }));
  try {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 1, max: FEW_ROWS }),
        dim,
        dim,
        fc.boolean(),
        fc.boolean(),
        fc.nat(3),
        fc.integer(),
        (Z, M, K, N, bT, aT, pad, seed) => {
          const r = rand(seed);
          // B stored [Z, K, N + pad] (rows) or [Z, N, K + pad] (transposed); A [Z, M, K] or [Z, K, M].
          const bRow = bT ? K + pad : N + pad, bLen = Z * (bT ? N : K) * bRow + 2;
          const b = Float32Array.from({ length: bLen }, r), a = Float32Array.from({ length: Z * M * K }, r);
          const lb: Layout = { c: 1, strides: bT ? [N * bRow, 1, bRow] : [K * bRow, bRow, 1] };
          const la: Layout = { c: 0, strides: aT ? [M * K, 1, M] : [M * K, K, 1] };
          assert.equal(inPlaceLayout(K, N, lb.strides[1], lb.strides[2]) !== null, true);
          const out = new Float32Array(Z * M * N).fill(NaN); // every element must be written
          mm.run(a, b, out, [Z, M, K, N], { a: la, b: lb, batch: [Z] }, { keepPackedB: true });
          const want = reference(a, la, b, lb, [Z, M, K, N]);
          assertClose(out, want, { ...tol(K), msg: `[${Z}, ${M}, ${K}, ${N}] bT ${bT} aT ${aT} pad ${pad}` });
        },
      ),
      { numRuns: 300 },
    );
    assert.equal(mm.packedBytes, 0);
  } finally {
    mm.close();
  }
});

Deno.test("few-row products of B larger than one chunk (both layouts) equal float64 sums", async () => {
  const mm = await WasmMatmul.create();
  try {
    for (const [M, K, N] of [[1, 3, CHUNK + 5], [3, CHUNK / 4 + 3, 9], [8, 700, 211], [5, 2, 40000]]) {
      const r = rand(M * K + N);
      const a = Float32Array.from({ length: M * K }, r), b = Float32Array.from({ length: K * N }, r);
      for (const bT of [false, true]) {
        const lb: Layout = { c: 0, strides: bT ? [K * N, 1, K] : [K * N, N, 1] };
        const la: Layout = { c: 0, strides: [M * K, K, 1] };
        const out = new Float32Array(M * N).fill(NaN);
        mm.run(a, b, out, [1, M, K, N], { a: la, b: lb, batch: [1] }, { keepPackedB: true });
        assertClose(out, reference(a, la, b, lb, [1, M, K, N]), { ...tol(K), msg: `[${M}, ${K}, ${N}] bT ${bT}` });
      }
    }
    assert.equal(mm.packedBytes, 0);
  } finally {
    mm.close();
  }
});

Deno.test("decoding-sized products on the backend keep no packed copy of the weight; larger ones keep one within the budget", async () => {
  const b = (await createWasm({ threads: 1 }))!;
  const w = normal(randomKey(1), [40, 24]), x1 = normal(randomKey(2), [1, 40]), x16 = normal(randomKey(3), [16, 40]);
  const make =
    () => [x1.matmul(w), x1.matmul(w.transpose().transpose()), normal(randomKey(4), [1, 24]).matmul(w.transpose())];
  const got = await on(b, async () => {
    const outs = [];
    for (let i = 0; i < 3; i++) outs.push(await readAll(make()));
    assert.equal(b.matmul.packedBytes, 0, "M = 1 products packed a copy of the weight");
    for (let i = 0; i < 2; i++) await readAll([x16.matmul(w)]);
    return outs;
  });
  // The counter counts: 16 rows take the packed path, and the second use keeps w's panels.
  assert.equal(b.matmul.packedBytes, 4 * 40 * 24);
  b.matmul.close();
  await setBackend("cpu", { precision: "f64" });
  const want = await readAll(make());
  await setBackend("cpu");
  for (const outs of got) outs.forEach((g, i) => assertClose(g, want[i], { ...tol(40), msg: `product ${i}` }));
});

Deno.test("packed copies stop being kept once they would exceed the budget", async () => {
  const mm = await WasmMatmul.create({ packedBudget: 3 * 4 * 16 * 16 });
  try {
    const a = Float32Array.from({ length: 32 * 16 }, rand(5));
    const ws = Array.from({ length: 5 }, (_, i) => Float32Array.from({ length: 16 * 16 }, rand(10 + i)));
    for (const w of [...ws, ...ws]) {
      mm.run(a, w, new Float32Array(32 * 16), [1, 32, 16, 16], undefined, { keepPackedB: true });
    }
    assert.equal(mm.packedBytes, 3 * 4 * 16 * 16); // three of the five fit
    const out = new Float32Array(32 * 16);
    mm.run(a, ws[4], out, [1, 32, 16, 16], undefined, { keepPackedB: true });
    const l = { c: 0, strides: [0, 16, 1] };
    assertClose(out, reference(a, l, ws[4], l, [1, 32, 16, 16]), tol(16));
  } finally {
    mm.close();
  }
});
