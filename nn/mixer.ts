// The contract every token mixer implements, bound to one layer: init, apply, prefill, step, state size.

import type { Key, Tensor } from "../core/mod.ts";

/** Options of `Mixer.step`: the cache to continue from and the absolute position of the token. */
export interface MixerStepOptions<C> {
  /** The cache `prefill` or the previous `step` returned. */
  readonly cache: C;
  /** Absolute position of this token (0 is the first prompt token). */
  readonly pos: number;
  /**
   * The capacity the cache was preallocated for by `prefill` (see `MixerPrefillOptions`); absent for a cache that
   * grows by one token a step.
   */
  readonly capacity?: number;
}

/** Options of `Mixer.prefill`. */
export interface MixerPrefillOptions {
  /**
   * Preallocate the cache for this many tokens in all (prompt included), so that each `step` writes one slot of a
   * cache of fixed shape instead of concatenating a longer one: the same graph every step, and no copy that grows.
   * Attention keeps `capacity` slots (`swa`: a ring of `window`); recurrent mixers, whose state is fixed, ignore it.
   */
  readonly capacity?: number;
}

/**
 * A token mixer with its layer's config and spec already bound (see `mixer(cfg, spec)`). `apply`
 * maps `[B, T, width]` to `[B, T, width]` causally; `prefill` does the same and also returns the
 * cache that `step` continues from, one token (`[B, 1, width]`) at a time. Params `P` and caches
 * `C` are pytrees of tensors.
 *
 * @example
 * ```ts
 * import { block, mixer, modelConfig, normal, randomKey } from "../mod.ts";
 * const spec = block("swa", { window: 4 });
 * const cfg = modelConfig({ vocab: 16, width: 8, heads: 2, blocks: [spec] });
 * const m = mixer(cfg, spec);
 * const p = m.init(randomKey(0));
 * const [y, cache] = m.prefill(p, normal(randomKey(1), [1, 5, 8]));
 * const [next] = m.step(p, normal(randomKey(2), [1, 1, 8]), { cache, pos: 5 });
 * console.log(m.stateBytes(4096)); // the KV cache of 3 tokens, whatever the context
 * ```
 */
export interface Mixer<P, C> {
  /** Fresh parameters for the layer. */
  init(key: Key): P;
  /** Output for a whole sequence. */
  apply(p: P, x: Tensor): Tensor;
  /** Output for a prompt, and the cache after it. */
  prefill(p: P, x: Tensor, opts?: MixerPrefillOptions): [Tensor, C];
  /** Output for one more token, and the updated cache. */
  step(p: P, x: Tensor, opts: MixerStepOptions<C>): [Tensor, C];
  /** Bytes of cache one sequence needs after `context` tokens (f32). */
  stateBytes(context: number): number;
}
