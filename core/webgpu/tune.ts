// Matmul variants chosen per adapter by measurement: the first product of a size class on a device
// times the candidate variants (the built-in register tile first, then the other register tiles and
// the workgroup-memory tiles) within a budget, keeps the fastest, and remembers it per adapter (in a
// file under Deno when permitted, in IndexedDB in a browser, else for the session: tune_store.ts).

import { leafNode, Node } from "../graph.ts";
import type { Gpu } from "./device.ts";
import type { KernelFeatures } from "./emit.ts";
import { type KernelPlan, planKernels } from "./plan.ts";
import { type ChoiceStore, choiceStore, envFlag } from "./tune_store.ts";
import { builtInVariant, type MatmulVariant, stagedBytes, variantName, variantNamed, VARIANTS } from "./variants.ts";
import {
  reduceName,
  type ReduceVariant,
  scanName,
  type ScanVariant,
  type Tunable,
  tunableClass,
} from "./kernel_variants.ts";
import { KernelTuner } from "./tune_kernels.ts";
import { confirmChoice, timeKernel } from "./tune_time.ts";

/** Something to measure: a matmul product (batch, M, N, K), or a reduction or scan. */
export type TuneJob = readonly [number, number, number, number] | Tunable;

// Products smaller than this keep the built-in tile: launch and loop overheads dominate them, and
// measuring every small shape would slow first runs (and tests) for nothing.
const MIN_WORK = 2 ** 21;
// A candidate replaces the built-in tile only when it takes at most this fraction of its time, so
// noise on a busy machine does not pick a slower one.
const MARGIN = 0.9;
// Products above this many multiply-adds are screened on a product with sides capped at PROXY_SIDE
// first; the SHORTLIST fastest candidates of the screen are then timed at full size.
const PROXY_WORK = 2 ** 27;
const PROXY_SIDE = 256;
const SHORTLIST = 2;

/** How the tuner runs. */
export interface TuneOptions {
  /**
   * Measure at all (default true; `JETFOLD_TUNE=0` turns it off where env access is granted, and
   * so does `globalThis.JETFOLD_TUNE = "0"` in a browser).
   */
  readonly enabled?: boolean;
  /** Milliseconds one size class may spend compiling and timing candidates (default 1500). */
  readonly budgetMs?: number;
  /**
   * Where choices are kept across runs; null keeps them in memory only. Default: a file under the
   * user's cache under Deno, IndexedDB in a browser.
   */
  readonly cacheFile?: string | null;
}

/** A size class: each of batch, M, N and K rounded up to a power of two. */
export function sizeClass(Z: number, M: number, N: number, K: number): string {
  const p = (n: number) => 2 ** Math.ceil(Math.log2(Math.max(n, 1)));
  return `${p(Z)}x${p(M)}x${p(N)}x${p(K)}`;
}

/** The variants one device measured fastest, by size class; measures new classes on request. */
export class MatmulTuner {
  readonly enabled: boolean;
  readonly budgetMs: number;
  /** Where the choices are kept across sessions. */
  readonly store: ChoiceStore;
  /** Identifies the adapter in the cache file. */
  readonly adapterKey: string;
  /** Matmul size classes measured by this tuner (not read from the cache): for tests. */
  measured = 0;
  /** The reductions' and scans' variants (measured here; stored with the matmul choices). */
  readonly kernels: KernelTuner;
  /** Candidate runs the device reported an error for (their times are not trusted): for tests. */
  rejected = 0;
  /** Bumped whenever a choice is added: plans built before it are rebuilt. */
  version = 0;
  readonly #gpu: Gpu;
  readonly #choices = new Map<string, MatmulVariant>();
  #loading: Promise<void> | null = null;
  #loaded = false;

  constructor(gpu: Gpu, opts: TuneOptions = {}) {
    this.#gpu = gpu;
    this.enabled = opts.enabled ?? envFlag("JETFOLD_TUNE") !== "0";
    this.budgetMs = opts.budgetMs ?? 1500;
    this.store = choiceStore(opts.cacheFile);
    this.kernels = new KernelTuner(gpu, this.budgetMs);
    this.adapterKey =
      `${gpu.description}|${gpu.maxWorkgroupSize}|${gpu.maxStorageBuffers}|${gpu.timestamps}|${gpu.subgroups}`;
  }

  /** The measured variant for a product of this size, or undefined (use the built-in choice). */
  readonly variant = (Z: number, M: number, N: number, K: number): MatmulVariant | undefined =>
    this.#choices.get(sizeClass(Z, M, N, K));

  /** The choice for a size class, for tests and reports. */
  choice(cls: string): MatmulVariant | undefined {
    return this.#choices.get(cls);
  }

  /** The variants this device can run for a product with M rows, the built-in one first. */
  candidates(Z: number, M: number, N: number): MatmulVariant[] {
    const builtIn = builtInVariant(Z, M, N), storage = this.#gpu.device.limits.maxComputeWorkgroupStorageSize;
    return [
      builtIn,
      ...VARIANTS.filter((v) =>
        variantName(v) !== variantName(builtIn) && v.rows <= M &&
        (v.kind === "register" || (v.wx * v.wy <= this.#gpu.maxWorkgroupSize && stagedBytes(v) <= storage))
      ),
    ];
  }

  /** The products, reductions and scans among `kernels` worth measuring and not measured yet. */
  untuned(kernels: readonly KernelPlan[]): TuneJob[] {
    if (!this.enabled || !this.#loaded) return [];
    const seen = new Set<string>(), out: TuneJob[] = [];
    for (const k of kernels) {
      const p = k.matmul, u = k.tunable;
      if (u !== undefined && this.kernels.wants(u)) {
        const cls = tunableClass(u);
        if (!seen.has(cls)) out.push(u);
        seen.add(cls);
      }
      if (p === undefined || p[0] * p[1] * p[2] * p[3] < MIN_WORK) continue;
      const cls = sizeClass(...p);
      if (this.#choices.has(cls) || seen.has(cls)) continue;
      seen.add(cls);
      out.push(p);
    }
    return out;
  }

  /**
   * Times the candidate variants for each product and keeps the fastest per size class. A product
   * above PROXY_WORK first screens every candidate on a smaller product of the same shape of
   * thread (capped sides: a slow candidate on a software adapter would otherwise take seconds per
   * run), then times the built-in variant and the SHORTLIST fastest of the screen at full size.
   */
  async measure(jobs: readonly TuneJob[], features: KernelFeatures) {
    for (const job of jobs) {
      if ("kind" in job) {
        await this.kernels.measure(job, features);
        continue;
      }
      const p = job;
      const [Z, M, N, K] = p;
      const candidates = this.candidates(Z, M, N), builtIn = candidates[0];
      const start = performance.now(), within = () => performance.now() - start <= this.budgetMs;
      let finalists = candidates;
      if (Z * M * N * K > PROXY_WORK) {
        const proxy = [
          Math.min(Z, 2),
          Math.min(M, PROXY_SIDE),
          Math.min(N, PROXY_SIDE),
          Math.min(K, PROXY_SIDE),
        ] as const;
        const screened: [MatmulVariant, number][] = [];
        for (const c of candidates) {
          if (c !== builtIn && !within()) break;
          screened.push([c, await this.#time(proxy, c, features)]);
        }
        const ranked = screened.filter(([c, ms]) => c !== builtIn && ms < Infinity).sort((x, y) => x[1] - y[1]);
        finalists = [builtIn, ...ranked.slice(0, SHORTLIST).map(([c]) => c)];
      }
      let best = builtIn, bestMs = Infinity, builtInMs = Infinity;
      for (const c of finalists) {
        if (c !== builtIn && !within()) break;
        const ms = await this.#time(p, c, features);
        if (c === builtIn) builtInMs = ms;
        if (ms < bestMs) [best, bestMs] = [c, ms];
      }
      best = await confirmChoice(
        { variant: builtIn, ms: builtInMs },
        { variant: best, ms: bestMs },
        (v) => this.#time(p, v, features),
        MARGIN,
      );
      this.#choices.set(sizeClass(Z, M, N, K), best);
      this.measured++;
    }
    this.version++;
    await this.store.write(
      this.adapterKey,
      Object.fromEntries([...[...this.#choices].map(([c, v]) => [c, variantName(v)]), ...this.kernels.entries()]),
    );
  }

  // Milliseconds of one run of a plain matmul of this size with variant `t` (Infinity: rejected).
  async #time(p: readonly [number, number, number, number], t: MatmulVariant, features: KernelFeatures) {
    const [Z, M, N, K] = p;
    const lead = Z > 1 ? [Z] : [];
    const a = leafNode([...lead, M, K], "f32"), b = leafNode([...lead, K, N], "f32");
    const m = new Node("matmul", [...lead, M, N], "f32", [a, b], {});
    const [kernel] = planKernels([m], this.#gpu.maxStorageBuffers, undefined, { ...features, matmulVariant: () => t });
    const ms = await timeKernel(this.#gpu, kernel, this.budgetMs);
    if (ms === null) this.rejected++;
    return ms ?? Infinity;
  }

  /** True once the stored choices were read (`load`): until then `untuned` reports nothing. */
  get loaded(): boolean {
    return this.#loaded;
  }

  /** Reads this adapter's stored choices, once (later calls return the same promise). */
  load(): Promise<void> {
    return this.#loading ??= this.store.read(this.adapterKey).then((stored) => {
      for (const [cls, name] of Object.entries(stored)) {
        if (this.kernels.adopt(cls, name)) continue;
        // (Names of variants this version does not have, or older entries, are measured again.)
        const v = typeof name === "string" ? variantNamed(name) : undefined;
        if (v !== undefined && !this.#choices.has(cls)) this.#choices.set(cls, v);
      }
      if (Object.keys(stored).length > 0) this.version++;
      this.#loaded = true;
    });
  }
}

/** Variants a runner uses wherever they apply instead of measured ones (for tests). */
export interface ForcedVariants {
  readonly variant?: MatmulVariant;
  readonly reduce?: ReduceVariant;
  readonly scan?: ScanVariant;
}

/**
 * What a runner's WGSL adapts to: the device's trig and subgroups, and the variants forced on it
 * (then nothing measured is used) or else those its tuner measured, unless tuning is off.
 */
export function kernelFeatures(gpu: Gpu, tuner: MatmulTuner, forced: ForcedVariants): KernelFeatures {
  const ownTrig = !gpu.accurateTrig, subgroups = gpu.subgroups;
  const { variant, reduce, scan } = forced;
  if (variant || reduce || scan) {
    const names = [variant && variantName(variant), reduce && reduceName(reduce), scan && scanName(scan)];
    return {
      ownTrig,
      subgroups,
      matmulVariant: variant && (() => variant),
      reduceVariant: reduce && (() => reduce),
      scanVariant: scan && (() => scan),
      tuning: `forced ${names.join(", ")}`,
    };
  }
  if (!tuner.enabled) return { ownTrig, subgroups };
  const { reduceVariant, scanVariant } = tuner.kernels;
  return { ownTrig, subgroups, matmulVariant: tuner.variant, reduceVariant, scanVariant, tuning: `${tuner.version}` };
}
