// The Wasm SIMD gated delta-rule scan and its reverse scan against the reference rules (float64
// state) on random sizes: value columns not a multiple of the four lanes, size-1 axes, odd K and T;
// and on the backend, gradients included, with a repeated step compiling no module.

import fc from "fast-check";
import { SCAN } from "../../../core/prims/scan.ts";
import { apply } from "../../../core/tensor.ts";
import { WasmScan } from "../../../core/wasm/scan.ts";
import { grad, readAll, resetStats, setBackend, stats, type Tensor, tensor } from "../../../mod.ts";
import { assertClose } from "../../helpers.ts";
import { f32Aval, kernelCtx, seededValues } from "./backend_helpers.ts";

const ctx = kernelCtx, aval = f32Aval, values = seededValues;

function inputs(seed: number, B: number, H: number, T: number, K: number, V: number) {
  const k = values(seed, B * H * T * K, -1, 1), v = values(seed + 1, B * H * T * V, -2, 2);
  const g = values(seed + 2, B * H * T, -1, 0), beta = values(seed + 3, B * H * T, 0.05, 1);
  const s0 = values(seed + 4, B * H * K * V, -1, 1);
  const avals = [aval(B, H, T, K), aval(B, H, T, V), aval(B, H, T), aval(B, H, T), aval(B, H, K, V)];
  return { ins: [k, v, g, beta, s0], avals };
}

const sizes = fc.tuple(
  fc.integer({ min: 1, max: 2 }),
  fc.integer({ min: 1, max: 3 }),
  fc.integer({ min: 1, max: 9 }),
  fc.integer({ min: 1, max: 9 }),
  fc.integer({ min: 1, max: 11 }),
  fc.integer({ min: 1, max: 1e6 }),
);

Deno.test("Wasm deltaScan and deltaScanGrad match the reference rules on random sizes", () => {
  const scan = new WasmScan();
  fc.assert(
    fc.property(sizes, ([B, H, T, K, V, seed]) => {
      const { ins, avals } = inputs(seed, B, H, T, K, V);
      const want = SCAN.deltaScan.cpu(ins, avals, aval(B, H, T, K, V), {}, ctx) as Float32Array;
      const got = new Float32Array(want.length).fill(NaN);
      scan.forward(ins, [B * H, T, K, V], got);
      assertClose(got, want, { rtol: 1e-4, atol: 1e-5, msg: `states, ${[B, H, T, K, V]}` });
      const dS = values(seed + 5, want.length, -1, 1);
      const gIns = [dS, ...ins, want], gAvals = [aval(B, H, T, K, V), ...avals, aval(B, H, T, K, V)];
      const wantG = SCAN.deltaScanGrad.cpu(gIns, gAvals, aval(), {}, ctx) as Float32Array;
      const gotG = new Float32Array(wantG.length).fill(NaN);
      scan.backward(gIns, [B * H, T, K, V], gotG);
      assertClose(gotG, wantG, { rtol: 1e-4, atol: 1e-5, msg: `packed gradient, ${[B, H, T, K, V]}` });
    }),
    { numRuns: 150 },
  );
});

Deno.test("the scan on the Wasm backend matches the CPU, gradients too, and a repeated step compiles no module", async () => {
  const run = async (seed: number, [B, H, T, K, V]: number[]) => {
    const { ins, avals } = inputs(seed, B, H, T, K, V);
    const xs = ins.map((d, i) => tensor(d, { shape: avals[i].shape }));
    const w = tensor(values(seed + 9, B * H * T * K * V, -1, 1), { shape: [B, H, T, K, V] });
    const loss = (...a: Tensor[]) => apply("deltaScan", a, {}).mul(w).sum();
    const grads = grad(loss, { argnums: [0, 1, 2, 3, 4] })(...xs) as unknown as Tensor[];
    return await readAll([apply("deltaScan", xs, {}), ...grads]);
  };
  const shape = [2, 2, 7, 5, 6];
  await setBackend("wasm");
  const wasm = await run(3, shape);
  resetStats();
  await run(4, [1, 3, 5, 9, 13]); // other sizes, the same module
  const compiled = stats().shaderModules;
  await setBackend("cpu");
  const cpu = await run(3, shape);
  wasm.forEach((w, i) => assertClose(w, cpu[i], { rtol: 1e-4, atol: 1e-5, msg: `output ${i}` }));
  if (compiled !== 0) throw new Error(`a repeated scan step compiled ${compiled} modules`);
});
