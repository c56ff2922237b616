// The page half of bench/kernel_variants_browser.ts (bundled by it, run in Chromium): on the page's
// WebGPU adapter, the built-in variant against the tuner's choice for a few matmuls, reductions and
// the delta-rule scan, alternated for a few rounds (query `rounds`, default 5), medians printed.
// Each result is one console line starting "kv "; the last is "kv done" (or "kv error ...").

import { leafNode, Node } from "../core/graph.ts";
import { type Gpu, requestGpu } from "../core/webgpu/device.ts";
import type { KernelFeatures } from "../core/webgpu/emit.ts";
import { type KernelPlan, planKernels } from "../core/webgpu/plan.ts";
import { timeKernel } from "../core/webgpu/tune_time.ts";
import { MatmulTuner, sizeClass } from "../core/webgpu/tune.ts";
import { KernelTuner } from "../core/webgpu/tune_kernels.ts";
import { tunableClass } from "../core/webgpu/kernel_variants.ts";
import { variantName } from "../core/webgpu/variants.ts";
import { CASES, forcing, variantLabel } from "./kernel_variants.ts";

const BUDGET_MS = 1500; // the tuner's default budget per size class
const query = new URLSearchParams(globalThis.location?.search ?? "");
const ROUNDS = Number(query.get("rounds") ?? 5);
const WANTED = [
  "row sums [1024,1024]",
  "logsumexp [384,32768]",
  "deltaScan B2 H4 T128 K32 V32",
  "deltaScanGrad B2 H4 T128 K32 V32",
  "deltaScan B1 H4 T128 K128 V64 (a large state column)",
];

const say = (line: string) => console.log(`kv ${line}`);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

// Medians (ms) of the built-in kernel and the chosen one, timed alternately (the chosen one is not
// timed again when it is the built-in one).
async function alternate(gpu: Gpu, builtIn: KernelPlan, chosen: KernelPlan | null): Promise<[number, number]> {
  const a: number[] = [], b: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    a.push(await timeKernel(gpu, builtIn, BUDGET_MS) ?? Infinity);
    if (chosen) b.push(await timeKernel(gpu, chosen, BUDGET_MS) ?? Infinity);
  }
  const ma = median(a);
  return [ma, chosen ? median(b) : ma];
}

async function matmuls(gpu: Gpu, base: KernelFeatures) {
  const tuner = new MatmulTuner(gpu, { cacheFile: null, budgetMs: BUDGET_MS });
  for (const n of [256, 512, 1024]) {
    const builtIn = tuner.candidates(1, n, n)[0];
    const m = new Node("matmul", [n, n], "f32", [leafNode([n, n], "f32"), leafNode([n, n], "f32")], {});
    const plan = (v: typeof builtIn) =>
      planKernels([m], gpu.maxStorageBuffers, undefined, { ...base, matmulVariant: () => v })[0];
    // (query `prewarm`: one untimed run of the built-in tile first, to see whether the tuner's
    // first timing, the built-in one, pays for a cold start.)
    if (query.has("prewarm")) await timeKernel(gpu, plan(builtIn), BUDGET_MS);
    const t0 = performance.now();
    await tuner.measure([[1, n, n, n]], base);
    const tuneMs = performance.now() - t0;
    const chosen = tuner.choice(sizeClass(1, n, n, n)) ?? builtIn;
    const same = variantName(chosen) === variantName(builtIn);
    const [msA, msB] = await alternate(gpu, plan(builtIn), same ? null : plan(chosen));
    const rate = (ms: number) => (2 * n ** 3 / ms / 1e6).toFixed(2);
    say(
      `matmul ${n}: built-in ${variantName(builtIn)} ${msA.toFixed(2)} ms ${rate(msA)} GFLOP/s; ` +
        `tuner keeps ${variantName(chosen)} ${msB.toFixed(2)} ms ${rate(msB)} GFLOP/s (tuning ${tuneMs.toFixed(0)} ms)`,
    );
  }
}

async function kernels(gpu: Gpu, base: KernelFeatures) {
  const tuner = new KernelTuner(gpu, BUDGET_MS);
  for (const [label, u, n] of CASES.filter(([l]) => WANTED.includes(l))) {
    const candidates = tuner.candidates(u, gpu.subgroups), builtIn = candidates[0];
    await tuner.measure(u, base);
    const name = tuner.choice(tunableClass(u));
    const chosen = candidates.find((v) => variantLabel(u, v) === name) ?? builtIn;
    const plan = (v: typeof builtIn) =>
      planKernels([n], gpu.maxStorageBuffers, undefined, forcing(u, v, gpu.subgroups))[0];
    const [msA, msB] = await alternate(gpu, plan(builtIn), chosen === builtIn ? null : plan(chosen));
    say(
      `${label}: built-in ${variantLabel(u, builtIn)} ${msA.toFixed(2)} ms; ` +
        `tuner keeps ${variantLabel(u, chosen)} ${msB.toFixed(2)} ms (${candidates.length} candidates)`,
    );
  }
}

try {
  const gpu = await requestGpu();
  if (gpu === null) throw new Error("no WebGPU adapter");
  say(`${gpu.description} (subgroups: ${gpu.subgroups}, timestamps: ${gpu.timestamps}), ${ROUNDS} rounds`);
  const base: KernelFeatures = { ownTrig: !gpu.accurateTrig, subgroups: gpu.subgroups };
  if (query.get("only") !== "kernels") await matmuls(gpu, base);
  if (query.get("only") !== "matmul") await kernels(gpu, base);
  say("done");
} catch (e) {
  say(`error ${(e as Error).stack ?? e}`);
}
