// Column sums (f32 over a non-last axis): the host JS loop vs the Wasm SIMD kernel, median of rounds.
// Usage: deno run -A bench/reduce_wasm.ts

import { WasmColumnSums } from "../core/wasm/reduce_simd.ts";

function js(a: Float32Array, out: Float32Array, O: number, R: number, I: number): void {
  const acc = new Float64Array(O * I);
  for (let o = 0; o < O; o++) {
    for (let r = 0, p = o * R * I; r < R; r++) for (let j = 0; j < I; j++, p++) acc[o * I + j] += a[p];
  }
  out.set(acc);
}

const cols = new WasmColumnSums();
const median = (xs: number[]) => xs.sort((x, y) => x - y)[xs.length >> 1];
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
