// The delta-rule scans on one thread vs split over batch x heads on two (pool.ts), median of 15
// rounds, alternating; also checks both give the same bits. Usage: deno run -A bench/scan_wasm.ts

import { WasmScan } from "../core/wasm/scan.ts";
const one = new WasmScan(), two = await WasmScan.create({ threads: 2, threadedWork: 0 });
const med = (x: number[]) => x.sort((a, b) => a - b)[x.length >> 1];
for (const [BH, T, K, V] of [[8, 64, 32, 32], [8, 64, 16, 16], [16, 128, 64, 64], [32, 256, 32, 64], [3, 50, 5, 7]]) {
  const r = (n: number) => Float32Array.from({ length: n }, () => Math.random() * 0.1);
  const ins = [r(BH * T * K), r(BH * T * V), r(BH * T).map((x) => -x), r(BH * T), r(BH * K * V)];
  const o1 = new Float32Array(BH * T * K * V), o2 = new Float32Array(BH * T * K * V);
  const gins = [r(BH * T * K * V), ...ins, o1];
  const g1 = new Float32Array(BH * V * (T * (K + 3) + K)), g2 = new Float32Array(g1.length);
  const t: number[][] = [[], [], [], []];
  for (let i = 0; i < 15; i++) {
    for (
      const [j, f] of [[0, () => one.forward(ins, [BH, T, K, V], o1)], [1, () => two.forward(ins, [BH, T, K, V], o2)], [
        2,
        () => one.backward(gins, [BH, T, K, V], g1),
      ], [3, () => two.backward(gins, [BH, T, K, V], g2)]] as const
    ) {
      const t0 = performance.now();
      f();
      t[j].push(performance.now() - t0);
    }
  }
  const same = o1.every((v, i) => Object.is(v, o2[i])) && g1.every((v, i) => Object.is(v, g2[i]));
  console.log(
    `[${BH},${T},${K},${V}] work 2^${Math.log2(BH * T * K * V).toFixed(1)} fwd 1t ${med(t[0]).toFixed(2)} 2t ${
      med(t[1]).toFixed(2)
    } ms; bwd 1t ${med(t[2]).toFixed(2)} 2t ${
      med(t[3]).toFixed(2)
    } ms; same bits ${same}; worker shares ${two.workerShares}`,
  );
}
