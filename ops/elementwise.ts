// Elementwise ops in functional form, and the activations composed from primitives.

import { apply, type DType, scalarLike, Tensor, tensor } from "../core/mod.ts";

/** A tensor or a number that broadcasts like a scalar of the other operand's dtype. */
export type Operand = Tensor | number;

// A number takes the dtype of the other operand (f32 when both are numbers).
function t(x: Operand, other: Operand): Tensor {
  return x instanceof Tensor ? x : other instanceof Tensor ? scalarLike(x, other) : tensor(x);
}

/**
 * `x + y` with broadcasting.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ops, tensor } from "../mod.ts";
 * assert.deepEqual(await ops.add(tensor([[1], [2]]), tensor([10, 20])).array(), [[11, 21], [12, 22]]);
 * assert.deepEqual(await ops.add(1, tensor([1, 2])).array(), [2, 3]);
 * ```
 */
export const add = (x: Operand, y: Operand): Tensor => t(x, y).add(y);
/**
 * `x - y` with broadcasting.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ops, tensor } from "../mod.ts";
 * assert.deepEqual(await ops.sub(5, tensor([1, 2])).array(), [4, 3]);
 * ```
 */
export const sub = (x: Operand, y: Operand): Tensor => t(x, y).sub(y);
/**
 * `x * y` with broadcasting.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ops, tensor } from "../mod.ts";
 * assert.deepEqual(await ops.mul(tensor([1, 2]), 2).array(), [2, 4]);
 * ```
 */
export const mul = (x: Operand, y: Operand): Tensor => t(x, y).mul(y);
/**
 * `x / y` with broadcasting (i32 division truncates toward zero).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ops, tensor } from "../mod.ts";
 * assert.deepEqual(await ops.div(tensor([1, 3]), 4).array(), [0.25, 0.75]);
 * assert.deepEqual(await ops.div(tensor([7, -7], { dtype: "i32" }), 2).array(), [3, -3]);
 * ```
 */
export const div = (x: Operand, y: Operand): Tensor => t(x, y).div(y);
/**
 * Elementwise maximum with broadcasting.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ops, tensor } from "../mod.ts";
 * assert.deepEqual(await ops.maximum(tensor([-1, 2]), 0).array(), [0, 2]);
 * ```
 */
export const maximum = (x: Operand, y: Operand): Tensor => t(x, y).maximum(y);
/**
 * Elementwise minimum with broadcasting.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ops, tensor } from "../mod.ts";
 * assert.deepEqual(await ops.minimum(tensor([-1, 2]), 1).array(), [-1, 1]);
 * ```
 */
export const minimum = (x: Operand, y: Operand): Tensor => t(x, y).minimum(y);
/**
 * `x ** y` with broadcasting.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ops, tensor } from "../mod.ts";
 * assert.deepEqual(await ops.pow(tensor([2, 3]), 2).array(), [4, 9]);
 * ```
 */
export const pow = (x: Operand, y: Operand): Tensor => t(x, y).pow(y);
/**
 * `-x`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ops, tensor } from "../mod.ts";
 * assert.deepEqual(await ops.neg(tensor([1, -2])).array(), [-1, 2]);
 * ```
 */
export const neg = (x: Tensor): Tensor => x.neg();
/**
 * `e^x`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ops, tensor } from "../mod.ts";
 * assert.deepEqual(await ops.exp(tensor([0])).array(), [1]);
 * const [e] = await ops.exp(tensor([1])).data();
 * assert.ok(Math.abs(e - Math.E) < 1e-6);
 * ```
 */
export const exp = (x: Tensor): Tensor => x.exp();
/**
 * Natural logarithm.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ops, tensor } from "../mod.ts";
 * assert.deepEqual(await ops.log(tensor([1])).array(), [0]);
 * const [ln2] = await ops.log(tensor([2])).data();
 * assert.ok(Math.abs(ln2 - Math.LN2) < 1e-6);
 * ```
 */
export const log = (x: Tensor): Tensor => x.log();
/**
 * Square root.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ops, tensor } from "../mod.ts";
 * assert.deepEqual(await ops.sqrt(tensor([4, 9])).array(), [2, 3]);
 * ```
 */
export const sqrt = (x: Tensor): Tensor => x.sqrt();
/**
 * Sine.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ops, tensor } from "../mod.ts";
 * assert.deepEqual(await ops.sin(tensor([0])).array(), [0]);
 * const [one] = await ops.sin(tensor([Math.PI / 2])).data();
 * assert.ok(Math.abs(one - 1) < 1e-6);
 * ```
 */
export const sin = (x: Tensor): Tensor => x.sin();
/**
 * Cosine.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ops, tensor } from "../mod.ts";
 * assert.deepEqual(await ops.cos(tensor([0])).array(), [1]);
 * const [minusOne] = await ops.cos(tensor([Math.PI])).data();
 * assert.ok(Math.abs(minusOne + 1) < 1e-6);
 * ```
 */
export const cos = (x: Tensor): Tensor => x.cos();
/**
 * Hyperbolic tangent.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ops, tensor } from "../mod.ts";
 * assert.deepEqual(await ops.tanh(tensor([0])).array(), [0]);
 * const [t] = await ops.tanh(tensor([1])).data();
 * assert.ok(Math.abs(t - Math.tanh(1)) < 1e-6);
 * ```
 */
export const tanh = (x: Tensor): Tensor => x.tanh();
/**
 * `x * x`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ops, tensor } from "../mod.ts";
 * assert.deepEqual(await ops.square(tensor([-3, 2])).array(), [9, 4]);
 * ```
 */
export const square = (x: Tensor): Tensor => x.square();
/**
 * `1 / sqrt(x)`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ops, tensor } from "../mod.ts";
 * assert.deepEqual(await ops.rsqrt(tensor([4, 16])).array(), [0.5, 0.25]);
 * ```
 */
export const rsqrt = (x: Tensor): Tensor => x.sqrt().pow(-1);
/**
 * Absolute value (gradient 0 at 0).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ops, tensor } from "../mod.ts";
 * assert.deepEqual(await ops.abs(tensor([-2, 0, 3])).array(), [2, 0, 3]);
 * ```
 */
export const abs = (x: Tensor): Tensor => x.lt(0).where(x.neg(), x.eq(0).where(0, x));
/**
 * Picks `a` where `cond` is true, else `b`, with broadcasting.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ops, tensor } from "../mod.ts";
 * const x = tensor([-1, 2, -3]);
 * assert.deepEqual(await ops.where(x.gt(0), x, 0).array(), [0, 2, 0]);
 * ```
 */
export const where = (cond: Tensor, a: Operand, b: Operand): Tensor => cond.where(a, b);
/**
 * Converts dtype (f32 to i32 truncates toward zero; nonzero is true).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ops, tensor } from "../mod.ts";
 * assert.deepEqual(await ops.cast(tensor([1.7, -1.7]), "i32").data(), Int32Array.of(1, -1));
 * assert.deepEqual(await ops.cast(tensor([0, 2]), "bool").array(), [0, 1]);
 * ```
 */
export const cast = (x: Tensor, dtype: DType): Tensor => x.cast(dtype);
/**
 * Clamps into `[lo, hi]`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ops, tensor } from "../mod.ts";
 * assert.deepEqual(await ops.clip(tensor([-2, 0.5, 3]), -1, 1).array(), [-1, 0.5, 1]);
 * ```
 */
export const clip = (x: Tensor, lo: number, hi: number): Tensor => x.maximum(lo).minimum(hi);

/**
 * The identity whose gradient is zero: the value flows, the derivative does not.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { grad, ops, type Tensor, tensor } from "../mod.ts";
 * // d/dx (stop(x) * x) = stop(x): only the factor that is not stopped is differentiated.
 * const g = grad((x: Tensor) => ops.stopGradient(x).mul(x).sum())(tensor([3, 5]));
 * assert.deepEqual(await g.array(), [3, 5]);
 * ```
 */
export function stopGradient(x: Tensor): Tensor {
  return apply("stopGradient", [x], {});
}

/**
 * Logistic sigmoid, written via tanh so neither value nor gradient overflows.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ops, tensor } from "../mod.ts";
 * assert.deepEqual(await ops.sigmoid(tensor([0])).array(), [0.5]);
 * const [y] = await ops.sigmoid(tensor([2])).data();
 * assert.ok(Math.abs(y - 1 / (1 + Math.exp(-2))) < 1e-6);
 * ```
 */
export function sigmoid(x: Tensor): Tensor {
  return x.mul(0.5).tanh().add(1).mul(0.5);
}

/**
 * `x * sigmoid(x)` (also called swish).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ops, tensor } from "../mod.ts";
 * assert.deepEqual(await ops.silu(tensor([0])).array(), [0]);
 * const [y] = await ops.silu(tensor([2])).data();
 * assert.ok(Math.abs(y - 2 / (1 + Math.exp(-2))) < 1e-6);
 * ```
 */
export function silu(x: Tensor): Tensor {
  return x.mul(sigmoid(x));
}

/**
 * `max(x, 0)`, with gradient 0 at 0.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ops, tensor } from "../mod.ts";
 * assert.deepEqual(await ops.relu(tensor([-1, 0, 2])).array(), [0, 0, 2]);
 * ```
 */
export function relu(x: Tensor): Tensor {
  return x.gt(0).where(x, 0);
}

/**
 * GELU in its tanh approximation: `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ops, tensor } from "../mod.ts";
 * assert.deepEqual(await ops.gelu(tensor([0])).array(), [0]);
 * const [y] = await ops.gelu(tensor([1])).data();
 * assert.ok(Math.abs(y - 0.5 * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * 1.044715))) < 1e-6);
 * ```
 */
export function gelu(x: Tensor): Tensor {
  const inner = x.add(x.pow(3).mul(0.044715)).mul(Math.sqrt(2 / Math.PI));
  return x.mul(inner.tanh().add(1)).mul(0.5);
}

/**
 * `log(1 + e^x)`, stable for large |x|.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ops, tensor } from "../mod.ts";
 * const [y, big] = await ops.softplus(tensor([0, 100])).data();
 * assert.ok(Math.abs(y - Math.LN2) < 1e-6);
 * assert.equal(big, 100); // no overflow to Infinity
 * ```
 */
export function softplus(x: Tensor): Tensor {
  // With abs'(0) = 0, maximum's even split at the tie gives softplus'(0) = 1/2 exactly (relu's 0 would not).
  return x.maximum(0).add(abs(x).neg().exp().add(1).log());
}

/**
 * ELU: `x` for x > 0, `e^x - 1` otherwise.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ops, tensor } from "../mod.ts";
 * const [pos, zero, neg] = await ops.elu(tensor([2, 0, -1])).data();
 * assert.deepEqual([pos, zero], [2, 0]);
 * assert.ok(Math.abs(neg - (Math.exp(-1) - 1)) < 1e-6);
 * ```
 */
export function elu(x: Tensor): Tensor {
  // The inner where keeps exp from overflowing for large x and, unlike minimum (which splits ties),
  // passes the full gradient at 0, so elu'(0) = 1.
  const pos = x.gt(0);
  return pos.where(x, pos.where(0, x).exp().sub(1));
}
