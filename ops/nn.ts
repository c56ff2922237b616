// Norms and losses used by the layers: rmsNorm, layerNorm, l2Normalize, crossEntropy.

import { checkIndices, knownValues, type Tensor } from "../core/mod.ts";
import { oneHot } from "./creation.ts";
import { logSoftmax } from "./reduce.ts";

/** Options of the normalizations. */
export interface NormOptions {
  /** Added under the square root; 1e-6 by default. */
  readonly eps?: number;
  /** Scale applied after normalizing (broadcast against the last axis). */
  readonly weight?: Tensor;
}

/**
 * Root-mean-square normalization over the last axis: `x / sqrt(mean(x^2) + eps) * weight`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ops, tensor } from "../mod.ts";
 * // The root mean square of [3, -3] is 3.
 * const y = await ops.rmsNorm(tensor([[3, -3]]), { weight: tensor([1, 2]) }).data();
 * assert.ok(Math.abs(y[0] - 1) < 1e-6 && Math.abs(y[1] + 2) < 1e-6);
 * ```
 */
export function rmsNorm(x: Tensor, opts: NormOptions = {}): Tensor {
  const y = x.mul(x.square().mean({ axis: -1, keepdims: true }).add(opts.eps ?? 1e-6).sqrt().pow(-1));
  return opts.weight ? y.mul(opts.weight) : y;
}

/**
 * Layer normalization over the last axis, with optional scale and shift.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ops, tensor } from "../mod.ts";
 * // Mean 2.5 and variance 1.25 become 0 and 1 (then scaled by 2 and shifted by 1).
 * const y = ops.layerNorm(tensor([[1, 2, 3, 4]]), { weight: tensor(2), bias: tensor(1) });
 * const want = [1, 2, 3, 4].map((x) => 1 + (2 * (x - 2.5)) / Math.sqrt(1.25));
 * assert.ok(Array.from(await y.data()).every((v, i) => Math.abs(v - want[i]) < 1e-5));
 * ```
 */
export function layerNorm(x: Tensor, opts: NormOptions & { readonly bias?: Tensor } = {}): Tensor {
  const c = x.sub(x.mean({ axis: -1, keepdims: true }));
  let y = c.mul(c.square().mean({ axis: -1, keepdims: true }).add(opts.eps ?? 1e-6).sqrt().pow(-1));
  if (opts.weight) y = y.mul(opts.weight);
  return opts.bias ? y.add(opts.bias) : y;
}

/**
 * Scales slices to unit L2 norm along an axis: `x / sqrt(sum(x^2) + eps)`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ops, tensor } from "../mod.ts";
 * const [a, b] = await ops.l2Normalize(tensor([3, 4])).data();
 * assert.ok(Math.abs(a - 0.6) < 1e-6 && Math.abs(b - 0.8) < 1e-6);
 * ```
 */
export function l2Normalize(x: Tensor, opts: { readonly axis?: number; readonly eps?: number } = {}): Tensor {
  const axis = opts.axis ?? -1;
  return x.mul(x.square().sum({ axis, keepdims: true }).add(opts.eps ?? 1e-6).sqrt().pow(-1));
}

/**
 * Cross entropy of logits `[..., C]` against i32 class targets `[...]`: mean (default), sum, or
 * per-position ("none").
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ops, tensor } from "../mod.ts";
 * // Two equally likely classes: -log(1/2) whichever is the target.
 * const logits = tensor([[0, 0], [5, 5]]), targets = tensor([0, 1], { dtype: "i32" });
 * const perRow = await ops.crossEntropy(logits, targets, { reduction: "none" }).data();
 * assert.ok(perRow.length === 2 && perRow.every((v) => Math.abs(v - Math.LN2) < 1e-6));
 * assert.ok(Math.abs((await ops.crossEntropy(logits, targets).item()) - Math.LN2) < 1e-6);
 * ```
 */
export function crossEntropy(
  logits: Tensor,
  targets: Tensor,
  opts: { readonly reduction?: "mean" | "sum" | "none" } = {},
): Tensor {
  const lead = logits.shape.slice(0, -1);
  if (targets.dtype !== "i32") throw new Error(`crossEntropy: targets must be i32 class indices, got ${targets.dtype}`);
  if (logits.ndim < 1 || targets.ndim !== lead.length || targets.shape.some((d, i) => d !== lead[i])) {
    throw new Error(
      `crossEntropy: targets of shape [${targets.shape}] do not match logits [${logits.shape}] without the class axis`,
    );
  }
  const C = logits.shape[logits.ndim - 1], known = knownValues(targets);
  // Labels given as host data are checked now; computed ones outside [0, C) select no class (loss 0).
  if (known !== null) checkIndices("crossEntropy", known, C, `${C} classes (targets are class indices)`);
  // Select with where, not a multiply by the one-hot: -Infinity (masked) logits would give 0 * -Infinity = NaN.
  const hit = oneHot(targets, C, { dtype: "bool" });
  const nll = hit.where(logSoftmax(logits), 0).sum({ axis: -1 }).neg();
  const reduction = opts.reduction ?? "mean";
  if (reduction === "none") return nll;
  if (reduction === "sum") return nll.sum();
  if (reduction === "mean") return nll.mean();
  throw new Error(`crossEntropy: reduction must be "mean", "sum" or "none", got ${JSON.stringify(reduction)}`);
}
