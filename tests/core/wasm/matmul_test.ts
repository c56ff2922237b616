// The Wasm SIMD matmul against a float64 reference, on shapes that exercise every edge of its tiles.

import assert from "node:assert/strict";
import fc from "fast-check";
import { normal, randomKey, readAll, setBackend } from "../../../mod.ts";
import { WasmMatmul } from "../../../core/wasm/matmul.ts";
import { createWasm } from "../../../core/wasm/mod.ts";
import { fusedPlanner, type ViewMatmul } from "../../../core/wasm/fuse.ts";
import { rewrite, schedule } from "../../../core/graph.ts";
import type { CpuArray } from "../../../core/prim.ts";
import { on } from "./backend_helpers.ts";
import { assertClose } from "../../helpers.ts";

// f32 products summed in f32 (an FMA chain where the runtime has relaxed SIMD) against float64 sums:
// the error grows like sqrt(K) ulps of the terms.
const tol = (K: number) => ({ rtol: 1e-5 * Math.sqrt(K + 1), atol: 1e-6 * Math.sqrt(K + 1) });

function reference(a: Float32Array, b: Float32Array, [Z, M, K, N]: readonly number[]): Float64Array {
  const o = new Float64Array(Z * M * N);
  for (let z = 0; z < Z; z++) {
    for (let i = 0; i < M; i++) {
      for (let k = 0; k < K; k++) {
        const x = a[(z * M + i) * K + k];
        for (let j = 0; j < N; j++) o[(z * M + i) * N + j] += x * b[(z * K + k) * N + j];
      }
    }
  }
  return o;
}

Deno.test("the Wasm matmul kernel equals float64 sums for sizes off the 4 x 8 tile, and for empty ones", async () => {
  const mm = await WasmMatmul.create();
  const dim = fc.oneof(fc.constantFrom(0, 1, 3, 4, 5, 7, 8, 9, 16, 17), fc.integer({ min: 1, max: 40 }));
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 3 }), dim, dim, dim, fc.integer(), (Z, M, K, N, seed) => {
      let s = seed;
      const rand = () => ((s = (s * 1103515245 + 12345) | 0) >>> 8) / 2 ** 24 - 0.5;
      const a = Float32Array.from({ length: Z * M * K }, rand), b = Float32Array.from({ length: Z * K * N }, rand);
      const out = new Float32Array(Z * M * N).fill(NaN); // every element must be written
      mm.run(a, b, out, [Z, M, K, N]);
      assertClose(out, reference(a, b, [Z, M, K, N]), { ...tol(K), msg: `[${Z}, ${M}, ${K}, ${N}]` });
    }),
    { numRuns: 150 },
  );
});

Deno.test("the matmul gives the same bits on 1, 2 and 3 threads (each output is one thread's)", async () => {
  const make = (threads: number) => WasmMatmul.create({ threads, threadedWork: 0 }); // every product shared
  const [one, two, three] = await Promise.all([1, 2, 3].map(make));
  try {
    if (two.threads !== 2 || three.threads !== 3) throw new Error(`threads: ${two.threads}, ${three.threads}`);
    for (const [Z, M, K, N] of [[1, 37, 70, 61], [2, 5, 9, 200], [1, 64, 128, 8], [3, 1, 1, 17]]) {
      const a = Float32Array.from({ length: Z * M * K }, (_, i) => Math.sin(i)),
        b = Float32Array.from({ length: Z * K * N }, (_, i) => Math.cos(i));
      const outs = [one, two, three].map((mm) => {
        const o = new Float32Array(Z * M * N);
        mm.run(a, b, o, [Z, M, K, N]);
        return o;
      });
      assertClose(outs[1], outs[0], { rtol: 0, atol: 0, msg: `2 threads [${Z}, ${M}, ${K}, ${N}]` });
      assertClose(outs[2], outs[0], { rtol: 0, atol: 0, msg: `3 threads [${Z}, ${M}, ${K}, ${N}]` });
      assertClose(outs[0], reference(a, b, [Z, M, K, N]), { ...tol(K), msg: `[${Z}, ${M}, ${K}, ${N}]` });
    }
  } finally {
    for (const mm of [one, two, three]) mm.close();
  }
});

Deno.test("matmuls on the Wasm backend match the reference, batched and transposed", async () => {
  const a = normal(randomKey(1), [2, 37, 70]), b = normal(randomKey(2), [2, 70, 19]);
  const make = () => [a.matmul(b), a.transpose().matmul(a), b.transpose().matmul(a.transpose())];
  await setBackend("wasm");
  const got = await readAll(make());
  await setBackend("cpu", { precision: "f64" });
  const want = await readAll(make());
  await setBackend("cpu");
  got.forEach((g, i) => assertClose(g, want[i], { ...tol(70), msg: `product ${i}` }));
});

Deno.test("matmuls read operands through permutes, slices and broadcasts as the reference computes them", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 3 }),
      fc.constantFrom(1, 3, 4, 5, 8, 9, 17),
      fc.constantFrom(1, 2, 4, 7, 8, 33),
      fc.constantFrom(1, 3, 8, 9, 16),
      fc.nat(1000),
      async (Z, M, K, N, seed) => {
        const x = normal(randomKey(seed), [K + 2, Z, M]), y = normal(randomKey(seed + 1), [Z, N, K]);
        const row = normal(randomKey(seed + 2), [K]);
        const make = () => {
          const a = x.slice([1, 0, 0], [K + 1, Z, M]).permute([1, 2, 0]); // [Z, M, K], sliced and permuted
          const b = y.transpose(); // [Z, K, N]
          const c = row.reshape([1, 1, K]).broadcastTo([Z, M, K]); // every row the same
          return [a.matmul(b), c.matmul(b), a.matmul(y.mul(2).transpose()), a.transpose().transpose().matmul(b)];
        };
        await setBackend("wasm");
        const got = await readAll(make());
        await setBackend("cpu", { precision: "f64" });
        const want = await readAll(make());
        await setBackend("cpu");
        got.forEach((g, i) => assertClose(g, want[i], { ...tol(K), msg: `product ${i} [${Z}, ${M}, ${K}, ${N}]` }));
      },
    ),
    { numRuns: 40 },
  );
});

Deno.test("a weight multiplied in many realizations, as is and transposed, gives the reference's products", async () => {
  // The second realization keeps the weight's packed panels and later ones reuse them: each must
  // still see its own left operand, and the transposed use its own packing.
  const w = normal(randomKey(3), [24, 24]);
  const xs = [1, 2, 3, 4].map((s) => normal(randomKey(10 + s), [5, 24]));
  const uses = [(x: typeof w) => x.matmul(w), (x: typeof w) => x.matmul(w.transpose())];
  const all = async () => {
    const out: ArrayLike<number>[] = [];
    for (const use of [...uses, ...uses]) for (const x of xs) out.push(...(await readAll([use(x)])));
    return out;
  };
  await setBackend("wasm");
  const got = await all();
  await setBackend("cpu", { precision: "f64" });
  const want = await all();
  await setBackend("cpu");
  got.forEach((g, i) => assertClose(g, want[i], { ...tol(24), msg: `product ${i}` }));
});

Deno.test("batches of few-row products read in place from the heap match the reference, B as is and transposed", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 2, max: 40 }),
      fc.integer({ min: 1, max: 8 }),
      fc.integer({ min: 1, max: 40 }),
      fc.integer({ min: 1, max: 40 }),
      fc.nat(1000),
      async (Z, M, K, N, seed) => {
        // Operands computed by loops (so in the heap): B by rows, and B's transpose (the dot kernel).
        const make = () => {
          const a = normal(randomKey(seed), [Z, M, K]).mul(2), b = normal(randomKey(seed + 1), [Z, K, N]).mul(2);
          const bt = normal(randomKey(seed + 2), [Z, N, K]).mul(2);
          return [a.matmul(b), a.matmul(bt.transpose())];
        };
        await setBackend("wasm");
        const got = await readAll(make());
        await setBackend("cpu");
        const want = await readAll(make());
        got.forEach((g, i) => assertClose(g, want[i], { rtol: 1e-5, atol: 1e-5, msg: `${i}: ${Z} x ${M}x${K}x${N}` }));
      },
    ),
    { numRuns: 40 },
  );
});

Deno.test("a batch times one B (a weight) equals the 2-D product of its rows bit for bit", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 2, max: 5 }),
      fc.integer({ min: 9, max: 40 }),
      fc.integer({ min: 1, max: 40 }),
      fc.integer({ min: 1, max: 40 }),
      fc.nat(1000),
      async (Z, M, K, N, seed) => {
        const x = normal(randomKey(seed), [Z, M, K]), w = normal(randomKey(seed + 1), [K, N]);
        await setBackend("wasm");
        const [batched, flat] = await readAll([x.mul(2).matmul(w), x.mul(2).reshape([Z * M, K]).matmul(w)]);
        assertClose(batched, flat, { rtol: 0, atol: 0, msg: `${Z} x ${M}x${K}x${N}` });
      },
    ),
    { numRuns: 30 },
  );
});

Deno.test("a product plus a value of its shape is one epilogue-fused step, with a separate add's bits", async () => {
  // The plan: no step of its own for the product, whose step reads the addend.
  const x = normal(randomKey(1), [12, 20]), w = normal(randomKey(2), [20, 16]), r = normal(randomKey(3), [12, 16]);
  const sum = r.add(x.matmul(w)), targets = [sum.node];
  const order = schedule(rewrite(targets));
  let given: CpuArray | undefined;
  const mm: ViewMatmul = (_a, _la, _b, _lb, _node, _bIn, out, addend) => (given = addend, out.fill(0), false);
  const steps = fusedPlanner({ matmul: mm })(
    order,
    new Set(targets),
    () => () => new Float32Array(0),
    (_d, n) => new Float32Array(n),
  );
  if (steps.some((s) => s.node.op === "matmul")) throw new Error("the product was planned as a step of its own");
  const step = steps.find((s) => s.node === sum.node)!;
  step.run((n) => (n === r.node ? Float32Array.of(7) : new Float32Array(n.size)));
  if (given?.[0] !== 7) throw new Error("the fused step was not given the addend");
  // The values: fused (heap, kernel epilogue; no heap, added after; split on two threads) against
  // the product kept as an output of its own, whose add is then a separate loop.
  const one = (await createWasm({ threads: 1 }))!, noHeap = (await createWasm({ threads: 1, heap: false }))!;
  const two = (await createWasm({ threads: 2, threadedWork: 1 }))!;
  try {
    await fc.assert(
      fc.asyncProperty(
        // Any sizes, and sizes whose C fills whole 4 x 8 tiles (written in place: the kernel adds).
        fc.oneof(
          fc.tuple(
            fc.integer({ min: 1, max: 3 }),
            fc.integer({ min: 1, max: 40 }),
            fc.integer({ min: 1, max: 30 }),
            fc.integer({ min: 1, max: 40 }),
          ),
          fc.tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 3, max: 12 }), fc.integer({ min: 1, max: 30 }))
            .chain(([Z, m4, K]) => fc.integer({ min: 1, max: 6 }).map((n8) => [Z, 4 * m4, K, 8 * n8] as const)),
        ),
        fc.nat(1000),
        async ([Z, M, K, N], seed) => {
          const make = (kept: boolean) => {
            const a = normal(randomKey(seed), [Z, M, K]).mul(2), b = normal(randomKey(seed + 1), [Z, K, N]).mul(2);
            const d = normal(randomKey(seed + 2), [Z, M, N]).mul(3), p = a.matmul(b);
            // d is read twice, so it is computed into memory (a residual is): the add's addend.
            return kept ? [d.add(p), d.sum(), p] : [p.add(d), d.sum()];
          };
          const want = (await on(one, () => readAll(make(true))))[0];
          for (const [name, b] of [["heap", one], ["no heap", noHeap], ["two threads", two]] as const) {
            const got = (await on(b, () => readAll(make(false))))[0];
            assertClose(got, want, { rtol: 0, atol: 0, msg: `${name}: ${Z} x ${M}x${K}x${N}` });
          }
        },
      ),
      { numRuns: 40 },
    );
  } finally {
    for (const b of [one, noHeap, two]) (b.matmul.close(), b.scan.close(), b.loops.close());
  }
});

Deno.test("operands in the heap read through head splits, merges and column slices are packed in Wasm, with the bits of contiguous copies", async () => {
  const one = (await createWasm({ threads: 1 }))!, two = (await createWasm({ threads: 2, threadedWork: 4096 }))!;
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 3 }),
      fc.constantFrom(1, 2, 4),
      fc.integer({ min: 1, max: 5 }),
      fc.constantFrom(8, 16, 24),
      fc.nat(1000),
      async (B, H, t4, D, seed) => {
        // Whole strips and panels (T scores a row): what the Wasm packers read in place in the heap.
        const T = 8 * t4, W = H * D;
        // Computed values (so they lie in the heap), split into heads [B, H, T, D] through reshape and permute.
        const make = (copy: boolean) => {
          const x = normal(randomKey(seed), [B * T, W]).mul(1), y = normal(randomKey(seed + 1), [B * T, W]).mul(1);
          const heads = (v: typeof x) => {
            const h = v.reshape([B, T, H, D]).permute([0, 2, 1, 3]);
            return copy ? h.add(0) : h; // add(0): a loop writes the heads contiguously
          };
          const q = heads(x), k = heads(y);
          const s = q.matmul(k.transpose()); // B read through its transpose's rows, T x T
          const o = s.matmul(k); // B's rows, D apart by H
          const merged = o.permute([0, 2, 1, 3]).reshape([B * T, W]);
          const cols = x.slice([0, 0], [B * T, D]); // a column slice: rows W apart
          const m2 = copy ? cols.add(0) : cols;
          return [s, o, merged.matmul(normal(randomKey(seed + 2), [W, 8])), m2.transpose().matmul(y)];
        };
        for (const b of [one, two]) {
          const before = b.matmul.hostPacks;
          const got = await on(b, () => readAll(make(false)));
          assert.equal(b.matmul.hostPacks, before, `${b.matmul.threads} threads: packed on the host`);
          const want = await on(b, () => readAll(make(true)));
          got.forEach((g, i) =>
            assertClose(g, want[i], {
              rtol: 0,
              atol: 0,
              msg: `product ${i}, ${b.matmul.threads} threads [${B}, ${H}, ${T}, ${D}]`,
            })
          );
        }
      },
    ),
    { numRuns: 25 },
  );
  one.matmul.close();
  two.matmul.close();
});
