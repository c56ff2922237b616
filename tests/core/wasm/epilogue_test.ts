// Matmul epilogues beyond an add on the Wasm backend: an elementwise chain over a product read by
// nothing else is computed as the kernel stores C (scales, activations, biases, per-row values,
// masks, residuals), with the bits of the same chain run over the product in memory, on any thread
// count and split; where it does not apply (C off whole tiles, no heap) the fallback gives them too.

import fc from "fast-check";
import {
  normal,
  ops,
  randint,
  randomKey,
  readAll,
  realize,
  resetStats,
  setBackend,
  stats,
  type Tensor,
  tensor,
} from "../../../mod.ts";
import { assertClose } from "../../helpers.ts";
import { createWasm } from "../../../core/wasm/mod.ts";
import { FEW_ROWS } from "../../../core/wasm/few_rows.ts";
import { on } from "./backend_helpers.ts";
import assert from "node:assert/strict";

const one = (await createWasm({ threads: 1 }))!;
// Two threads sharing every product (each split kind is met by some shape below).
const two = (await createWasm({ threads: 2, threadedWork: 1, loopThreadedWork: 1 }))!;
const noHeap = (await createWasm({ threads: 1, heap: false }))!;
// Two threads splitting batches of small products by products.
const batched = (await createWasm({ threads: 2, threadedWork: 4096 }))!;

// Epilogues of the product `p` [..., M, N], their other reads made from `seed` (realized first: an
// epilogue reads values that lie in the backend's heap, as a step's intermediates and realized
// values do; host arrays, such as freshly drawn weights, leave the chain to run after the product).
async function chains(p: () => Tensor, shape: readonly number[], seed: number): Promise<(() => Tensor)[]> {
  const R = shape.length, [M, N] = shape.slice(R - 2), k = (i: number) => randomKey(seed * 16 + i);
  const same = normal(k(1), [...shape]).mul(1), row = normal(k(2), [N]).mul(1);
  const col = normal(k(3), [...shape.slice(0, R - 1), 1]).mul(1);
  const mask = ops.tril(normal(k(4), [M, N]).mul(0).add(1)).gt(0);
  // Class indices (i32, computed in the heap): one per row against a column's index.
  const cls = randint(k(5), [...shape.slice(0, R - 1), 1], { maxval: N }).add(0),
    ids = ops.arange(N, undefined, { dtype: "i32" }).add(0);
  await realize([same, row, col, mask, cls, ids]);
  return [
    () => p().mul(0.125), // a scale: a value read once
    () => ops.silu(p()), // the product read twice, tanh
    () => p().add(row).add(same), // a bias, then a residual
    () => p().mul(col).sub(same.exp()), // a value per row; an exp of another source
    () => mask.where(p().mul(0.3), -1e9), // attention scores: a bool tile over the batch
    () => p().maximum(0).mul(p().exp()), // exp of the product
    () => cls.eq(ids).where(p().neg(), p()), // i32 reads compared: a one-hot's mask
  ];
}

// Chain `i` alone (the epilogue) and with its product realized too (the chain then reads it from
// memory), on backend `b`: both outputs' bits, and the epilogue calls of the first.
async function alongside(b: typeof one, p: () => Tensor, shape: readonly number[], seed: number, i: number) {
  return await on(b, async () => {
    const make = (await chains(p, shape, seed))[i];
    const before = b.matmul.epilogueCalls;
    const [fused] = await readAll([make()]);
    const calls = b.matmul.epilogueCalls - before;
    const [apart] = await readAll([make(), p()]);
    return { fused, apart, calls };
  });
}

Deno.test("matmul epilogues give the bits of the same chain over the product in memory, on one or two threads", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom([], [3], [2, 2]),
      fc.integer({ min: 1, max: 20 }),
      fc.integer({ min: 1, max: 70 }),
      fc.integer({ min: 1, max: 9 }),
      fc.nat(1000),
      async (batch, m4, K, n8, seed) => {
        // Mostly whole tiles; now and then rows or columns off them (no epilogue: the fallback). Few
        // rows run on the few-row kernels, which have no epilogue either.
        const M = 4 * m4 + (seed % 7 === 0 ? 1 : 0), N = 8 * n8 + (seed % 11 === 0 ? 3 : 0);
        const tiles = M % 4 === 0 && N % 8 === 0 && M > FEW_ROWS;
        const a = normal(randomKey(seed), [...batch, M, K]), w = normal(randomKey(seed + 1), [K, N]);
        const wb = normal(randomKey(seed + 2), [...batch, K, N]);
        // A weight shared over the batch (one product of all rows), and a product per batch element.
        for (const bw of [w, wb]) {
          const p = () => a.matmul(bw), shape = [...batch, M, N];
          for (let i = 0; i < 7; i++) {
            const r1 = await alongside(one, p, shape, seed, i), r2 = await alongside(two, p, shape, seed, i);
            const msg = `chain ${i}, [${batch}] ${M} x ${K} x ${N}, ${bw === w ? "shared" : "batched"} B`;
            assert.equal(r1.calls, tiles ? 1 : 0, msg);
            assert.equal(r2.calls, tiles ? 1 : 0, msg);
            assertClose(r1.fused, r1.apart, { rtol: 0, atol: 0, msg: `${msg}: one thread` });
            assertClose(r2.fused, r2.apart, { rtol: 0, atol: 0, msg: `${msg}: two threads` });
            assertClose(r2.fused, r1.fused, { rtol: 0, atol: 0, msg: `${msg}: two threads against one` });
          }
        }
      },
    ),
    { numRuns: 12 },
  );
});

Deno.test("matmul epilogues are within f32 tolerance of the reference, transposed operands included", async () => {
  const a = normal(randomKey(1), [2, 36, 20]), b = normal(randomKey(2), [2, 40, 20]);
  const p = () => a.matmul(b.transpose()); // B read through its transpose
  const got = await on(one, async () => {
    const before = one.matmul.epilogueCalls, makes = await chains(p, [2, 36, 40], 3);
    const got = await readAll(makes.map((m) => m()));
    assert.equal(one.matmul.epilogueCalls - before, makes.length);
    return got;
  });
  await setBackend("cpu");
  const want = await readAll((await chains(p, [2, 36, 40], 3)).map((m) => m()));
  await setBackend("wasm");
  got.forEach((g, i) => assertClose(g, want[i], { rtol: 1e-5, atol: 1e-5, msg: `chain ${i}` }));
});

Deno.test("every kind of split computes the epilogue: strips, panels, panels packing B, a batch's products", async () => {
  const x = normal(randomKey(3), [16, 40]);
  const cases: [string, typeof two, () => Tensor][] = [
    ["strips", two, () => normal(randomKey(1), [64, 32]).matmul(normal(randomKey(2), [32, 16]))],
    // A read through a slice is packed on this thread, then C's panels are split.
    ["panels", two, () => x.slice([0, 0], [16, 32]).matmul(normal(randomKey(4), [32, 16]))],
    ["ownB", two, () => normal(randomKey(5), [16, 16]).matmul(normal(randomKey(6), [16, 256]).mul(2))],
    // Operands in the heap (computed, not host arrays) are split by products.
    ["batch", batched, () => normal(randomKey(7), [6, 16, 16]).mul(1).matmul(normal(randomKey(8), [6, 16, 8]).mul(1))],
  ];
  for (const [kind, b, p] of cases) {
    const before = { ...b.matmul.splits };
    const shape = p().shape;
    const r2 = await alongside(b, p, shape, 5, 1), r1 = await alongside(one, p, shape, 5, 1);
    const after = b.matmul.splits, by = kind as keyof typeof after;
    assert(after[by] > before[by], `${kind}: no such split (${JSON.stringify(before)} -> ${JSON.stringify(after)})`);
    assert.equal(r2.calls, 1, kind);
    assert.equal(r1.calls, 1, `${kind}: one thread`);
    assertClose(r2.fused, r2.apart, { rtol: 0, atol: 0, msg: kind });
    assertClose(r2.fused, r1.fused, { rtol: 0, atol: 0, msg: `${kind}: two threads against one` });
  }
});

Deno.test("a repeated realization with an epilogue compiles nothing; without a heap the chain runs after the product", async () => {
  const a = normal(randomKey(9), [32, 24]), w = normal(randomKey(10), [24, 48]);
  const make = () => ops.silu(a.matmul(w)).add(tensor([1]));
  const first = await on(one, async () => {
    await readAll([make()]);
    resetStats();
    const before = one.matmul.epilogueCalls, [y] = await readAll([make()]);
    assert.equal(stats().shaderModules, 0);
    assert.equal(one.matmul.epilogueCalls, before + 1);
    return y;
  });
  const [y] = await on(noHeap, () => readAll([make()]));
  assert.equal(noHeap.matmul.epilogueCalls, 0);
  assertClose(y, first, { rtol: 0, atol: 0 });
});

Deno.test("a product read outside the chain (kept, or by a second loop) is not an epilogue", async () => {
  const a = normal(randomKey(11), [16, 8]), w = normal(randomKey(12), [8, 16]);
  const r = await on(one, async () => {
    const before = one.matmul.epilogueCalls;
    const p = a.matmul(w);
    await readAll([p.mul(2), p.exp()]); // two roots read the product
    return one.matmul.epilogueCalls - before;
  });
  assert.equal(r, 0);
});
