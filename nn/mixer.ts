// The contract every token mixer implements: init, full-sequence apply, prefill and one-token step.

import type { Key, Tensor } from "../core/mod.ts";
import type { BlockSpec, ModelConfig } from "./spec.ts";

/**
 * A token mixer. `apply` maps `[B, T, width]` to `[B, T, width]` causally; `prefill` does the same
 * and also returns the cache that `step` continues from, one token (`[B, 1, width]`) at a time, at
 * absolute position `pos`. Params and caches are pytrees of tensors.
 */
export interface Mixer<P, C> {
  /** Fresh parameters for one layer. */
  init(key: Key, cfg: ModelConfig, spec: BlockSpec): P;
  /** Output for a whole sequence. */
  apply(p: P, x: Tensor, cfg: ModelConfig, spec: BlockSpec): Tensor;
  /** Output for a prompt, and the cache after it. */
  prefill(p: P, x: Tensor, cfg: ModelConfig, spec: BlockSpec): [Tensor, C];
  /** Output for one more token at position `pos`, and the updated cache. */
  step(
    p: P,
    x: Tensor,
    cache: C,
    opts: { readonly pos: number; readonly cfg: ModelConfig; readonly spec: BlockSpec },
  ): [Tensor, C];
  /** Bytes of cache one sequence needs after `context` tokens (f32). */
  stateBytes(cfg: ModelConfig, spec: BlockSpec, context: number): number;
}
