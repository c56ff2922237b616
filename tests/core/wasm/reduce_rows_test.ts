// The Wasm SIMD row sums and maxima against float64 loops in the reference's order, and through the
// backend against the reference: eight rows or more bit for bit, fewer rows (the blocked order) at a
// stated tolerance, long rows and rows of any length mod 8 included; maxima bit for bit always,
// NaN, infinities and signed zeros included.

import fc from "fast-check";
import { normal, randomKey, tensor } from "../../../mod.ts";
import { REDUCE_SIMD_MIN } from "../../../core/wasm/reduce.ts";
import { WasmRowSums } from "../../../core/wasm/reduce_rows.ts";
import { WasmMax } from "../../../core/wasm/reduce_max.ts";
import { assertClose } from "../../helpers.ts";
import { onBoth } from "./backend_helpers.ts";

const rowSums = new WasmRowSums(), maxes = new WasmMax();

// Values spread over many magnitudes, so a changed order of float64 additions could show in f32.
const spread = (n: number, seed: number) =>
  Float32Array.from({ length: n }, (_, k) => Math.fround(Math.sin(k * 1.7 + seed) * 10 ** ((k + seed) % 7)));

function inOrder(a: Float32Array, O: number, R: number): { sums: Float32Array; abs: Float64Array } {
  const sums = new Float32Array(O), abs = new Float64Array(O);
  for (let o = 0; o < O; o++) {
    let s = 0, t = 0;
    for (let k = o * R; k < (o + 1) * R; k++) s += a[k], t += Math.abs(a[k]);
    sums[o] = s, abs[o] = t;
  }
  return { sums, abs };
}

// Bits of each value, so -0 and +0 and NaN payloads compare as different.
const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));
const sameBits = (got: Float32Array, want: Float32Array, msg: string) => {
  const g = bits(got), w = bits(want);
  g.forEach((b, i) => {
    if (b !== w[i]) throw new Error(`${msg}: [${i}] ${got[i]} (0x${b.toString(16)}) != ${want[i]}`);
  });
};

Deno.test("Wasm row sums of eight rows or more equal float64 sums in order, rounded once", () => {
  for (const [O, R] of [[8, 1], [8, 3], [9, 4], [15, 7], [16, 129], [23, 1000], [8, 20000]]) {
    const a = spread(O * R, O), got = new Float32Array(O);
    rowSums.run(a, got, O, R);
    sameBits(got, inOrder(a, O, R).sums, `[${O}, ${R}]`);
  }
});

Deno.test("Wasm row sums of fewer than eight rows are within f32 rounding of the sums in order", () => {
  // The blocked order changes only float64 roundings: each sum is within one f32 ulp of the
  // in-order sum plus R * 2^-52 of the row's absolute sum (so long rows are included).
  for (const [O, R] of [[1, 1], [1, 7], [1, 8], [2, 9], [3, 1001], [1, 65536], [7, 100003]]) {
    const a = spread(O * R, R), got = new Float32Array(O), { sums, abs } = inOrder(a, O, R);
    rowSums.run(a, got, O, R);
    for (let o = 0; o < O; o++) {
      const tol = Math.abs(sums[o]) * 2 ** -23 + R * 2 ** -52 * abs[o];
      if (!(Math.abs(got[o] - sums[o]) <= tol)) throw new Error(`[${O}, ${R}] row ${o}: ${got[o]} vs ${sums[o]}`);
    }
  }
});

Deno.test("Wasm row sums pass infinities and NaN through as float64 sums do", () => {
  for (const O of [1, 8]) {
    const a = new Float32Array(O * 13).fill(1);
    a[3] = Infinity, a[O * 13 - 2] = NaN;
    const got = new Float32Array(O);
    rowSums.run(a, got, O, 13);
    sameBits(got, inOrder(a, O, 13).sums, `${O} rows`);
  }
});

Deno.test("Wasm row and column maxima equal the reference's rule bit for bit, zeros and NaN included", () => {
  const rule = (a: Float32Array, O: number, R: number, I: number) => {
    const out = new Float32Array(O * I);
    for (let o = 0; o < O; o++) {
      for (let j = 0; j < I; j++) {
        let m = -Infinity;
        for (let k = 0; k < R; k++) {
          const v = a[(o * R + k) * I + j];
          if (v > m || v !== v) m = v;
        }
        out[o * I + j] = m;
      }
    }
    return out;
  };
  const specials = [0, -0, NaN, Infinity, -Infinity];
  for (const [O, R, I] of [[1, 1, 1], [3, 5, 1], [2, 1003, 1], [1, 7, 2], [2, 9, 5], [3, 33, 64], [1, 400, 7]]) {
    for (const mix of [0, 0.02, 1]) {
      // mix 1: only zeros and specials, so zero maxima of either sign and NaN rows are common.
      const a = spread(O * R * I, R).map((v, k) =>
        ((k * 2654435761) >>> 0) % 1000 < mix * 1000 ? specials[k % specials.length] : mix === 1 ? 0 : v
      );
      const got = new Float32Array(O * I);
      if (I === 1) maxes.rows(a, got, O, R);
      else maxes.columns(a, got, O, R, I);
      sameBits(got, rule(a, O, R, I), `[${O}, ${R}, ${I}] mix ${mix}`);
    }
  }
});

Deno.test("large sums and maxima on the Wasm backend match the reference on random shapes", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.tuple(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 300 }), fc.integer({ min: 1, max: 9 })),
      fc.nat(1000),
      async ([o, r, i], seed) => {
        const R = Math.max(r, Math.ceil(REDUCE_SIMD_MIN / (o * i))); // large enough for the kernels
        const x = normal(randomKey(seed), [o, R, i]).mul(100);
        const { wasm, cpu } = await onBoth(() => [
          x.reshape([o * i, R]).sum({ axis: 1 }),
          x.sum({ axis: [1, 2] }),
          x.max({ axis: 1 }),
          x.max({ axis: [1, 2] }),
          x.reshape([o * i, R]).max({ axis: 1 }),
        ]);
        const msg = (k: number) => `output ${k}, [${o}, ${R}, ${i}]`;
        // Row sums: exact from eight rows; fewer rows add in the blocked order (f32 rounding apart).
        wasm.forEach((w, k) => {
          const rows = [o * i, o, 0, 0, 0][k];
          assertClose(
            w,
            cpu[k],
            rows > 0 && rows < 8 ? { rtol: 1e-6, atol: 1e-3, msg: msg(k) } : { rtol: 0, atol: 0, msg: msg(k) },
          );
        });
      },
    ),
    { numRuns: 30 },
  );
});

Deno.test("a large max with NaN and signed zeros on the Wasm backend matches the reference", async () => {
  const vals = Array.from({ length: 4096 }, (_, k) => (k % 97 === 5 ? NaN : k % 3 === 0 ? -0 : k % 3 === 1 ? 0 : -1));
  const x = tensor(vals).reshape([64, 64]);
  const { wasm, cpu } = await onBoth(() => [x.max({ axis: 1 }), x.max({ axis: 0 }), x.neg().max({ axis: 1 })]);
  wasm.forEach((w, k) => {
    for (let j = 0; j < w.length; j++) {
      if (!Object.is(w[j], cpu[k][j])) throw new Error(`output ${k} [${j}]: ${w[j]} vs ${cpu[k][j]}`);
    }
  });
});
