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
 * import { adamw, makeTrainStep, tensor } from "../mod.ts";
 * const opt = adamw({ lr: 0.1 });
 * const step = makeTrainStep((p: { w: ReturnType<typeof tensor> }, x: ReturnType<typeof tensor>) => p.w.mul(x).square().sum(), opt);
 * let state = { params: { w: tensor([1, 2]) }, opt: opt.init({ w: tensor([1, 2]) }), step: 0 };
 * const [next, loss] = await step(state, tensor([0.5, 0.5]));
 * console.log(await loss.item());
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
