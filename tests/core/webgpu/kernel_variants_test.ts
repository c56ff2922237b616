// Reduction and scan variants on this adapter: each forced against float64 (variant_checks.ts),
// and the tuner's measurement, store and off switch for them.

import { setBackend, tensor } from "../../../mod.ts";
import { apply } from "../../../core/mod.ts";
import { requestGpu } from "../../../core/webgpu/device.ts";
import { WebGpuRunner } from "../../../core/webgpu/run.ts";
import { REDUCE_VARIANTS, SCAN_VARIANTS } from "../../../core/webgpu/kernel_variants.ts";
import { assertClose } from "../../helpers.ts";
import { gpuTest } from "./gpu.ts";
import { TOL } from "./spec_checks.ts";
import { checkReduceVariants, checkScanVariants, float64, on, wave } from "./variant_checks.ts";

gpuTest(
  "every reduction variant matches float64: sums, maxima with NaN and -inf, logsumexp, softmax, long rows",
  async () => {
    const ran = await checkReduceVariants();
    const gpu = (await requestGpu())!;
    const want = REDUCE_VARIANTS.filter((v) => gpu.subgroups || !v.subgroup).length;
    if (ran.length !== want) throw new Error(`ran ${ran}`);
  },
);

gpuTest(
  "every scan variant matches float64 (the reverse scan too), and those carrying whole columns the built-in variant bit for bit",
  async () => {
    const ran = await checkScanVariants();
    if (ran.length !== SCAN_VARIANTS.length) throw new Error(`ran ${ran}`);
  },
);

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
    // (A sum over the first axis is classed apart: its outputs sit side by side, a column each.)
    const make = () => [apply("logsumexp", [rows()], {}), apply("deltaScan", scanIn(), {}), rows().sum({ axis: 0 })];
    try {
      await setBackend("cpu");
      const ref = await float64(make);
      const first = new WebGpuRunner(gpu, { tuning: { cacheFile, budgetMs: 400 } });
      const got = await on(first, make);
      got.forEach((g, i) => assertClose(g, ref[i], { ...TOL, msg: `tuned output ${i}` }));
      await on(first, make); // the same classes: nothing more to measure
      const classes = ["logsumexp 64x16384", "deltaScan 256x128x32", "sum outer 16384x64"];
      const chosen = classes.map((c) => first.tuner.kernels.choice(c));
      if (first.tuner.kernels.measured !== 3 || chosen.includes(undefined)) {
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
