// The host JS loops vs the Wasm SIMD kernels, median of rounds: column sums (f32 over a non-last
// axis), row sums (the last axis), maxima over either, softmax and logsumexp rows.
// Usage: deno run -A bench/reduce_wasm.ts

import { WasmColumnSums } from "../core/wasm/reduce_simd.ts";
import { SimdLoops } from "../core/wasm/simd_loop.ts";
import { WasmSoftmax } from "../core/wasm/softmax_simd.ts";
import { WasmRowSums } from "../core/wasm/reduce_rows.ts";
import { WasmMax } from "../core/wasm/reduce_max.ts";
import { logsumexp, softmax } from "../core/wasm/softmax.ts";
import type { CpuContext } from "../core/prim.ts";
import type { Node } from "../core/graph.ts";

function js(a: Float32Array, out: Float32Array, O: number, R: number, I: number): void {
  const acc = new Float64Array(O * I);
  for (let o = 0; o < O; o++) {
    for (let r = 0, p = o * R * I; r < R; r++) for (let j = 0; j < I; j++, p++) acc[o * I + j] += a[p];
  }
  out.set(acc);
}

const cols = new WasmColumnSums();
const median = (xs: number[]) => xs.sort((x, y) => x - y)[xs.length >> 1];

// Times a and b alternately, 31 rounds of 10 calls each; returns the medians in microseconds.
function ab(a: () => void, b: () => void): [number, number] {
  const t: [number[], number[]] = [[], []];
  for (let round = 0; round < 31; round++) {
    for (const [k, f] of [[0, a], [1, b]] as const) {
      const t0 = performance.now();
      for (let rep = 0; rep < 10; rep++) f();
      t[k].push((performance.now() - t0) * 100);
    }
  }
  return [median(t[0]), median(t[1])];
}
for (const [O, R, I] of [[1, 512, 128], [1, 512, 512], [8, 64, 128], [1, 4096, 256]]) {
  const a = Float32Array.from({ length: O * R * I }, () => Math.random());
  const o1 = new Float32Array(O * I), o2 = new Float32Array(O * I);
  const t: [number[], number[]] = [[], []];
  for (let round = 0; round < 31; round++) {
    // Alternating A/B in one process, so both see the same load.
    for (const [k, f] of [[0, () => js(a, o1, O, R, I)], [1, () => cols.run(a, o2, O, R, I)]] as const) {
      const t0 = performance.now();
      for (let rep = 0; rep < 10; rep++) f();
      t[k].push((performance.now() - t0) / 10);
    }
  }
  if (o1.some((v, i) => v !== o2[i])) throw new Error("results differ");
  const [a1, a2] = t.map(median);
  console.log(
    `[${O}, ${R}, ${I}] sum axis 1: js ${(a1 * 1000).toFixed(1)} us, wasm ${(a2 * 1000).toFixed(1)} us, ${
      (a1 / a2).toFixed(2)
    }x`,
  );
}

const sm = new WasmSoftmax(new SimdLoops(), null);
const ctx = { alloc: (_d: string, n: number) => new Float32Array(n) } as unknown as CpuContext;
for (const [R, N] of [[2048, 64], [512, 256], [64, 1000]]) {
  const a = Float32Array.from({ length: R * N }, () => Math.random() * 8);
  const x = { shape: [R, N] } as unknown as Node, out = new Float32Array(R * N), lse = new Float32Array(R);
  const [s1, s2] = ab(() => softmax([a], [x], x, {}, ctx), () => sm.softmax(a, out, R, N));
  const [l1, l2] = ab(
    () => logsumexp([a], [x], { shape: [R] } as unknown as Node, {}, ctx),
    () => sm.logsumexp(a, lse, R, N),
  );
  console.log(
    `[${R}, ${N}] softmax: js ${s1.toFixed(1)} us, wasm ${s2.toFixed(1)} us, ${(s1 / s2).toFixed(2)}x; ` +
      `logsumexp: js ${l1.toFixed(1)} us, wasm ${l2.toFixed(1)} us, ${(l1 / l2).toFixed(2)}x`,
  );
}

// The host loops of reduce.ts (sumBlock, maxBlock) as they ran before the Wasm kernels.
function jsRows(a: Float32Array, out: Float32Array, O: number, R: number): void {
  const acc = new Float64Array(O);
  for (let o = 0; o < O; o++) {
    let s = 0;
    for (let r = 0, p = o * R; r < R; r++, p++) s += a[p];
    acc[o] = s;
  }
  out.set(acc);
}
function jsMax(a: Float32Array, out: Float32Array, O: number, R: number, I: number): void {
  const acc = new Float64Array(O * I).fill(-Infinity);
  for (let o = 0; o < O; o++) {
    for (let r = 0, p = o * R * I; r < R; r++) {
      for (let j = 0; j < I; j++, p++) {
        const v = a[p];
        if (v > acc[o * I + j] || v !== v) acc[o * I + j] = v;
      }
    }
  }
  out.set(acc);
}
const rowSums = new WasmRowSums(), maxes = new WasmMax();
for (const [O, R] of [[256, 128], [2048, 64], [64, 1024], [4, 16384], [1, 262144]]) {
  const a = Float32Array.from({ length: O * R }, () => Math.random() - 0.5);
  const o1 = new Float32Array(O), o2 = new Float32Array(O), o3 = new Float32Array(O), o4 = new Float32Array(O);
  const [s1, s2] = ab(() => jsRows(a, o1, O, R), () => rowSums.run(a, o2, O, R));
  const [m1, m2] = ab(() => jsMax(a, o3, O, R, 1), () => maxes.rows(a, o4, O, R));
  if (O >= 8 && o1.some((v, i) => v !== o2[i])) throw new Error("row sums differ");
  if (o3.some((v, i) => v !== o4[i])) throw new Error("row maxima differ");
  console.log(
    `[${O}, ${R}] sum axis -1${O < 8 ? " (blocked)" : ""}: js ${s1.toFixed(1)} us, wasm ${s2.toFixed(1)} us, ${
      (s1 / s2).toFixed(2)
    }x; max: js ${m1.toFixed(1)} us, wasm ${m2.toFixed(1)} us, ${(m1 / m2).toFixed(2)}x`,
  );
}
for (const [O, R, I] of [[1, 512, 128], [8, 64, 128], [1, 1024, 7]]) {
  const a = Float32Array.from({ length: O * R * I }, () => Math.random() - 0.5);
  const o1 = new Float32Array(O * I), o2 = new Float32Array(O * I);
  const [m1, m2] = ab(() => jsMax(a, o1, O, R, I), () => maxes.columns(a, o2, O, R, I));
  if (o1.some((v, i) => v !== o2[i])) throw new Error("column maxima differ");
  console.log(
    `[${O}, ${R}, ${I}] max axis 1: js ${m1.toFixed(1)} us, wasm ${m2.toFixed(1)} us, ${(m1 / m2).toFixed(2)}x`,
  );
}
