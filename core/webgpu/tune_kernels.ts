// Reduction and scan variants chosen per adapter by measurement, beside the matmul tiles (tune.ts
// owns the store and calls this): the first kernel of a size class on a device times the candidate
// variants (the built-in one first) within a budget and keeps the fastest, by a margin.

import { leafNode, Node } from "../graph.ts";
import { PRIMS } from "../prims/mod.ts";
import type { Gpu } from "./device.ts";
import type { KernelFeatures } from "./emit.ts";
import {
  BUILT_IN_SCAN,
  builtInReduce,
  REDUCE_VARIANTS,
  reduceFits,
  reduceName,
  reduceNamed,
  type ReduceVariant,
  SCAN_VARIANTS,
  scanFits,
  scanName,
  scanNamed,
  type ScanVariant,
  type Tunable,
  tunableClass,
} from "./kernel_variants.ts";
import { planKernels } from "./plan.ts";
import { confirmChoice, timeKernel } from "./tune_time.ts";
import { reduceClass, scanClass } from "./kernel_variants.ts";

// Kernels reading fewer values than this keep the built-in variant (launch overhead dominates).
const MIN_WORK = 2 ** 20;
// Timing graphs are capped at this many input values (rows dropped) and this many tokens: a
// reduction's or scan's time grows linearly in both, so the ranking stays.
const MAX_TIMED = 2 ** 23;
const MAX_TOKENS = 64;
// A candidate replaces the built-in variant only when it takes at most this fraction of its time.
const MARGIN = 0.9;

/** Values a tunable kernel reads (the measure of whether tuning it pays). */
function workOf(u: Tunable): number {
  if (u.kind === "reduce") return u.nOut * u.nr;
  const [B, H, T, K, V] = u.dims;
  return B * H * T * K * V;
}

function mk(
  op: "sum" | "max" | "logsumexp" | "softmax" | "deltaScan" | "deltaScanGrad",
  src: Node[],
  axes?: number[],
): Node {
  const params = op === "sum" || op === "max" ? { axes } : {};
  // deno-lint-ignore no-explicit-any
  const aval = (PRIMS[op] as any).shape(src, params);
  return new Node(op, aval.shape, aval.dtype, src, params);
}

/** A graph of one kernel like `u` (capped in size), on leaves. */
function timingNode(u: Tunable): Node {
  if (u.kind === "reduce") {
    const rows = Math.max(1, Math.min(u.nOut, Math.floor(MAX_TIMED / u.nr)));
    // "sum outer": outputs side by side, each reading a column.
    const [op, outer] = u.op.split(" ");
    if (outer) return mk(op as "sum", [leafNode([u.nr, rows], "f32")], [0]);
    return mk(op as "sum", [leafNode([rows, u.nr], "f32")], [1]);
  }
  const [B, H, T0, K, V] = u.dims, T = Math.min(T0, MAX_TOKENS);
  const f = (...shape: number[]) => leafNode(shape, "f32");
  const ins = [f(B, H, T, K), f(B, H, T, V), f(B, H, T), f(B, H, T), f(B, H, K, V)];
  if (u.op === "deltaScan") return mk("deltaScan", ins);
  return mk("deltaScanGrad", [f(B, H, T, K, V), ...ins, f(B, H, T, K, V)]);
}

/** The reduction and scan variants one device measured fastest, by size class. */
export class KernelTuner {
  /** Size classes measured by this tuner (not read from the cache): for tests. */
  measured = 0;
  /** Candidate runs the device reported an error for: for tests. */
  rejected = 0;
  readonly #gpu: Gpu;
  readonly #budgetMs: number;
  readonly #choices = new Map<string, string>(); // size class -> variant name

  constructor(gpu: Gpu, budgetMs: number) {
    this.#gpu = gpu;
    this.#budgetMs = budgetMs;
  }

  /** The measured reduction variant for this size, or undefined (the built-in choice). */
  readonly reduceVariant = (op: string, nOut: number, nr: number): ReduceVariant | undefined =>
    reduceNamed(this.#choices.get(reduceClass(op, nOut, nr)) ?? "");

  /** The measured scan variant for this size, or undefined. */
  readonly scanVariant = (op: string, columns: number, T: number, K: number): ScanVariant | undefined =>
    scanNamed(this.#choices.get(scanClass(op, columns, T, K)) ?? "");

  /** The chosen variant's name for a size class, for tests and reports. */
  choice(cls: string): string | undefined {
    return this.#choices.get(cls);
  }

  /** Every choice, to store. */
  entries(): [string, string][] {
    return [...this.#choices];
  }

  /** Takes a stored choice; false when the entry is not a reduction's or scan's of this version. */
  adopt(cls: string, name: unknown): boolean {
    if (typeof name !== "string" || !cls.includes(" ")) return false;
    if (reduceNamed(name) === undefined && scanNamed(name) === undefined) return false;
    if (!this.#choices.has(cls)) this.#choices.set(cls, name);
    return true;
  }

  /** True when `u` is worth measuring and its class was not measured yet. */
  wants(u: Tunable): boolean {
    return workOf(u) >= MIN_WORK && !this.#choices.has(tunableClass(u));
  }

  /** The variants this device can run for `u`, the built-in one first. */
  candidates(u: Tunable, subgroups: boolean): (ReduceVariant | ScanVariant)[] {
    const max = this.#gpu.maxWorkgroupSize;
    if (u.kind === "reduce") {
      const builtIn = builtInReduce(u.nr, u.nOut);
      return [builtIn, ...REDUCE_VARIANTS.filter((v) => v !== builtIn && reduceFits(v, u.nr, max, subgroups))];
    }
    return [BUILT_IN_SCAN, ...SCAN_VARIANTS.filter((v) => v !== BUILT_IN_SCAN && scanFits(v, u.op, u.dims[3], max))];
  }

  /** Times the candidates for `u` within the budget and keeps the fastest (by MARGIN). */
  async measure(u: Tunable, features: KernelFeatures): Promise<void> {
    const candidates = this.candidates(u, features.subgroups ?? false), builtIn = candidates[0];
    const node = timingNode(u);
    const start = performance.now();
    const time = async (c: ReduceVariant | ScanVariant) => {
      const forced: KernelFeatures = u.kind === "reduce"
        ? { ...features, reduceVariant: () => c as ReduceVariant }
        : { ...features, scanVariant: () => c as ScanVariant };
      const [kernel] = planKernels([node], this.#gpu.maxStorageBuffers, undefined, forced);
      const got = await timeKernel(this.#gpu, kernel, this.#budgetMs);
      if (got === null) this.rejected++;
      return got ?? Infinity;
    };
    let best = builtIn, bestMs = Infinity, builtInMs = Infinity;
    for (const c of candidates) {
      if (c !== builtIn && performance.now() - start > this.#budgetMs) break;
      const ms = await time(c);
      if (c === builtIn) builtInMs = ms;
      if (ms < bestMs) [best, bestMs] = [c, ms];
    }
    best = await confirmChoice({ variant: builtIn, ms: builtInMs }, { variant: best, ms: bestMs }, time, MARGIN);
    const name = u.kind === "reduce" ? reduceName(best as ReduceVariant) : scanName(best as ScanVariant);
    this.#choices.set(tunableClass(u), name);
    this.measured++;
  }
}
