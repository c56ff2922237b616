// The Wasm backend's heap: its allocator against a model of the bytes it hands out (no overlaps,
// alignment, merged free ranges reused), its limit (alloc answers -1, and the arena falls back to
// host arrays), and the backend over it computing the same bits as over host arrays.

import assert from "node:assert/strict";
import fc from "fast-check";
import { normal, randomKey, setBackend } from "../../../mod.ts";
import { WasmHeap } from "../../../core/wasm/heap.ts";
import { HostArena } from "../../../core/cpu/arena.ts";
import { createWasm, useWasm } from "../../../core/wasm/mod.ts";
import { train } from "./backend_helpers.ts";

Deno.test("heap blocks are 16-byte aligned, never overlap, and freed neighbours merge for reuse", () => {
  fc.assert(
    fc.property(
      fc.array(fc.oneof(fc.integer({ min: 1, max: 5000 }), fc.integer({ min: 1, max: 80 }), fc.constant(-1)), {
        minLength: 1,
        maxLength: 120,
      }),
      (script) => {
        const heap = WasmHeap.create(2 ** 26)!;
        const live = new Map<number, number>(); // offset -> bytes asked
        for (const step of script) {
          if (step < 0 && live.size > 0) {
            const [at] = [...live.keys()].sort((a, b) => a - b).slice(live.size >> 1);
            heap.free(at);
            live.delete(at);
            continue;
          }
          const bytes = Math.max(step, 1), at = heap.alloc(bytes);
          assert.ok(at > 0 && at % 16 === 0, `offset ${at}`);
          for (const [o, n] of live) {
            assert.ok(at + bytes <= o || o + n <= at, `[${at}, +${bytes}) overlaps [${o}, +${n})`);
          }
          assert.ok(at + bytes <= heap.memory.buffer.byteLength);
          live.set(at, bytes);
        }
        // With everything freed, the free ranges merge into one: a block of all of it fits at the start.
        const span = Math.max(16, ...[...live].map(([o, n]) => o + n));
        for (const at of live.keys()) heap.free(at);
        assert.equal(heap.bytesAllocated, 0);
        assert.equal(heap.alloc(span - 16), 16);
      },
    ),
    { numRuns: 60 },
  );
});

Deno.test("a freed block is reused by a request that fits it, and only by one", () => {
  const heap = WasmHeap.create(2 ** 26)!;
  const [a, b, c] = [32, 32, 32].map((n) => heap.alloc(n));
  heap.free(b);
  const d = heap.alloc(48); // does not fit b's 32 bytes: placed past c
  assert.ok(d >= c + 32, `48 bytes at ${d}, between ${a} and ${c}`);
  assert.equal(heap.alloc(20), b); // fits, rounded to 32
  heap.free(a), heap.free(b);
  assert.equal(heap.alloc(64), a); // a and b merged
});

Deno.test("a full heap answers -1, and the arena then gives host arrays that it still recycles", () => {
  const heap = WasmHeap.create(2 ** 20)!; // the initial 16 pages: 1 MiB
  assert.equal(heap.alloc(2 ** 21), -1);
  assert.throws(() => heap.free(12345), /no block at 12345/);
  const arena = new HostArena(2 ** 30, heap);
  const big = arena.alloc("f32", 2 ** 19); // 2 MiB: more than the heap can hold
  assert.equal(heap.offsetOf(big), -1);
  const small = arena.alloc("f32", 1000);
  assert.ok(heap.offsetOf(small) > 0);
  assert.equal(arena.bytesInHeap, 4000);
  arena.hold(big), arena.hold(small);
  arena.drop(big), arena.drop(small);
  assert.equal(arena.bytesInUse, 0);
  // Both come back from the pool: the same memory, zero-filled again.
  small.fill(7);
  const again = arena.alloc("f32", 1000), bigAgain = arena.alloc("f32", 2 ** 19);
  assert.equal(heap.offsetOf(again), heap.offsetOf(small));
  assert.equal(bigAgain.buffer, big.buffer);
  assert.ok(again.every((v) => v === 0));
  // A view into the heap that starts at no block cannot be counted, and says so.
  assert.throws(() => arena.hold(again.subarray(4)), /is no block of the arena/);
});

Deno.test("training over the heap gives the bits of training over host arrays, on 1 and 2 threads", async () => {
  const runs: number[][][] = [];
  for (const opts of [{ heap: false, threads: 1 }, { heap: true, threads: 1 }, { heap: true, threads: 2 }]) {
    // Every product and every SIMD loop of two rows or more is split when there are two threads.
    const b = (await createWasm({ ...opts, threadedWork: 1, loopThreadedWork: 1 }))!;
    assert.equal(b.heap !== null, opts.heap);
    useWasm(b);
    await setBackend("wasm");
    try {
      const { losses, params } = await train(3);
      const x = normal(randomKey(3), [64, 40]), y = normal(randomKey(4), [40, 24]);
      const probe = await x.matmul(y).tanh().mul(x.matmul(y).add(1)).data(); // a product, then a loop on 64 rows
      runs.push([losses, ...params.map((p) => Array.from(p)), Array.from(probe)]);
      if (opts.threads === 2) {
        assert.ok(b.matmul.threadedCalls > 10, `${b.matmul.threadedCalls} products split`);
        assert.ok(b.loops.threaded.calls >= 4, `${b.loops.threaded.calls} loops split`);
      }
    } finally {
      useWasm(null);
      await setBackend("cpu");
      b.matmul.close();
      b.loops.close();
    }
  }
  assert.deepEqual(runs[1], runs[0]);
  assert.deepEqual(runs[2], runs[0]);
});
