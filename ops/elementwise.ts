// Elementwise ops in functional form, and the activations composed from primitives.

import { apply, type DType, scalarLike, Tensor, tensor } from "../core/mod.ts";

/** A tensor or a number that broadcasts like a scalar of the other operand's dtype. */
export type Operand = Tensor | number;

// A number takes the dtype of the other operand (f32 when both are numbers).
function t(x: Operand, other: Operand): Tensor {
  return x instanceof Tensor ? x : other instanceof Tensor ? scalarLike(x, other) : tensor(x);
}

/** `x + y` with broadcasting. @example `add(x, 1)` */
export const add = (x: Operand, y: Operand): Tensor => t(x, y).add(y);
/** `x - y` with broadcasting. @example `sub(x, y)` */
export const sub = (x: Operand, y: Operand): Tensor => t(x, y).sub(y);
/** `x * y` with broadcasting. @example `mul(x, 2)` */
export const mul = (x: Operand, y: Operand): Tensor => t(x, y).mul(y);
/** `x / y` with broadcasting. @example `div(x, y)` */
export const div = (x: Operand, y: Operand): Tensor => t(x, y).div(y);
/** Elementwise maximum. @example `maximum(x, 0)` */
export const maximum = (x: Operand, y: Operand): Tensor => t(x, y).maximum(y);
/** Elementwise minimum. @example `minimum(x, 1)` */
export const minimum = (x: Operand, y: Operand): Tensor => t(x, y).minimum(y);
/** `x ** y`. @example `pow(x, 2)` */
export const pow = (x: Operand, y: Operand): Tensor => t(x, y).pow(y);
/** `-x`. @example `neg(x)` */
export const neg = (x: Tensor): Tensor => x.neg();
/** `e^x`. @example `exp(x)` */
export const exp = (x: Tensor): Tensor => x.exp();
/** Natural logarithm. @example `log(x)` */
export const log = (x: Tensor): Tensor => x.log();
/** Square root. @example `sqrt(x)` */
export const sqrt = (x: Tensor): Tensor => x.sqrt();
/** Sine. @example `sin(x)` */
export const sin = (x: Tensor): Tensor => x.sin();
/** Cosine. @example `cos(x)` */
export const cos = (x: Tensor): Tensor => x.cos();
/** Hyperbolic tangent. @example `tanh(x)` */
export const tanh = (x: Tensor): Tensor => x.tanh();
/** `x * x`. @example `square(x)` */
export const square = (x: Tensor): Tensor => x.square();
/** `1 / sqrt(x)`. @example `rsqrt(x)` */
export const rsqrt = (x: Tensor): Tensor => x.sqrt().pow(-1);
/** Absolute value (gradient 0 at 0). @example `abs(x)` */
export const abs = (x: Tensor): Tensor => x.lt(0).where(x.neg(), x.eq(0).where(0, x));
/** Picks `a` where `cond` is true, else `b`, with broadcasting. @example `where(x.gt(0), x, 0)` */
export const where = (cond: Tensor, a: Operand, b: Operand): Tensor => cond.where(a, b);
/** Converts dtype. @example `cast(ids, "f32")` */
export const cast = (x: Tensor, dtype: DType): Tensor => x.cast(dtype);
/** Clamps into `[lo, hi]`. @example `clip(x, -1, 1)` */
export const clip = (x: Tensor, lo: number, hi: number): Tensor => x.maximum(lo).minimum(hi);

/**
 * The identity whose gradient is zero: the value flows, the derivative does not.
 *
 * @example
 * ```ts
 * import { ops, tensor } from "../mod.ts";
 * const m = ops.stopGradient(tensor([1, 2]).max());
 * ```
 */
export function stopGradient(x: Tensor): Tensor {
  return apply("stopGradient", [x], {});
}

/** Logistic sigmoid, written via tanh so neither value nor gradient overflows. @example `sigmoid(x)` */
export function sigmoid(x: Tensor): Tensor {
  return x.mul(0.5).tanh().add(1).mul(0.5);
}

/** `x * sigmoid(x)` (also called swish). @example `silu(x)` */
export function silu(x: Tensor): Tensor {
  return x.mul(sigmoid(x));
}

/** `max(x, 0)`, with gradient 0 at 0. @example `relu(x)` */
export function relu(x: Tensor): Tensor {
  return x.gt(0).where(x, 0);
}

/** GELU in its tanh approximation: `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`. @example `gelu(x)` */
export function gelu(x: Tensor): Tensor {
  const inner = x.add(x.pow(3).mul(0.044715)).mul(Math.sqrt(2 / Math.PI));
  return x.mul(inner.tanh().add(1)).mul(0.5);
}

/** `log(1 + e^x)`, stable for large |x|. @example `softplus(x)` */
export function softplus(x: Tensor): Tensor {
  // With abs'(0) = 0, maximum's even split at the tie gives softplus'(0) = 1/2 exactly (relu's 0 would not).
  return x.maximum(0).add(abs(x).neg().exp().add(1).log());
}

/** ELU: `x` for x > 0, `e^x - 1` otherwise. @example `elu(x)` */
export function elu(x: Tensor): Tensor {
  // The inner where keeps exp from overflowing for large x and, unlike minimum (which splits ties),
  // passes the full gradient at 0, so elu'(0) = 1.
  const pos = x.gt(0);
  return pos.where(x, pos.where(0, x).exp().sub(1));
}
