// softmax and logsumexp in Wasm SIMD against float64 closed forms: within 4e-6 relative (the f32
// polynomial exp and a blocked f64 sum; the reference's own f32 rounding is 6e-8), rows of any
// length (not multiples of four included), and infinite or NaN rows as the reference treats them;
// over the heap read and written in place and split across threads, with one thread's bits.

import assert from "node:assert/strict";
import fc from "fast-check";
import { WasmSoftmax } from "../../../core/wasm/softmax_simd.ts";
import { SimdLoops } from "../../../core/wasm/simd_loop.ts";
import { createWasm } from "../../../core/wasm/mod.ts";
import { normal, ops, randomKey, readAll, setBackend, tensor } from "../../../mod.ts";
import { assertClose } from "../../helpers.ts";
import { on } from "./backend_helpers.ts";

function reference(a: Float32Array, R: number, N: number) {
  const soft = new Float64Array(R * N), lse = new Float64Array(R);
  for (let r = 0; r < R; r++) {
    const row = a.subarray(r * N, (r + 1) * N), m = Math.max(...row);
    let s = 0;
    for (const v of row) s += Math.exp(v - m);
    row.forEach((v, j) => (soft[r * N + j] = Math.exp(v - m) / s));
    lse[r] = m + Math.log(s);
  }
  return { soft, lse };
}

Deno.test("the Wasm softmax and logsumexp rows match float64 closed forms on random sizes", () => {
  const k = new WasmSoftmax(new SimdLoops(), null); // on a memory of its own, copied in and out
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 300 }), fc.nat(1000), (R, N, seed) => {
      const a = Float32Array.from({ length: R * N }, (_, i) => Math.sin(seed + i * 7.31) * 30);
      const soft = new Float32Array(R * N), lse = new Float32Array(R);
      k.softmax(a, soft, R, N);
      k.logsumexp(a, lse, R, N);
      const want = reference(a, R, N);
      assertClose(soft, want.soft, { rtol: 4e-6, atol: 1e-30, msg: `softmax [${R}, ${N}]` });
      assertClose(lse, want.lse, { rtol: 4e-6, atol: 4e-6, msg: `logsumexp [${R}, ${N}]` });
      for (let r = 0; r < R; r++) {
        const s = soft.subarray(r * N, (r + 1) * N).reduce((x, y) => x + y, 0);
        assert.ok(Math.abs(s - 1) < 1e-5, `row ${r} sums to ${s}`);
      }
    }),
    { numRuns: 60 },
  );
});

Deno.test("the Wasm softmax rows pass infinite and NaN rows through as the reference does", async () => {
  const rows = [[1, Infinity, 2], [-Infinity, -Infinity, -Infinity], [NaN, 1, 2], [-Infinity, 0, 1]];
  // 342 copies of the four rows: above the size from which the backend runs the Wasm kernel.
  const x = tensor(Array.from({ length: 342 }, () => rows).flat());
  await setBackend("wasm");
  const [ws, wl] = await readAll([ops.softmax(x), ops.logsumexp(x)]);
  await setBackend("cpu");
  const [cs, cl] = await readAll([ops.softmax(x), ops.logsumexp(x)]);
  assertClose(ws, cs, { rtol: 4e-6, atol: 1e-30, msg: "softmax" });
  assertClose(wl, cl, { rtol: 4e-6, atol: 4e-6, msg: "logsumexp" });
});

Deno.test("softmax and logsumexp over the heap, in place and on two threads, give one thread's bits", async () => {
  const one = (await createWasm({ threads: 1 }))!;
  const two = (await createWasm({ threads: 2, loopThreadedWork: 1 }))!;
  // Rows of a multiple of four (read and written in place, computed in the realization so they lie
  // in the heap), of other lengths (padded copies), and a softmax of a host array.
  const make = () => {
    const x = normal(randomKey(1), [6, 40, 64]).mul(3), y = normal(randomKey(2), [37, 30]).mul(3);
    return [
      ops.softmax(x),
      ops.logsumexp(x, { axis: -1 }),
      ops.softmax(y),
      ops.logsumexp(y, { axis: -1 }),
      ops.softmax(normal(randomKey(3), [90, 32])),
    ];
  };
  try {
    const want = await on(one, () => readAll(make()));
    const splits = two.loops.threaded.calls;
    const got = await on(two, () => readAll(make()));
    got.forEach((g, i) => assert.deepEqual(g, want[i], `output ${i}`));
    // The five kernels and x's loop: y's is JavaScript (rows of 30).
    assert.equal(two.loops.threaded.calls - splits, 6, "the rows were not split across the threads");
    await setBackend("cpu");
    const ref = await readAll(make());
    ref.forEach((r, i) => assertClose(got[i], r, { rtol: 4e-6, atol: 4e-6, msg: `output ${i} against the reference` }));
  } finally {
    for (const b of [one, two]) (b.matmul.close(), b.scan.close(), b.loops.close());
  }
});
