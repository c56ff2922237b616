// Index-based constructors and joins: arange, oneHot, tril/triu masks, concat, stack.

import { apply, checkDType, type DType, type Tensor, tensor } from "../core/mod.ts";

/**
 * Evenly spaced values in `[start, stop)` (or `[0, start)` when `stop` is omitted).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ops } from "../mod.ts";
 * assert.deepEqual(await ops.arange(5, undefined, { dtype: "i32" }).data(), Int32Array.of(0, 1, 2, 3, 4));
 * assert.deepEqual(await ops.arange(1, 2, { step: 0.25 }).array(), [1, 1.25, 1.5, 1.75]);
 * ```
 */
export function arange(
  start: number,
  stop?: number,
  opts: { readonly step?: number; readonly dtype?: DType } = {},
): Tensor {
  const [lo, hi] = stop === undefined ? [0, start] : [start, stop];
  const step = opts.step ?? 1;
  if (!Number.isFinite(lo) || !Number.isFinite(hi) || !Number.isFinite(step) || step === 0) {
    throw new Error(`arange: need finite start, stop and a non-zero step, got ${lo}, ${hi}, ${step}`);
  }
  const n = Math.max(0, Math.ceil((hi - lo) / step));
  const dtype = opts.dtype ?? "f32";
  checkDType("arange", dtype);
  if (dtype === "bool") throw new Error("arange: dtype must be f32 or i32");
  // Computed on the device from the index (in f32 for fractional steps), so nothing is uploaded.
  const integral = [lo, step].every(Number.isInteger);
  const i = apply("iota", [], { shape: [n], axis: 0, dtype: integral ? dtype : "f32" });
  const v = step === 1 ? i : i.mul(step);
  return (lo === 0 ? v : v.add(lo)).cast(dtype);
}

/**
 * One-hot encoding of i32 indices along a new last axis of size `depth`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ops, tensor } from "../mod.ts";
 * const y = ops.oneHot(tensor([0, 2], { dtype: "i32" }), 3);
 * assert.deepEqual(await y.array(), [[1, 0, 0], [0, 0, 1]]);
 * ```
 */
export function oneHot(indices: Tensor, depth: number, opts: { readonly dtype?: DType } = {}): Tensor {
  if (indices.dtype !== "i32") throw new Error(`oneHot: indices must be i32, got ${indices.dtype}`);
  if (!Number.isInteger(depth) || depth < 0) {
    throw new Error(`oneHot: depth must be a non-negative integer, got ${depth}`);
  }
  return indices.expandDims(-1).eq(arange(0, depth, { dtype: "i32" })).cast(opts.dtype ?? "f32");
}

function triMask(op: string, x: Tensor, keep: (col: Tensor, row: Tensor) => Tensor): Tensor {
  if (x.ndim < 2) throw new Error(`${op}: needs at least 2 axes, got shape [${x.shape}]`);
  const [m, n] = x.shape.slice(-2);
  const row = arange(0, m, { dtype: "i32" }).reshape([m, 1]);
  const col = arange(0, n, { dtype: "i32" }).reshape([1, n]);
  return keep(col, row).where(x, tensor(0, { dtype: x.dtype }));
}

/**
 * Keeps the lower triangle of the last two axes (`col - row <= k`), zeroing the rest.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ops } from "../mod.ts";
 * const causal = ops.tril(ops.full([3, 3], 1));
 * assert.deepEqual(await causal.array(), [[1, 0, 0], [1, 1, 0], [1, 1, 1]]);
 * ```
 */
export function tril(x: Tensor, opts: { readonly k?: number } = {}): Tensor {
  const k = opts.k ?? 0;
  return triMask("tril", x, (col, row) => col.sub(row).le(k));
}

/**
 * Keeps the upper triangle of the last two axes (`col - row >= k`), zeroing the rest.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ops } from "../mod.ts";
 * const strict = ops.triu(ops.full([3, 3], 1), { k: 1 });
 * assert.deepEqual(await strict.array(), [[0, 1, 1], [0, 0, 1], [0, 0, 0]]);
 * ```
 */
export function triu(x: Tensor, opts: { readonly k?: number } = {}): Tensor {
  const k = opts.k ?? 0;
  return triMask("triu", x, (col, row) => col.sub(row).ge(k));
}

/**
 * Joins tensors along an existing axis.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ops, tensor } from "../mod.ts";
 * const a = tensor([[1, 2]]), b = tensor([[3, 4]]);
 * assert.deepEqual(await ops.concat([a, b]).array(), [[1, 2], [3, 4]]);
 * assert.deepEqual(await ops.concat([a, b], { axis: 1 }).array(), [[1, 2, 3, 4]]);
 * ```
 */
export function concat(xs: readonly Tensor[], opts: { readonly axis?: number } = {}): Tensor {
  if (xs.length === 0) throw new Error("concat: needs at least one tensor");
  const axis = opts.axis ?? 0, rank = xs[0].ndim;
  if (!Number.isInteger(axis) || axis < -rank || axis >= rank) {
    throw new Error(`concat: axis ${axis} is out of range for tensors of rank ${rank}`);
  }
  return xs.length === 1 ? xs[0] : apply("concat", xs, { axis: axis < 0 ? axis + rank : axis });
}

/**
 * Stacks same-shaped tensors along a new axis.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ops, tensor } from "../mod.ts";
 * const [a, b] = [tensor([1, 2]), tensor([3, 4])];
 * assert.deepEqual(await ops.stack([a, b]).array(), [[1, 2], [3, 4]]);
 * assert.deepEqual(await ops.stack([a, b], { axis: 1 }).array(), [[1, 3], [2, 4]]);
 * ```
 */
export function stack(xs: readonly Tensor[], opts: { readonly axis?: number } = {}): Tensor {
  if (xs.length === 0) throw new Error("stack: needs at least one tensor");
  const axis = opts.axis ?? 0;
  return concat(xs.map((x) => x.expandDims(axis)), { axis: axis < 0 ? axis + xs[0].ndim + 1 : axis });
}

export { full, ones, tensor, zeros } from "../core/mod.ts";
