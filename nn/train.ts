// A training step that stays on the device: one submit per step, the loss read only when asked.

import { realize, type Tensor, treeLeaves, valueAndGrad } from "../core/mod.ts";
import type { Optimizer } from "./optim.ts";

/** Params, optimizer state and the number of steps taken. */
export interface TrainState<P, S> {
  /** Current params. */
  readonly params: P;
  /** Optimizer state. */
  readonly opt: S;
  /** Steps taken. */
  readonly step: number;
}

/** One training step: the new state and the (realized, not yet read) loss of the batch. */
export type TrainStep<P, S, B> = (state: TrainState<P, S>, batch: B) => Promise<[TrainState<P, S>, Tensor]>;

/**
 * Builds a training step from a loss and an optimizer. Each call computes the loss and gradients,
 * applies the update, and realizes the new params, optimizer state and loss together (on WebGPU:
 * one submit, no readback); the previous params and state are disposed, except tensors carried
 * over unchanged (frozen leaves). Read the returned loss only when you need it: `await loss.item()`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { adamw, makeTrainStep, type Tensor, tensor } from "../mod.ts";
 * type Params = { readonly w: Tensor };
 * const opt = adamw({ lr: 0.1 });
 * const step = makeTrainStep((p: Params, x: Tensor) => p.w.mul(x).sub(1).square().sum(), opt);
 * const params: Params = { w: tensor([0, 0]) };
 * let state = { params, opt: opt.init(params), step: 0 };
 * const losses: number[] = [];
 * for (let i = 0; i < 3; i++) {
 *   const [next, loss] = await step(state, tensor([1, 2]));
 *   state = next;
 *   losses.push(await loss.item());
 * }
 * assert.equal(state.step, 3);
 * assert.equal(losses[0], 2); // (0 - 1)^2 + (0 - 1)^2, before the first update
 * assert.ok(losses[2] < losses[0]);
 * assert.ok(params.w.disposed); // each step disposes the params it replaced
 * ```
 */
export function makeTrainStep<P, S, B>(
  loss: (params: P, batch: B) => Tensor,
  optimizer: Optimizer<S>,
): TrainStep<P, S, B> {
  const vg = valueAndGrad(loss);
  return async (state, batch) => {
    const [value, grads] = vg(state.params, batch);
    const { params, state: opt } = optimizer.update(grads as P, state.opt, state.params);
    const fresh = treeLeaves([params, opt]);
    await realize([...fresh, value]);
    const keep = new Set(fresh);
    for (const t of treeLeaves([state.params, state.opt])) if (!keep.has(t)) t.dispose();
    return [{ params, opt, step: state.step + 1 }, value];
  };
}
