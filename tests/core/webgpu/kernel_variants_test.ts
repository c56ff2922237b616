// Reduction and scan variants: each one forced (not the tuner's pick) against the float64
// reference, long rows included; a scan variant changes no bit of the result.

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
  scanName,
  type ScanVariant,
} from "../../../core/webgpu/kernel_variants.ts";
import { assertClose } from "../../helpers.ts";
import { gpuTest } from "./gpu.ts";
import { TOL } from "./spec_checks.ts";

// Realizes `make()`'s tensors on `runner` (inputs are host values).
async function on(runner: WebGpuRunner, make: () => Tensor[]): Promise<Float32Array[]> {
  const nodes = make().map((t) => t.node);
  const leaves = nodes.map((n) => leafNode(n.shape, n.dtype));
  return (await runner.realize(nodes, leaves, leaves)) as Float32Array[];
}

async function float64(make: () => Tensor[]): Promise<Float64Array[]> {
  await setBackend("cpu", { precision: "f64" } as BackendOptions);
  const ref = (await readAll(make())) as Float64Array[];
  await setBackend("cpu");
  return ref;
}

// Deterministic values in [-s, s), and values within 1e-6 of 0.1 (the worst case for a sum's drift).
const wave = (n: number, s = 2) => Float32Array.from({ length: n }, (_, i) => s * Math.sin(i * 0.7 + Math.cos(i)));
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

gpuTest(
  "every reduction variant matches float64: sums, maxima with NaN and -inf, logsumexp, softmax, long rows",
  async () => {
    await setBackend("cpu");
    const ref = await float64(REDUCTIONS.make);
    const gpu = (await requestGpu())!;
    const runs: [string, ReduceVariant][] = REDUCE_VARIANTS.map((v) => [reduceName(v), v]);
    for (const [name, v] of runs) {
      if (v.subgroup && !gpu.subgroups) continue; // (the browser suite runs these on SwiftShader)
      // Each variant runs on at least two of the row lengths (else it would only test the built-in one).
      const fit = REDUCTIONS.shape.filter(([, nr]) => reduceFits(v, nr, gpu.maxWorkgroupSize, gpu.subgroups));
      if (fit.length < 2) throw new Error(`${name} fits only ${fit.length} of the cases`);
      const got = await on(new WebGpuRunner(gpu, { reduce: v, tuning: { enabled: false } }), REDUCTIONS.make);
      got.forEach((g, i) => assertClose(g, ref[i], { ...TOL, msg: `${name} output ${i}` }));
      // The long rows within a tenth of the tolerance, relative only (blocked sums in every variant).
      for (const i of [6, 7]) assertClose(got[i], ref[i], { rtol: TOL.rtol / 10, atol: 0, msg: `${name} long ${i}` });
    }
  },
);

// Scan inputs: V = 5 leaves the two-column variants a ragged last thread; T = 40.
const [B, H, T, K, V] = [2, 3, 40, 8, 5];
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
function scans(): Tensor[] {
  const ins = scanInputs();
  const f = (...xs: Tensor[]) => apply("deltaScan", xs, {});
  const [states, back] = vjp(f, ...ins);
  const dS = tensor(wave(states.size, 1), { shape: [...states.shape] });
  return [states, ...back(dS)];
}

gpuTest("every scan variant matches float64 (the reverse scan too) and the built-in variant bit for bit", async () => {
  await setBackend("cpu");
  const ref = await float64(scans);
  const gpu = (await requestGpu())!;
  let first: Float32Array[] | null = null;
  const runs: [string, ScanVariant][] = SCAN_VARIANTS.map((v) => [scanName(v), v]);
  for (const [name, v] of runs) {
    const got = await on(new WebGpuRunner(gpu, { scan: v, tuning: { enabled: false } }), scans);
    got.forEach((g, i) => assertClose(g, ref[i], { ...TOL, msg: `${name} output ${i}` }));
    first ??= got;
    got.forEach((g, i) => {
      const j = g.findIndex((x, k) => !Object.is(x, first![i][k]));
      if (j >= 0) throw new Error(`${name} output ${i}[${j}]: ${g[j]}, the built-in variant gave ${first![i][j]}`);
    });
  }
});

gpuTest(
  "the tuner measures a reduction's and a scan's size class once, stores the choice per adapter, and can be off",
  async () => {
    const gpu = (await requestGpu())!;
    const dir = await Deno.makeTempDir();
    const cacheFile = `${dir}/tiles.json`;
    // 2^20 values in 64 rows (worth measuring), and a scan reading 2^20 (B H T K V = 2 4 128 32 32).
    const rows = () => tensor(wave(64 * 16384), { shape: [64, 16384] });
    const scanIn = () => {
      const [b, h, t, k, v] = [2, 4, 128, 32, 32];
      const n = (shape: number[], s: number, off = 0) =>
        tensor(Float32Array.from(wave(shape.reduce((a, b) => a * b), s), (x) => x + off), { shape });
      return [
        n([b, h, t, k], 0.1),
        n([b, h, t, v], 1),
        n([b, h, t], 0.1, -0.2),
        n([b, h, t], 0.1, 0.3),
        n([b, h, k, v], 1),
      ];
    };
    const make = () => [apply("logsumexp", [rows()], {}), apply("deltaScan", scanIn(), {})];
    try {
      await setBackend("cpu");
      const ref = await float64(make);
      const first = new WebGpuRunner(gpu, { tuning: { cacheFile, budgetMs: 400 } });
      const got = await on(first, make);
      got.forEach((g, i) => assertClose(g, ref[i], { ...TOL, msg: `tuned output ${i}` }));
      await on(first, make); // the same classes: nothing more to measure
      const classes = ["logsumexp 64x16384", "deltaScan 256x128x32"];
      const chosen = classes.map((c) => first.tuner.kernels.choice(c));
      if (first.tuner.kernels.measured !== 2 || chosen.includes(undefined)) {
        throw new Error(`measured ${first.tuner.kernels.measured} classes, chose ${chosen}`);
      }
      const saved = JSON.parse(await Deno.readTextFile(cacheFile))[first.tuner.adapterKey];
      if (classes.some((c, i) => saved?.[c] !== chosen[i])) {
        throw new Error(
          `the cache file holds ${JSON.stringify(saved)}`,
        );
      }
      // A later session reads the choices instead of measuring, and computes the same.
      const second = new WebGpuRunner(gpu, { tuning: { cacheFile } });
      const again = await on(second, make);
      if (second.tuner.kernels.measured !== 0 || classes.some((c, i) => second.tuner.kernels.choice(c) !== chosen[i])) {
        throw new Error(`the second session measured ${second.tuner.kernels.measured}`);
      }
      again.forEach((g, i) => assertClose(g, ref[i], { ...TOL, msg: `stored choice, output ${i}` }));
      const off = new WebGpuRunner(gpu, { tuning: { enabled: false, cacheFile: `${dir}/off.json` } });
      await on(off, make);
      if (off.tuner.kernels.measured !== 0) throw new Error("a disabled tuner measured");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);
