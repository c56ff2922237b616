// Learning-rate schedules built from ops (evaluated on the device from the step count), and
// global-norm gradient clipping.

import { type Tensor, tensor, treeFlatten, treeLeaves, treePaths, treeUnflatten } from "../core/mod.ts";
import { clip } from "../ops/mod.ts";
import { checkKnown, checkNumber } from "./checks.ts";

/** A learning rate as a function of the step (an f32 scalar: updates already applied), built from ops. */
export type Schedule = (step: Tensor) => Tensor;

/**
 * A constant learning rate, as a schedule.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { adamw, constantSchedule, tensor } from "../mod.ts";
 * const lr = constantSchedule(3e-4);
 * assert.equal(await lr(tensor(100)).item(), Math.fround(3e-4));
 * const opt = adamw({ lr });
 * ```
 */
export function constantSchedule(lr: number): Schedule {
  checkNumber("constant", "lr", lr, { min: 0 });
  return (step) => tensor(lr).broadcastTo(step.shape);
}

/** Options of `warmupCosine`. */
export interface WarmupCosineOptions {
  /** The learning rate reached at the end of the warmup. */
  readonly peak: number;
  /** Steps of linear warmup from 0 to `peak`. */
  readonly warmupSteps: number;
  /** The step at which the cosine decay reaches `final` (at least `warmupSteps`). */
  readonly totalSteps: number;
  /** The learning rate at `totalSteps` and after; `0.1 * peak` by default. */
  readonly final?: number;
}

/**
 * Linear warmup from 0 to `peak` over `warmupSteps`, then a half cosine down to `final` at
 * `totalSteps`, constant after: `final + (peak - final) (1 + cos(pi (s - w) / (T - w))) / 2`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { adamw, tensor, warmupCosine } from "../mod.ts";
 * const lr = warmupCosine({ peak: 1, warmupSteps: 10, totalSteps: 110, final: 0 });
 * const at = (step: number) => lr(tensor(step)).item();
 * assert.ok(Math.abs((await at(5)) - 0.5) < 1e-6); // halfway up the warmup
 * assert.equal(await at(10), 1); // the peak, exactly
 * assert.ok(Math.abs((await at(60)) - 0.5) < 1e-6); // halfway down the cosine
 * assert.equal(await at(500), 0); // `final` from totalSteps on
 * const opt = adamw({ lr });
 * ```
 */
export function warmupCosine(opts: WarmupCosineOptions): Schedule {
  const op = "warmupCosine";
  checkKnown(op, opts, ["peak", "warmupSteps", "totalSteps", "final"]);
  const { peak, warmupSteps: w, totalSteps: total, final = 0.1 * opts.peak } = opts;
  checkNumber(op, "peak", peak, { min: 0 });
  checkNumber(op, "warmupSteps", w, { min: 0, integer: true });
  checkNumber(op, "totalSteps", total, { min: w, integer: true, minText: "warmupSteps" });
  checkNumber(op, "final", final, { min: 0 });
  return (step) => {
    const s = step.cast("f32");
    const progress = clip(s.sub(w).div(Math.max(total - w, 1)), 0, 1);
    // Written from the peak down, so the peak itself is exact (1 - cos 0 = 0); `where` makes the
    // final value exact too rather than trusting cos(pi) in f32.
    const cosine = progress.mul(Math.PI).cos().neg().add(1).mul(-0.5 * (peak - final)).add(peak);
    return s.lt(w).where(s.mul(peak / Math.max(w, 1)), s.ge(total).where(final, cosine));
  };
}

/**
 * The L2 norm of all leaves of a pytree together, as a lazy f32 scalar.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { globalNorm, tensor } from "../mod.ts";
 * assert.equal(await globalNorm({ a: tensor([3]), b: [tensor([[4]])] }).item(), 5);
 * ```
 */
export function globalNorm(tree: unknown): Tensor {
  const leaves = treeLeaves(tree);
  const paths = treePaths(tree);
  leaves.forEach((x, i) => {
    if (x.dtype !== "f32") throw new Error(`globalNorm: leaf "${paths[i]}" is ${x.dtype}; only f32 leaves have a norm`);
  });
  return leaves.reduce((acc, x) => acc.add(x.square().sum()), tensor(0)).sqrt();
}

/**
 * Scales a pytree of grads by `maxNorm / max(norm, maxNorm)`: unchanged when its global norm is at
 * most `maxNorm`, else scaled to that norm. Returns the grads and their norm before clipping, lazily.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { clipByGlobalNorm, tensor } from "../mod.ts";
 * const { grads, norm } = clipByGlobalNorm({ w: tensor([3, 4]) }, 1);
 * assert.equal(await norm.item(), 5);
 * const [a, b] = await grads.w.data();
 * assert.ok(Math.abs(a - 0.6) < 1e-6 && Math.abs(b - 0.8) < 1e-6);
 * // Within the bound, grads pass unchanged.
 * const small = clipByGlobalNorm({ w: tensor([0.3, 0.4]) }, 1);
 * assert.deepEqual(await small.grads.w.data(), await tensor([0.3, 0.4]).data());
 * ```
 */
export function clipByGlobalNorm<T>(grads: T, maxNorm: number): { readonly grads: T; readonly norm: Tensor } {
  checkNumber("clipByGlobalNorm", "maxNorm", maxNorm, { min: 0, exclusive: true });
  const norm = globalNorm(grads);
  const scale = tensor(maxNorm).div(norm.maximum(maxNorm));
  const [leaves, def] = treeFlatten(grads, { op: "clipByGlobalNorm" });
  return { grads: treeUnflatten<T>(def, leaves.map((x) => x.mul(scale))), norm };
}
