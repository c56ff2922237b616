// The host JS loops vs the Wasm SIMD kernels, median of rounds: column sums (f32 over a non-last
// axis), softmax and logsumexp rows.
// Usage: deno run -A bench/reduce_wasm.ts

import { WasmColumnSums } from "../core/wasm/reduce_simd.ts";
import { WasmSoftmax } from "../core/wasm/softmax_simd.ts";
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

const sm = new WasmSoftmax();
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
