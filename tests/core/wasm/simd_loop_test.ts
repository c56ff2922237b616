// Fused loops in Wasm SIMD (rows a multiple of four, 1024 elements or more): every kind of read (the
// output's layout, one value, a repeated row, a value per row, a repeated block of rows, rows found
// through a permute or slice that keeps the last axis, elements a step apart through a transpose), bool masks, comparisons (written as bools
// too, of f32 or i32 values) and every arithmetic operation equal the reference bit for bit; exp and
// tanh and float64 constants within a few ulps; loops that only copy or fill equal it for every
// dtype; none recompiles.

import assert from "node:assert/strict";
import fc from "fast-check";
import {
  normal,
  ops,
  randint,
  randomKey,
  readAll,
  resetStats,
  setBackend,
  stats,
  type Tensor,
  tensor,
} from "../../../mod.ts";
import { SIMD_LOOP_MIN } from "../../../core/wasm/simd_loop.ts";
import { createWasm } from "../../../core/wasm/mod.ts";
import { on, onBoth } from "./backend_helpers.ts";
import { assertClose } from "../../helpers.ts";

// Shapes [B, M, N] with N a multiple of 4 and at least SIMD_LOOP_MIN elements (and some below).
const shapes = fc.tuple(
  fc.integer({ min: 1, max: 3 }),
  fc.integer({ min: 1, max: 70 }),
  fc.integer({ min: 1, max: 24 }),
)
  .map(([B, M, n4]) => [B, M, 4 * n4] as const);

Deno.test("Wasm SIMD loops equal the reference bit for bit on every kind of read", async () => {
  await fc.assert(
    fc.asyncProperty(shapes, fc.nat(1000), async ([B, M, N], seed) => {
      const x = normal(randomKey(seed), [B, M, N]), y = normal(randomKey(seed + 1), [B, M, N]);
      const row = normal(randomKey(seed + 2), [N]), col = normal(randomKey(seed + 3), [B, M, 1]);
      const s = tensor(Float32Array.of(1.25));
      const { wasm, cpu } = await onBoth(() => [
        x.mul(row).add(s).div(col.maximum(0.5)).sub(y), // same, row, one, col
        x.neg().maximum(y).sqrt().mul(2.5), // NaN where negative, on both
        row.broadcastTo([B, M, N]).add(col), // reads only
        x.add(y).mul(x.sub(y)).div(y.mul(y).add(1)),
      ]);
      wasm.forEach((w, i) => assertClose(w, cpu[i], { rtol: 0, atol: 0, msg: `output ${i} [${B}, ${M}, ${N}]` }));
    }),
    { numRuns: 40 },
  );
});

Deno.test("Wasm SIMD loops read bool masks, repeated blocks of rows and comparisons bit for bit", async () => {
  await fc.assert(
    fc.asyncProperty(shapes, fc.integer({ min: 1, max: 3 }), fc.nat(1000), async ([B, M, N], H, seed) => {
      const x = normal(randomKey(seed), [B, H, M, N]), y = normal(randomKey(seed + 1), [B, H, M, N]);
      const tile = normal(randomKey(seed + 2), [M, N]), col = normal(randomKey(seed + 3), [B, H, M, 1]);
      const mask = ops.tril(tensor(new Float32Array(M * N).fill(1), { shape: [M, N] })).gt(0); // bool [M, N]
      const full = x.lt(y); // bool, the output's layout
      const nan = x.div(x.gt(0).where(x, 0)); // NaN where x <= 0
      const { wasm, cpu } = await onBoth(() => [
        mask.where(x.mul(0.5), -1e9), // a bool tile, a value
        full.where(x, y).add(tile), // a bool of the output's layout, an f32 tile
        x.lt(tile).where(col, x.mul(y)), // a comparison as the mask
        nan.lt(0.25).where(1, nan.eq(nan).where(2, 3)), // comparisons with NaN are false
        mask.broadcastTo([B, H, M, N]).where(y, x).mul(col), // a broadcast bool, a value per row
      ]);
      wasm.forEach((w, i) => assertClose(w, cpu[i], { rtol: 0, atol: 0, msg: `output ${i} [${B}, ${H}, ${M}, ${N}]` }));
    }),
    { numRuns: 30 },
  );
});

Deno.test("Wasm SIMD loops write bools of f32 and i32 comparisons bit for bit (a one-hot of class indices)", async () => {
  const own = (await createWasm({ threads: 1 }))!;
  try {
    await fc.assert(
      fc.asyncProperty(shapes, fc.nat(1000), async ([B, M, N], seed) => {
        const x = normal(randomKey(seed), [B, M, N]), y = normal(randomKey(seed + 1), [B, M, N]);
        const ids = randint(randomKey(seed + 2), [B, M], { maxval: N + 2 }); // some match no class
        const make = () => {
          const nan = x.div(x.gt(0).where(x, 0)); // NaN where x <= 0
          return [ops.oneHot(ids, N, { dtype: "bool" }), x.lt(y), nan.eq(nan), ids.expandDims(-1).lt(y.cast("i32"))];
        };
        const before = own.loops.compiled;
        const wasm = await on(own, () => readAll(make()));
        await setBackend("cpu");
        const cpu = await readAll(make());
        wasm.forEach((w, i) => {
          if (!(w instanceof Uint8Array)) throw new Error(`output ${i} is not bool`);
          assertClose(w, cpu[i], { rtol: 0, atol: 0, msg: `output ${i} [${B}, ${M}, ${N}]` });
        });
        // From SIMD_LOOP_MIN elements on, each is a Wasm loop (compiled once per form).
        if (B * M * N >= SIMD_LOOP_MIN && own.loops.compiled === before && before < 4) {
          throw new Error(`no Wasm loop was compiled for [${B}, ${M}, ${N}]`);
        }
      }),
      { numRuns: 30 },
    );
    if (own.loops.compiled < 4) throw new Error(`only ${own.loops.compiled} Wasm loops for four forms of output`);
  } finally {
    own.matmul.close(), own.scan.close(), own.loops.close();
  }
});

Deno.test("Wasm SIMD loops read rows found through permutes and slices that keep the last axis, bit for bit", async () => {
  await fc.assert(
    fc.asyncProperty(shapes, fc.integer({ min: 1, max: 3 }), fc.nat(1000), async ([B, M, N], H, seed) => {
      const x = normal(randomKey(seed), [B, M, H, N]), y = normal(randomKey(seed + 1), [B, H, M, N]);
      const wide = normal(randomKey(seed + 2), [B, M + 2, N + 4]), m = x.gt(0);
      const { wasm, cpu } = await onBoth(() => [
        x.permute([0, 2, 1, 3]), // heads split: a plain copy of rows
        x.permute([0, 2, 1, 3]).mul(y).add(1), // rows through a table beside the output's layout
        m.permute([2, 0, 1, 3]).where(x.permute([2, 0, 1, 3]), -1), // bool rows
        wide.slice([0, 1, 4], [B, M + 1, N + 4]).mul(2), // rows of a slice, offset into the source
      ]);
      wasm.forEach((w, i) => assertClose(w, cpu[i], { rtol: 0, atol: 0, msg: `output ${i} [${B}, ${M}, ${H}, ${N}]` }));
    }),
    { numRuns: 30 },
  );
});

Deno.test("Wasm SIMD loops read through transposes and other views that move the last axis, bit for bit", async () => {
  await fc.assert(
    fc.asyncProperty(shapes, fc.integer({ min: 1, max: 3 }), fc.nat(1000), async ([B, M, N], H, seed) => {
      const x = normal(randomKey(seed), [B, H, N, M]), y = normal(randomKey(seed + 1), [B, H, M, N]);
      const w = normal(randomKey(seed + 2), [N, M + 3]), m = y.gt(0);
      const nan = x.sqrt(); // NaN bits where negative: a transposed copy keeps them
      const { wasm, cpu } = await onBoth(() => [
        x.transpose(), // the last two axes swapped: a plain strided copy
        x.transpose().mul(y).add(1), // strided beside the output's layout
        x.permute([3, 0, 2, 1]).reshape([M * B, N * H]).mul(2), // the last axis moved first
        w.slice([0, 1], [N, M + 1]).transpose().add(y), // a slice's columns, offset into the source
        m.where(x.transpose(), nan.transpose()), // a mask beside two strided reads
        x.transpose().broadcastTo([2, B, H, M, N]).neg(), // rows repeated through the table
      ]);
      wasm.forEach((g, i) => assertClose(g, cpu[i], { rtol: 0, atol: 0, msg: `output ${i} [${B}, ${H}, ${M}, ${N}]` }));
    }),
    { numRuns: 30 },
  );
});

Deno.test("loops that only copy or fill one source equal the reference for f32, i32 and bool of any size", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 7 })),
      fc.nat(1000),
      async ([B, M, N], seed) => {
        const f = normal(randomKey(seed), [M, N]), i = randint(randomKey(seed + 1), [M, N], { maxval: 50 });
        const b = f.gt(0),
          row = normal(randomKey(seed + 2), [N]),
          col = randint(randomKey(seed + 3), [M, 1], { maxval: 9 });
        const { wasm, cpu } = await onBoth(() => [
          f.broadcastTo([B, M, N]), // a tile (or the output's layout when B is 1)
          i.broadcastTo([B, M, N]),
          b.broadcastTo([B, M, N]),
          row.broadcastTo([B, M, N]), // a row
          col.broadcastTo([M, N]), // a value per row
          tensor(2.5).broadcastTo([M, N]), // one value
          b.reshape([N, M]).broadcastTo([B, N, M]),
        ]);
        wasm.forEach((w, k) => assertClose(w, cpu[k], { rtol: 0, atol: 0, msg: `output ${k} [${B}, ${M}, ${N}]` }));
      },
    ),
    { numRuns: 40 },
  );
});

Deno.test("Wasm SIMD loops with exp, tanh and float64 constants are within a few ulps of their terms", async () => {
  await fc.assert(
    fc.asyncProperty(shapes, fc.nat(1000), async ([B, M, N], seed) => {
      const x = normal(randomKey(seed), [B, M, N]).mul(4);
      const { wasm, cpu } = await onBoth(() => [
        x.mul(0.1).tanh().add(1).mul(x), // a silu, with an inexact constant
        x.sub(x.max({ axis: 2, keepdims: true })).exp(),
        x.tanh().mul(x.neg().exp()),
      ]);
      wasm.forEach((w, i) => assertClose(w, cpu[i], { rtol: 1e-6, atol: 1e-5, msg: `output ${i} [${B}, ${M}, ${N}]` }));
    }),
    { numRuns: 30 },
  );
});

Deno.test("a repeated large elementwise step compiles no Wasm module", async () => {
  const step = (x: Tensor) => [x.mul(x).add(1).sqrt().div(x.add(3)), x.tanh().mul(0.5)];
  const n = SIMD_LOOP_MIN / 4;
  await setBackend("wasm");
  await readAll(step(normal(randomKey(1), [n, 8])));
  resetStats();
  await readAll(step(normal(randomKey(2), [n, 8])));
  const compiled = stats().shaderModules;
  await setBackend("cpu");
  if (compiled !== 0) throw new Error(`a repeated step compiled ${compiled} modules`);
});

Deno.test("Wasm SIMD loops run outputs with trailing size-1 axes over their rows, bit for bit", async () => {
  const own = (await createWasm({ threads: 1 }))!;
  try {
    const x = normal(randomKey(1), [6, 40, 64]), y = normal(randomKey(2), [6, 40, 64]);
    const make =
      () => [x.mul(y).add(1).reshape([6, 40, 64, 1]), x.sum({ axis: -1, keepdims: true }).mul(x).expandDims(-1)];
    const before = own.loops.compiled;
    const wasm = await on(own, () => readAll(make()));
    if (own.loops.compiled - before < 2) throw new Error("the [..., 1] outputs did not run as Wasm loops");
    await setBackend("cpu");
    const cpu = await readAll(make());
    wasm.forEach((w, i) => assertClose(w, cpu[i], { rtol: 0, atol: 0, msg: `output ${i}` }));
  } finally {
    own.matmul.close(), own.scan.close(), own.loops.close();
  }
});

Deno.test("loops that only copy or fill give empty outputs for a size-0 axis before the row's, every dtype and read", async () => {
  const row = tensor([-8, 2, -9, -5, 12, -16, 10], { dtype: "i32" }), col = tensor([[1.5], [2], [3]]);
  const tile = tensor([[true, false], [false, true]]);
  const { wasm, cpu } = await onBoth(() => [
    row.broadcastTo([1, 0, 7]), // a repeated row (the case a random spec case found)
    row.mul(2).broadcastTo([0, 7]),
    col.broadcastTo([3, 0]), // a value per row, rows of none
    tile.broadcastTo([2, 0, 2, 2]), // a repeated block of rows
    tensor([4]).broadcastTo([0, 3]), // one value
  ]);
  wasm.forEach((g, i) => assert.deepEqual(Array.from(g), Array.from(cpu[i]), `output ${i}`));
  assert.ok(wasm.every((g) => g.length === 0));
});
