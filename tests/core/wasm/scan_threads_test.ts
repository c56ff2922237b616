// The delta-rule scans split over batch x heads across a pool of threads (from SCAN_THREADED_WORK; forced
// here with threadedWork 0): the same bits as one thread on random sizes, B H of 1 (not split) and
// not a multiple of the thread count included, forward and backward; and the results of the pool
// equal the reference rules at the single-threaded scan's tolerance.

import assert from "node:assert/strict";
import fc from "fast-check";
import { SCAN } from "../../../core/prims/scan.ts";
import { WasmScan } from "../../../core/wasm/scan.ts";
import { WasmHeap } from "../../../core/wasm/heap.ts";
import { assertClose } from "../../helpers.ts";
import { f32Aval, kernelCtx, seededValues } from "./backend_helpers.ts";

const ctx = kernelCtx, aval = f32Aval, values = seededValues;

Deno.test("wasm scan threads: 1 and 2 threads give the same bits, forward and backward", async () => {
  const one = new WasmScan(), two = await WasmScan.create({ threads: 2, threadedWork: 0 });
  if (two.threads < 2) throw new Error("this runtime started no pool workers; the scan thread test cannot run");
  try {
    fc.assert(
      fc.property(
        fc.tuple(
          fc.integer({ min: 1, max: 7 }),
          fc.integer({ min: 1, max: 9 }),
          fc.integer({ min: 1, max: 9 }),
          fc.integer({ min: 1, max: 11 }),
        ),
        fc.nat(1e6),
        ([BH, T, K, V], seed) => {
          const ins = [
            values(seed, BH * T * K, -1, 1),
            values(seed + 1, BH * T * V, -2, 2),
            values(seed + 2, BH * T, -1, 0),
            values(seed + 3, BH * T, 0.05, 1),
            values(seed + 4, BH * K * V, -1, 1),
          ];
          const s1 = new Float32Array(BH * T * K * V), s2 = new Float32Array(s1.length).fill(NaN);
          one.forward(ins, [BH, T, K, V], s1);
          two.forward(ins, [BH, T, K, V], s2);
          assert.deepEqual(s2, s1, `states, ${[BH, T, K, V]}`);
          const gIns = [values(seed + 5, s1.length, -1, 1), ...ins, s1];
          const g1 = new Float32Array(BH * V * (T * (K + 3) + K)), g2 = new Float32Array(g1.length).fill(NaN);
          one.backward(gIns, [BH, T, K, V], g1);
          two.backward(gIns, [BH, T, K, V], g2);
          assert.deepEqual(g2, g1, `gradient, ${[BH, T, K, V]}`);
          // And against the reference (float64 state) as scan_test.ts checks the single thread.
          const avals = [aval(1, BH, T, K), aval(1, BH, T, V), aval(1, BH, T), aval(1, BH, T), aval(1, BH, K, V)];
          const want = SCAN.deltaScan.cpu(ins, avals, aval(1, BH, T, K, V), {}, ctx) as Float32Array;
          assertClose(s2, want, { rtol: 1e-4, atol: 1e-5, msg: `states vs reference, ${[BH, T, K, V]}` });
        },
      ),
      { numRuns: 80 },
    );
    // Every scan with more than one B H was split (80 runs: most have B H > 1).
    assert.ok(two.threadedCalls > 60, `only ${two.threadedCalls} scans were split`);
    assert.equal(one.threadedCalls, 0);
  } finally {
    two.close();
  }
});

Deno.test("wasm scan over the heap: inputs and outputs read and written in place give the private memory's bits", async () => {
  const heap = WasmHeap.create()!;
  const one = new WasmScan(), two = await WasmScan.create({ threads: 2, threadedWork: 0, heap });
  // Arrays of the heap, as the backend's values are (those of rows of a multiple of four are read in place).
  const inHeap = (a: Float32Array) => {
    const at = heap.alloc(Math.max(16, 4 * a.length));
    const h = new Float32Array(heap.buffer, at, a.length);
    h.set(a);
    return h;
  };
  try {
    fc.assert(
      fc.property(
        fc.tuple(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 9 })),
        fc.constantFrom(3, 4, 8, 9),
        fc.nat(1e6),
        ([BH, T, K], V, seed) => {
          const ins = [
            values(seed, BH * T * K, -1, 1),
            values(seed + 1, BH * T * V, -2, 2),
            values(seed + 2, BH * T, -1, 0),
            values(seed + 3, BH * T, 0.05, 1),
            values(seed + 4, BH * K * V, -1, 1),
          ];
          const s1 = new Float32Array(BH * T * K * V), s2 = inHeap(new Float32Array(s1.length).fill(NaN));
          one.forward(ins, [BH, T, K, V], s1);
          two.forward(ins.map(inHeap), [BH, T, K, V], s2);
          assert.deepEqual(Array.from(s2), Array.from(s1), `states, ${[BH, T, K, V]}`);
          const gIns = [values(seed + 5, s1.length, -1, 1), ...ins, s1];
          const g1 = new Float32Array(BH * V * (T * (K + 3) + K)), g2 = inHeap(new Float32Array(g1.length).fill(NaN));
          one.backward(gIns, [BH, T, K, V], g1);
          two.backward(gIns.map(inHeap), [BH, T, K, V], g2);
          assert.deepEqual(Array.from(g2), Array.from(g1), `gradient, ${[BH, T, K, V]}`);
        },
      ),
      { numRuns: 40 },
    );
  } finally {
    two.close();
  }
});
