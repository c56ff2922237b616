// Reduction and scan variants, each one forced (not the tuner's pick) against the float64
// reference, long rows included; a scan variant changes no bit of the result. Shared by
// kernel_variants_test.ts (llvmpipe: no subgroups) and the browser suite (SwiftShader: subgroups).

import { type BackendOptions, readAll, setBackend, type Tensor, tensor, vjp } from "../../../mod.ts";
import { apply } from "../../../core/mod.ts";
import { leafNode } from "../../../core/graph.ts";
import { requestGpu } from "../../../core/webgpu/device.ts";
import { WebGpuRunner } from "../../../core/webgpu/run.ts";
import {
  REDUCE_VARIANTS,
  reduceFits,
  reduceName,
  type ReduceVariant,
  SCAN_VARIANTS,
  scanFits,
  scanName,
  type ScanVariant,
} from "../../../core/webgpu/kernel_variants.ts";
import { assertClose } from "../../numeric.ts";
import { TOL } from "./spec_checks.ts";

// Realizes `make()`'s tensors on `runner` (inputs are host values).
export async function on(runner: WebGpuRunner, make: () => Tensor[]): Promise<Float32Array[]> {
  const nodes = make().map((t) => t.node);
  const leaves = nodes.map((n) => leafNode(n.shape, n.dtype));
  return (await runner.realize(nodes, leaves, leaves)) as Float32Array[];
}

export async function float64(make: () => Tensor[]): Promise<Float64Array[]> {
  await setBackend("cpu", { precision: "f64" } as BackendOptions);
  const ref = (await readAll(make())) as Float64Array[];
  await setBackend("cpu");
  return ref;
}

// Deterministic values in [-s, s), and values within 1e-6 of 0.1 (the worst case for a sum's drift).
export const wave = (n: number, s = 2) =>
  Float32Array.from({ length: n }, (_, i) => s * Math.sin(i * 0.7 + Math.cos(i)));
const near = (n: number) => Float32Array.from({ length: n }, (_, i) => 0.1 + ((i * 7919) % 13) * 1e-7);

// Rows of one length per case: short (one thread each suits them), medium, and long.
const REDUCTIONS = {
  shape: [[48, 300], [700, 5], [40, 513], [33, 1000], [17, 777], [3, 150_000]],
  make(): Tensor[] {
    const a = tensor(wave(48 * 300), { shape: [48, 300] });
    const b = tensor(wave(700 * 5), { shape: [700, 5] });
    const c = wave(40 * 513);
    c[5] = NaN; // row 0's maximum is NaN
    for (let i = 513; i < 1026; i++) c[i] = -Infinity; // row 1's is -inf
    const d = wave(33 * 1000, 30);
    for (let i = 0; i < 1000; i++) d[i] = -Infinity; // row 0: logsumexp -inf
    d[1500] = Infinity; // row 1: +inf
    d[2700] = NaN; // row 2: NaN
    const x = tensor(c, { shape: [40, 513] }), y = tensor(d, { shape: [33, 1000] });
    const e = tensor(wave(17 * 777, 20), { shape: [17, 777] });
    const long = tensor(near(3 * 150_000), { shape: [3, 150_000] });
    return [
      a.sum({ axis: 1 }),
      a.mul(0.5).exp().sum({ axis: 1 }), // an elementwise prologue inside the reduction
      b.sum({ axis: 0 }), // a non-last axis
      x.max({ axis: 1 }),
      apply("logsumexp", [y], {}),
      apply("softmax", [e], {}),
      long.sum({ axis: 1 }),
      apply("logsumexp", [long.mul(40)], {}),
      apply("softmax", [long], {}),
    ];
  },
};

/**
 * Runs every reduction variant the adapter can (subgroup ones included where it has them, which
 * `requireSubgroups` demands; `which` picks some) on the cases against float64; returns the names run.
 */
export async function checkReduceVariants(
  requireSubgroups = false,
  which: (v: ReduceVariant) => boolean = () => true,
): Promise<string[]> {
  {
    await setBackend("cpu");
    const ref = await float64(REDUCTIONS.make);
    const gpu = (await requestGpu())!;
    const runs: [string, ReduceVariant][] = REDUCE_VARIANTS.map((v) => [reduceName(v), v]);
    if (requireSubgroups && !gpu.subgroups) throw new Error(`${gpu.description} has no subgroups`);
    const ran: string[] = [];
    for (const [name, v] of runs) {
      if ((v.subgroup && !gpu.subgroups) || !which(v)) continue; // (the browser suite runs these on SwiftShader)
      ran.push(name);
      // Each variant runs on at least two of the row lengths (else it would only test the built-in one).
      const fit = REDUCTIONS.shape.filter(([, nr]) => reduceFits(v, nr, gpu.maxWorkgroupSize, gpu.subgroups));
      if (fit.length < 2) throw new Error(`${name} fits only ${fit.length} of the cases`);
      const got = await on(new WebGpuRunner(gpu, { reduce: v, tuning: { enabled: false } }), REDUCTIONS.make);
      got.forEach((g, i) => assertClose(g, ref[i], { ...TOL, msg: `${name} output ${i}` }));
      // The long rows within a tenth of the tolerance, relative only (blocked sums in every variant).
      for (const i of [6, 7]) assertClose(got[i], ref[i], { rtol: TOL.rtol / 10, atol: 0, msg: `${name} long ${i}` });
    }
    return ran;
  }
}

// Scan inputs: V = 5 leaves the two-column variants a ragged last thread and the split ones a
// ragged last workgroup; T = 40; K = 16 lets every split variant run.
const [B, H, T, K, V] = [2, 3, 40, 16, 5];
function scanInputs(): Tensor[] {
  const n = (shape: number[], s: number, off = 0) =>
    tensor(Float32Array.from(wave(shape.reduce((a, b) => a * b), s), (x) => x + off), { shape });
  return [
    n([B, H, T, K], 0.3),
    n([B, H, T, V], 1),
    n([B, H, T], 0.2, -0.3),
    n([B, H, T], 0.2, 0.5),
    n([B, H, K, V], 1),
  ];
}
export function scans(): Tensor[] {
  const ins = scanInputs();
  const f = (...xs: Tensor[]) => apply("deltaScan", xs, {});
  const [states, back] = vjp(f, ...ins);
  const dS = tensor(wave(states.size, 1), { shape: [...states.shape] });
  return [states, ...back(dS)];
}

/**
 * Runs every scan variant (forward and reverse) against float64; those that carry whole columns
 * also against the first one's bits (a split one adds its dot products in another order); `which`
 * picks some. Returns the names run.
 */
export async function checkScanVariants(which: (v: ScanVariant) => boolean = () => true): Promise<string[]> {
  await setBackend("cpu");
  const ref = await float64(scans);
  const gpu = (await requestGpu())!;
  let first: Float32Array[] | null = null;
  const runs: [string, ScanVariant][] = SCAN_VARIANTS.filter(which).map((v) => [scanName(v), v]);
  for (const [name, v] of runs) {
    // A variant that does not fit falls back to the built-in one, which would test nothing new (the
    // reverse scan takes one column a thread: two-column variants run only forward).
    for (const op of v.cols === 1 ? ["deltaScan", "deltaScanGrad"] : ["deltaScan"]) {
      if (!scanFits(v, op, K, gpu.maxWorkgroupSize)) throw new Error(`${name} does not fit ${op} at K ${K}`);
    }
    const got = await on(new WebGpuRunner(gpu, { scan: v, tuning: { enabled: false } }), scans);
    got.forEach((g, i) => assertClose(g, ref[i], { ...TOL, msg: `${name} output ${i}` }));
    first ??= got;
    if (v.split > 1) continue;
    got.forEach((g, i) => {
      const j = g.findIndex((x, k) => !Object.is(x, first![i][k]));
      if (j >= 0) throw new Error(`${name} output ${i}[${j}]: ${g[j]}, the built-in variant gave ${first![i][j]}`);
    });
  }
  return runs.map(([name]) => name);
}
