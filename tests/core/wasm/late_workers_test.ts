// Matmul workers that start late, never start or fail: every product still equals the one-thread
// product bit for bit (the calling thread computes every share no worker has claimed).

import assert from "node:assert/strict";
import fc from "fast-check";
import { WasmMatmul } from "../../../core/wasm/matmul.ts";
import { FEW_ROWS } from "../../../core/wasm/few_rows.ts";
import type { StartFaults } from "../../../core/wasm/threads.ts";
import { createWasm } from "../../../core/wasm/mod.ts";
import { on, train } from "./backend_helpers.ts";

const rand = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(seed + i * 12.9898) * 3);

// A product of M x K by K x N on `mm`: N above one 8-column panel and M above FEW_ROWS (products of fewer rows read
// B in place on the calling thread), so it is split.
function product(mm: WasmMatmul, [M, K, N]: readonly number[], seed: number): Float32Array {
  const out = new Float32Array(M * N);
  mm.run(rand(M * K, seed), rand(K * N, seed + 1), out, [1, M, K, N]);
  return out;
}

const dims = fc.tuple(
  fc.integer({ min: FEW_ROWS + 1, max: 40 }),
  fc.integer({ min: 1, max: 40 }),
  fc.integer({ min: 9, max: 70 }),
);

async function withFaults(faults: StartFaults) {
  const one = await WasmMatmul.create({ threads: 1 });
  const two = await WasmMatmul.create({ threads: 2, threadedWork: 1, faults });
  return { one, two, close: () => (one.close(), two.close()) };
}

for (
  const [what, faults] of [
    ["a worker that never starts", { startDelayMs: 3_600_000, startTimeoutMs: 1 }],
    ["a worker that fails", { fail: true, startTimeoutMs: 1 }],
  ] as const
) {
  Deno.test(`wasm threads: with ${what}, products equal the one-thread ones, all computed on the caller`, async () => {
    const { one, two, close } = await withFaults(faults);
    try {
      if (two.threads < 2) throw new Error("this runtime started no matmul workers; the test cannot run");
      fc.assert(
        fc.property(dims, fc.integer({ min: 0, max: 1000 }), (d, seed) => {
          assert.deepEqual(product(two, d, seed), product(one, d, seed));
        }),
        { numRuns: 40 },
      );
      assert.ok(two.threadedCalls >= 40, `only ${two.threadedCalls} products were split`);
      assert.equal(two.workerShares, 0);
    } finally {
      close();
    }
  });
}

Deno.test("wasm threads: a worker that joins after the calls began changes no bits", async () => {
  const { one, two, close } = await withFaults({ startDelayMs: 300, startTimeoutMs: 1 });
  try {
    assert.equal(two.threads, 2);
    let joined = -1;
    // Products run while the worker starts (the first ones on this thread alone), until it has
    // computed shares for a while; bounded by a count of products, not by time.
    for (let i = 0; i < 5000 && (joined < 0 || i < joined + 50); i++) {
      const d = [1 + (i * 7) % 37, 1 + (i * 13) % 41, 9 + (i * 5) % 60];
      assert.deepEqual(product(two, d, i), product(one, d, i), `product ${i} (${d})`);
      if (joined < 0 && two.workerShares > 0) joined = i;
      await new Promise((ok) => setTimeout(ok, 5));
    }
    assert.ok(joined >= 0, "the late worker never computed a share");
  } finally {
    close();
  }
});

Deno.test("wasm threads: a training run with a late worker equals the one-thread run", async () => {
  const one = (await createWasm({ threads: 1 }))!;
  const late = (await createWasm({ threads: 2, threadedWork: 1, faults: { startDelayMs: 200, startTimeoutMs: 1 } }))!;
  try {
    const a = await on(one, () => train(4));
    const b = await on(late, () => train(4));
    assert.ok(late.matmul.threadedCalls > 50, `only ${late.matmul.threadedCalls} products were split`);
    assert.deepEqual(b.losses, a.losses);
    assert.deepEqual(b.params, a.params);
  } finally {
    one.matmul.close();
    late.matmul.close();
  }
});
