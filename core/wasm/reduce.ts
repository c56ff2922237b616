// Reductions on the Wasm backend: sum and max over one run of adjacent axes as three nested loops
// (outer x reduced x inner) instead of the reference's per-element offset table. Each output
// accumulates its inputs in the reference's order, in float64, so results equal it bit for bit;
// large f32 ones run in Wasm SIMD (reduce_simd.ts, reduce_rows.ts, reduce_max.ts), bit for bit too
// except row sums of fewer than eight rows, which add in a fixed blocked order (reduce_rows.ts).

import type { CpuArray, CpuContext, PrimDef } from "../prim.ts";
import type { Shape } from "../shape.ts";
import type { WasmColumnSums } from "./reduce_simd.ts";
import type { WasmRowSums } from "./reduce_rows.ts";
import type { WasmMax } from "./reduce_max.ts";

/** The fewest input elements of an f32 column sum that runs in Wasm (below, copying in costs more). */
export const COLUMN_SUM_MIN = 2048;

/** The fewest input elements of an f32 row sum or max reduction that runs in Wasm. */
export const REDUCE_SIMD_MIN = 2048;

/** `[outer, reduced, inner]` sizes when `axes` are one run of adjacent axes of `shape`, else null. */
export function reductionBlock(shape: Shape, axes: readonly number[]): [number, number, number] | null {
  if (axes.length === 0) return null;
  const lo = Math.min(...axes), hi = Math.max(...axes);
  if (hi - lo + 1 !== new Set(axes).size) return null;
  const prod = (a: number, b: number) => shape.slice(a, b).reduce((p, d) => p * d, 1);
  return [prod(0, lo), prod(lo, hi + 1), prod(hi + 1, shape.length)];
}

function sumBlock(a: CpuArray, acc: Float64Array, O: number, R: number, I: number): void {
  if (I === 1) {
    for (let o = 0; o < O; o++) {
      let s = 0;
      for (let r = 0, p = o * R; r < R; r++, p++) s += a[p];
      acc[o] = s;
    }
    return;
  }
  for (let o = 0; o < O; o++) {
    const base = o * I;
    for (let r = 0, p = o * R * I; r < R; r++) {
      for (let j = 0; j < I; j++, p++) acc[base + j] += a[p];
    }
  }
}

function maxBlock(a: CpuArray, acc: Float64Array, O: number, R: number, I: number): void {
  acc.fill(-Infinity);
  for (let o = 0; o < O; o++) {
    const base = o * I;
    for (let r = 0, p = o * R * I; r < R; r++) {
      for (let j = 0; j < I; j++, p++) {
        const v = a[p];
        if (v > acc[base + j] || v !== v) acc[base + j] = v;
      }
    }
  }
}

type Reduce = PrimDef<"sum">["cpu"];

/** The Wasm SIMD kernels of `reductionKernels` (each optional: without it, the host loop). */
export interface ReductionSimd {
  /** f32 sums over a non-last axis. */
  readonly columns?: WasmColumnSums;
  /** f32 sums over the last axis. */
  readonly rows?: WasmRowSums;
  /** f32 maxima. */
  readonly max?: WasmMax;
}

// The Wasm kernel of a large f32 block where `simd` has one (it writes the [O][I] result), else null.
type Simd = (a: Float32Array, O: number, R: number, I: number) => ((out: Float32Array) => void) | null;

function reduceWith(block: typeof sumBlock, fallback: Reduce, simd: Simd): Reduce {
  return (ins, srcs, out, params, ctx: CpuContext) => {
    const dims = reductionBlock(srcs[0].shape, params.axes);
    if (dims === null) return fallback(ins, srcs, out, params, ctx);
    const [O, R, I] = dims, a = ins[0];
    const kernel = a instanceof Float32Array && out.dtype === "f32" && R > 0 ? simd(a, O, R, I) : null;
    if (kernel !== null) {
      const o = ctx.alloc("f32", O * I) as Float32Array;
      kernel(o);
      return o;
    }
    const acc = new Float64Array(O * I);
    block(ins[0], acc, O, R, I);
    const o = ctx.alloc(out.dtype, acc.length);
    o.set(acc);
    return o;
  };
}

/**
 * The sum and max kernels, falling back to `reference`'s rules where the axes are not adjacent;
 * large f32 ones run on the Wasm SIMD kernels of `simd` where given.
 */
export function reductionKernels(
  reference: { readonly sum: Reduce; readonly max: Reduce },
  simd: ReductionSimd = {},
): { readonly sum: Reduce; readonly max: Reduce } {
  const { columns, rows, max } = simd;
  const sum: Simd = (a, O, R, I) => {
    if (I > 1 && columns && O * R * I >= COLUMN_SUM_MIN) return (o) => columns.run(a, o, O, R, I);
    if (I === 1 && rows && O * R >= REDUCE_SIMD_MIN) return (o) => rows.run(a, o, O, R);
    return null;
  };
  const maxes: Simd = (a, O, R, I) => {
    if (!max || O * R * I < REDUCE_SIMD_MIN) return null;
    return I === 1 ? (o) => max.rows(a, o, O, R) : (o) => max.columns(a, o, O, R, I);
  };
  return { sum: reduceWith(sumBlock, reference.sum, sum), max: reduceWith(maxBlock, reference.max, maxes) };
}
