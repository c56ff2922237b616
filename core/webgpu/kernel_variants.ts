// The reduction and delta-rule scan variants a device may be tuned to, beside the matmul tiles of
// variants.ts: how many threads share one output, how big a workgroup is, whether partial results
// merge through subgroup operations, and how many state columns one scan thread carries (or how
// many threads share one column's state).

import type { Node } from "../graph.ts";

/**
 * A reduction's (sum, max, logsumexp, softmax rows) parameters: `lanes` threads share one output
 * (1: a thread adds its output's values alone; more: strided partials merged in workgroup memory
 * by a tree), in workgroups of `wg` threads (wg / lanes outputs each). `subgroup`: the partials
 * merge by subgroup operations first, then across subgroups (only where the adapter has the
 * `subgroups` feature; lanes is then the whole workgroup).
 */
export interface ReduceVariant {
  readonly lanes: number;
  readonly wg: number;
  readonly subgroup: boolean;
}

/**
 * The fused delta-rule scan's parameters: workgroup size; value columns one thread carries
 * (`cols`); and threads that share one column (`split`: each carries K / split of its state's
 * entries, and the per-token dot products merge in workgroup memory, so a thread keeps a few
 * registers where large K would spill on a GPU, and there are `split` times more threads).
 * `cols` > 1 and `split` > 1 are not combined.
 */
export interface ScanVariant {
  readonly wg: number;
  readonly cols: number;
  readonly split: number;
}

const red = (lanes: number, wg: number, subgroup = false): ReduceVariant => ({ lanes, wg, subgroup });

/** Every reduction variant; the built-in ones (one thread per output, or 64 lanes) first. */
export const REDUCE_VARIANTS: readonly ReduceVariant[] = [
  red(1, 64),
  red(64, 64),
  red(4, 64), // 16 outputs per workgroup: medium rows, many outputs
  red(16, 64),
  red(128, 128),
  red(256, 256),
  red(64, 64, true),
  red(256, 256, true),
];

/**
 * Every scan variant; the built-in one first, then one of each shape (two columns a thread, a
 * column split four ways) before their neighbours, so that a tuner whose budget runs out after a
 * few slow compiles (a large K unrolls into long kernels) has still tried each kind of kernel.
 */
export const SCAN_VARIANTS: readonly ScanVariant[] = [
  { wg: 64, cols: 1, split: 1 },
  { wg: 64, cols: 2, split: 1 },
  { wg: 64, cols: 1, split: 4 },
  { wg: 32, cols: 2, split: 1 },
  { wg: 64, cols: 1, split: 2 },
  { wg: 128, cols: 1, split: 8 },
  { wg: 32, cols: 1, split: 1 },
  { wg: 128, cols: 1, split: 1 },
];

// Values one thread adds alone at most: with the block loop's extra steps this stays well inside
// software adapters' 65535 loop iterations per invocation (lower.ts splits longer reductions so
// that 64 lanes fit).
const PER_LANE = 8192;

/**
 * Today's choice, which the tuner always measures first: a workgroup of 64 per output when outputs
 * are few and each reduces many values (or a row is too long for one thread), else a thread each.
 */
export function builtInReduce(nr: number, nOut: number): ReduceVariant {
  const wide = nr >= 256 && (nOut < 4096 || nr > PER_LANE);
  return REDUCE_VARIANTS[wide ? 1 : 0];
}

/** The scan's built-in variant: a thread per value column, 64 to a workgroup. */
export const BUILT_IN_SCAN: ScanVariant = SCAN_VARIANTS[0];

/** Whether variant `v` may reduce rows of `nr` values on a device (loop budget, lanes, features). */
export function reduceFits(v: ReduceVariant, nr: number, maxWorkgroup: number, subgroups: boolean): boolean {
  if (v.wg > maxWorkgroup || (v.subgroup && !subgroups)) return false;
  // Each lane needs work of its own (lanes beyond the row only wait), and at most PER_LANE values.
  return nr <= PER_LANE * v.lanes && (v.lanes === 1 || v.lanes <= nr);
}

/**
 * Whether a scan variant suits a kind of scan with key size K: the reverse scan carries one column
 * per thread; a split needs K a multiple of `split`, and no more loop iterations per token than
 * the built-in kernel runs (two passes of K / split entries and two merges of `split` partials,
 * against two passes of K), so lower.ts's time segments stay within the loop budget.
 */
export function scanFits(v: ScanVariant, op: string, K: number, maxWorkgroup: number): boolean {
  if (v.wg > maxWorkgroup || (op !== "deltaScan" && v.cols !== 1)) return false;
  const S = v.split;
  return S === 1 || (v.cols === 1 && v.wg % S === 0 && K % S === 0 && (2 * K) / S + 2 * S + 1 <= 2 * K);
}

/** A reduction variant's name, as profiles and the tuner's cache show it. */
export function reduceName(v: ReduceVariant): string {
  return v.subgroup ? `subgroup wg ${v.wg}` : v.lanes === 1 ? `thread wg ${v.wg}` : `lanes ${v.lanes} wg ${v.wg}`;
}

/** A scan variant's name. */
export function scanName(v: ScanVariant): string {
  return v.split > 1 ? `split ${v.split} wg ${v.wg}` : `cols ${v.cols} wg ${v.wg}`;
}

/** The reduction variant of this name, or undefined. */
export function reduceNamed(name: string): ReduceVariant | undefined {
  return REDUCE_VARIANTS.find((v) => reduceName(v) === name);
}

/** The scan variant of this name, or undefined. */
export function scanNamed(name: string): ScanVariant | undefined {
  return SCAN_VARIANTS.find((v) => scanName(v) === name);
}

const p2 = (n: number) => 2 ** Math.ceil(Math.log2(Math.max(n, 1)));

/** A reduction's size class: op, outputs and values per output, each rounded up to a power of two. */
export function reduceClass(op: string, nOut: number, nr: number): string {
  return `${op} ${p2(nOut)}x${p2(nr)}`;
}

/** A scan's size class: op, threads' columns (batch x heads x values), tokens rounded up, K exact. */
export function scanClass(op: string, columns: number, T: number, K: number): string {
  return `${op} ${p2(columns)}x${p2(T)}x${K}`;
}

/** A reduction or scan kernel the tuner may measure: its op and sizes. */
export type Tunable =
  | { readonly kind: "reduce"; readonly op: string; readonly nOut: number; readonly nr: number }
  | { readonly kind: "scan"; readonly op: string; readonly dims: readonly [number, number, number, number, number] };

const REDUCING = new Set(["sum", "max", "logsumexp", "softmax"]);

/** What the tuner would measure for a kernel rooted at `t` (f32 reductions and scans), or undefined. */
export function tunableOf(t: Node): Tunable | undefined {
  if (REDUCING.has(t.op) && t.dtype === "f32") {
    const x = t.src[0], nOut = t.op === "softmax" ? t.size / x.shape[x.ndim - 1] : t.size;
    const axes = (t.params as { axes?: readonly number[] }).axes;
    return { kind: "reduce", op: reductionOp(t.op, x.ndim, axes), nOut, nr: x.size / nOut };
  }
  if (t.op === "deltaScan" || t.op === "deltaScanGrad") {
    const [kk, v] = t.op === "deltaScan" ? t.src : t.src.slice(1);
    const [B, H, T, K] = kk.shape;
    return { kind: "scan", op: t.op, dims: [B, H, T, K, v.shape[3]] };
  }
  return undefined;
}

/**
 * A reduction's op as variants are looked up and classed: "sum" when the reduced axes are the
 * innermost (each output reads a contiguous run), "sum outer" otherwise (bias gradients: outputs
 * side by side, values a row apart), since the best variant differs between the two.
 */
export function reductionOp(op: string, ndim: number, axes?: readonly number[]): string {
  const sorted = axes && [...axes].sort((a, b) => a - b);
  const inner = sorted === undefined || sorted.every((a, i) => a === ndim - sorted.length + i);
  return inner ? op : `${op} outer`;
}

/** A tunable kernel's size class. */
export function tunableClass(u: Tunable): string {
  if (u.kind === "reduce") return reduceClass(u.op, u.nOut, u.nr);
  const [B, H, T, K, V] = u.dims;
  return scanClass(u.op, B * H * V, T, K);
}

/** Where kernels look up tuned variants (KernelFeatures has these). */
export interface VariantLookup {
  readonly reduceVariant?: (op: string, nOut: number, nr: number) => ReduceVariant | undefined;
  readonly scanVariant?: (op: string, columns: number, T: number, K: number) => ScanVariant | undefined;
  readonly subgroups?: boolean;
}

/** The variant a reduction runs: the tuned (or forced) one where it fits, else the built-in one. */
export function reduceVariantFor(f: VariantLookup, op: string, nOut: number, nr: number): ReduceVariant {
  const v = f.reduceVariant?.(op, nOut, nr);
  return v && reduceFits(v, nr, Infinity, f.subgroups ?? false) ? v : builtInReduce(nr, nOut);
}

/** The variant a scan runs: the tuned (or forced) one where it applies, else the built-in one. */
export function scanVariantFor(f: VariantLookup, op: string, columns: number, T: number, K: number): ScanVariant {
  const v = f.scanVariant?.(op, columns, T, K);
  return v && scanFits(v, op, K, Infinity) ? v : BUILT_IN_SCAN;
}

/** The name of the variant a tunable kernel runs with these lookups, for plans and profiles. */
export function tunableVariantName(u: Tunable, f: VariantLookup): string {
  if (u.kind === "reduce") return reduceName(reduceVariantFor(f, u.op, u.nOut, u.nr));
  const [B, H, T, K, V] = u.dims;
  return scanName(scanVariantFor(f, u.op, B * H * V, T, K));
}
