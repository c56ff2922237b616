// Reductions and the normalizing ops built on them: mean, variance, logsumexp, softmax, argmax.

import type { ReduceOptions, Tensor } from "../core/mod.ts";
import { arange } from "./creation.ts";
import { stopGradient } from "./elementwise.ts";

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
 * `log(sum(exp(x)))` over axes, computed stably by subtracting the (constant) maximum.
 *
 * @example
 * ```ts
 * import { ops, tensor } from "../mod.ts";
 * const lse = ops.logsumexp(tensor([[1, 2], [3, 4]]), { axis: -1 });
 * ```
 */
export function logsumexp(x: Tensor, opts: ReduceOptions = {}): Tensor {
  const m = stopGradient(x.max({ axis: opts.axis, keepdims: true }));
  const safe = m.gt(-Infinity).where(m, 0); // an all -inf row stays -inf instead of NaN
  const out = x.sub(safe).exp().sum({ axis: opts.axis, keepdims: true }).log().add(safe);
  return opts.keepdims ? out : out.squeeze(opts.axis ?? [...x.shape.keys()]);
}

/**
 * Softmax along one axis (the last by default); each slice sums to 1.
 *
 * @example
 * ```ts
 * import { ops, tensor } from "../mod.ts";
 * const p = ops.softmax(tensor([1, 2, 3]));
 * ```
 */
export function softmax(x: Tensor, opts: AxisOptions = {}): Tensor {
  const axis = opts.axis ?? -1;
  const e = x.sub(stopGradient(x.max({ axis, keepdims: true }))).exp();
  return e.div(e.sum({ axis, keepdims: true }));
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
