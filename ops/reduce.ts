// Reductions and the normalizing ops built on them: mean, variance, logsumexp, softmax, argmax.

import { apply, type ReduceOptions, type Tensor } from "../core/mod.ts";
import { arange } from "./creation.ts";

/** Options of ops that work along one axis. */
export interface AxisOptions {
  /** The axis (negative counts from the end); the last by default. */
  readonly axis?: number;
}

/**
 * Sum over axes (all by default).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ops, tensor } from "../mod.ts";
 * const x = tensor([[1, 2], [3, 4]]);
 * assert.equal(await ops.sum(x).item(), 10);
 * assert.deepEqual(await ops.sum(x, { axis: -1 }).array(), [3, 7]);
 * ```
 */
export const sum = (x: Tensor, opts: ReduceOptions = {}): Tensor => x.sum(opts);
/**
 * Maximum over axes (all by default).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ops, tensor } from "../mod.ts";
 * assert.equal(await ops.max(tensor([[1, 5], [3, 4]])).item(), 5);
 * ```
 */
export const max = (x: Tensor, opts: ReduceOptions = {}): Tensor => x.max(opts);
/**
 * Minimum over axes (all by default).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ops, tensor } from "../mod.ts";
 * assert.deepEqual(await ops.min(tensor([[1, 5], [3, 4]]), { axis: 0 }).array(), [1, 4]);
 * ```
 */
export const min = (x: Tensor, opts: ReduceOptions = {}): Tensor => x.min(opts);
/**
 * Mean over axes (all by default), as f32.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ops, tensor } from "../mod.ts";
 * const x = tensor([[1, 2], [3, 4]]);
 * assert.deepEqual(await ops.mean(x, { axis: -1, keepdims: true }).array(), [[1.5], [3.5]]);
 * ```
 */
export const mean = (x: Tensor, opts: ReduceOptions = {}): Tensor => x.mean(opts);
/**
 * Inclusive cumulative sum along an axis (the last by default); `reverse` sums from the end.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ops, tensor } from "../mod.ts";
 * assert.deepEqual(await ops.cumsum(tensor([[1, 2, 3]])).array(), [[1, 3, 6]]);
 * assert.deepEqual(await ops.cumsum(tensor([[1], [2]]), { axis: 0, reverse: true }).array(), [[3], [2]]);
 * ```
 */
export const cumsum = (x: Tensor, opts: AxisOptions & { readonly reverse?: boolean } = {}): Tensor =>
  x.cumsum(opts.axis ?? -1, opts);

/**
 * Population variance (divides by n) over axes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ops, tensor } from "../mod.ts";
 * assert.equal(await ops.variance(tensor([1, 2, 3, 4])).item(), 1.25);
 * assert.deepEqual(await ops.variance(tensor([[1, 3], [5, 5]]), { axis: 1 }).array(), [1, 0]);
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
 * import assert from "node:assert/strict";
 * import { ops, tensor } from "../mod.ts";
 * const lse = await ops.logsumexp(tensor([[0, 0], [1000, 1000]]), { axis: -1 }).data();
 * assert.ok(Math.abs(lse[0] - Math.LN2) < 1e-6);
 * assert.ok(Math.abs(lse[1] - (1000 + Math.LN2)) < 1e-3); // no overflow
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
 * import assert from "node:assert/strict";
 * import { ops, tensor } from "../mod.ts";
 * assert.deepEqual(await ops.softmax(tensor([5, 5, 5, 5])).array(), [0.25, 0.25, 0.25, 0.25]);
 * const p = await ops.softmax(tensor([[1, 2], [1, 4]]), { axis: 0 }).data(); // columns sum to 1
 * assert.deepEqual([p[0], p[2]], [0.5, 0.5]);
 * assert.ok(Math.abs(p[1] + p[3] - 1) < 1e-6);
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
 * import assert from "node:assert/strict";
 * import { ops, tensor } from "../mod.ts";
 * const logp = await ops.logSoftmax(tensor([3, 3])).data();
 * assert.ok(logp.every((v) => Math.abs(v + Math.LN2) < 1e-6));
 * ```
 */
export function logSoftmax(x: Tensor, opts: AxisOptions = {}): Tensor {
  return x.sub(logsumexp(x, { axis: opts.axis ?? -1, keepdims: true }));
}

/**
 * Index of the maximum along an axis (the first on ties; the first NaN where a row holds NaN, as
 * NumPy), as i32.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ops, tensor } from "../mod.ts";
 * assert.equal(await ops.argmax(tensor([1, 9, 3])).item(), 1);
 * const ties = ops.argmax(tensor([[3, 3, 1], [0, 2, 2]]));
 * assert.deepEqual(await ties.data(), Int32Array.of(0, 1)); // the first of equal maxima
 * ```
 */
export function argmax(x: Tensor, opts: AxisOptions & { readonly keepdims?: boolean } = {}): Tensor {
  const axis = opts.axis ?? -1;
  const a = axis < 0 ? axis + x.ndim : axis;
  const n = x.shape[a];
  const idx = arange(0, n, { dtype: "i32" }).reshape(x.shape.map((d, i) => (i === a ? d : 1)));
  // As NumPy: a NaN is the maximum, so a row holding NaN gives its first NaN's index.
  const hit = x.eq(x.max({ axis: a, keepdims: true })).where(true, x.ne(x));
  return hit.where(idx, n).min({ axis: a, keepdims: opts.keepdims });
}
