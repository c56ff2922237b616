// Reductions and the normalizing ops built on them: mean, variance, logsumexp, softmax, argmax.

import { apply, type ReduceOptions, type Tensor } from "../core/mod.ts";
import { arange } from "./creation.ts";

/** Options of ops that work along one axis. */
export interface AxisOptions {
  /** The axis (negative counts from the end); the last by default. */
  readonly axis?: number;
}

/** Sum over axes. @example `sum(x, { axis: -1 })` */
export const sum = (x: Tensor, opts: ReduceOptions = {}): Tensor => x.sum(opts);
/** Maximum over axes. @example `max(x)` */
export const max = (x: Tensor, opts: ReduceOptions = {}): Tensor => x.max(opts);
/** Minimum over axes. @example `min(x, { axis: 0 })` */
export const min = (x: Tensor, opts: ReduceOptions = {}): Tensor => x.min(opts);
/** Mean over axes. @example `mean(x, { axis: -1, keepdims: true })` */
export const mean = (x: Tensor, opts: ReduceOptions = {}): Tensor => x.mean(opts);
/** Inclusive cumulative sum. @example `cumsum(x, { axis: 1 })` */
export const cumsum = (x: Tensor, opts: AxisOptions & { readonly reverse?: boolean } = {}): Tensor =>
  x.cumsum(opts.axis ?? -1, opts);

/**
 * Population variance (divides by n) over axes.
 *
 * @example
 * ```ts
 * import { ops, tensor } from "../mod.ts";
 * console.log(await ops.variance(tensor([1, 2, 3, 4])).item()); // 1.25
 * ```
 */
export function variance(x: Tensor, opts: ReduceOptions = {}): Tensor {
  const centered = x.sub(x.mean({ axis: opts.axis, keepdims: true }));
  return centered.square().mean(opts);
}

/**
 * `log(sum(exp(x)))` over axes, computed stably (never exponentiating above 0). Over one axis it is
 * a single fused kernel on WebGPU.
 *
 * @example
 * ```ts
 * import { ops, tensor } from "../mod.ts";
 * const lse = ops.logsumexp(tensor([[1, 2], [3, 4]]), { axis: -1 });
 * ```
 */
export function logsumexp(x: Tensor, opts: ReduceOptions = {}): Tensor {
  const axes = opts.axis === undefined ? [...x.shape.keys()] : typeof opts.axis === "number" ? [opts.axis] : opts.axis;
  const norm = axes.map((a) => (a < 0 ? a + x.ndim : a));
  if (norm.length === 0) return x;
  // Move the reduced axes to the end (in order) and fold them into one, then reduce the last axis.
  const kept = [...x.shape.keys()].filter((a) => !norm.includes(a));
  if (norm.some((a) => !Number.isInteger(a) || a < 0 || a >= x.ndim) || new Set(norm).size !== norm.length) {
    throw new Error(`logsumexp: bad axis ${JSON.stringify(opts.axis)} for a tensor of rank ${x.ndim}`);
  }
  const moved = norm.every((a, i) => a === x.ndim - norm.length + i) ? x : x.permute([...kept, ...norm]);
  const folded = moved.reshape([...kept.map((a) => x.shape[a]), norm.reduce((p, a) => p * x.shape[a], 1)]);
  const out = apply("logsumexp", [folded], {});
  return opts.keepdims ? out.reshape(x.shape.map((d, i) => (norm.includes(i) ? 1 : d))) : out;
}

/**
 * Softmax along one axis (the last by default); each slice sums to 1. One fused kernel on WebGPU.
 *
 * @example
 * ```ts
 * import { ops, tensor } from "../mod.ts";
 * const p = ops.softmax(tensor([1, 2, 3]));
 * ```
 */
export function softmax(x: Tensor, opts: AxisOptions = {}): Tensor {
  const axis = opts.axis ?? -1, a = axis < 0 ? axis + x.ndim : axis;
  if (!Number.isInteger(a) || a < 0 || a >= x.ndim) {
    throw new Error(`softmax: axis ${axis} is out of range for rank ${x.ndim}`);
  }
  if (a === x.ndim - 1) return apply("softmax", [x], {});
  const perm = [...x.shape.keys()].filter((i) => i !== a).concat(a);
  const back = perm.map((_, i) => perm.indexOf(i));
  return apply("softmax", [x.permute(perm)], {}).permute(back);
}

/**
 * Log of the softmax along one axis, without forming the softmax.
 *
 * @example
 * ```ts
 * import { ops, tensor } from "../mod.ts";
 * const logp = ops.logSoftmax(tensor([1, 2, 3]));
 * ```
 */
export function logSoftmax(x: Tensor, opts: AxisOptions = {}): Tensor {
  return x.sub(logsumexp(x, { axis: opts.axis ?? -1, keepdims: true }));
}

/**
 * Index of the maximum along an axis (the first on ties), as i32.
 *
 * @example
 * ```ts
 * import { ops, tensor } from "../mod.ts";
 * console.log(await ops.argmax(tensor([1, 9, 3])).item()); // 1
 * ```
 */
export function argmax(x: Tensor, opts: AxisOptions & { readonly keepdims?: boolean } = {}): Tensor {
  const axis = opts.axis ?? -1;
  const a = axis < 0 ? axis + x.ndim : axis;
  const n = x.shape[a];
  const idx = arange(0, n, { dtype: "i32" }).reshape(x.shape.map((d, i) => (i === a ? d : 1)));
  const hit = x.eq(x.max({ axis: a, keepdims: true }));
  return hit.where(idx, n).min({ axis: a, keepdims: opts.keepdims });
}
