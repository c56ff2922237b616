// Which implementation serves each mixer kind, and the param and cache types that follow from the kind.

import { attention, type AttentionParams, type KvCache } from "./attention.ts";
import { jetBlock, type JetCache, type JetParams } from "./jet.ts";
import { linearAttention, type LinearAttentionParams, type LinearAttentionState } from "./linear_attention.ts";
import type { Mixer } from "./mixer.ts";
import { type BlockSpecOf, checkBlock, type MixerKind, type ModelConfig } from "./spec.ts";

/** The params and the decoding cache of each mixer kind. */
export interface MixerTypes {
  /** Full attention. */
  readonly mha: { readonly params: AttentionParams; readonly cache: KvCache };
  /** Sliding-window attention: the same weights as `mha`, a window-bounded cache. */
  readonly swa: { readonly params: AttentionParams; readonly cache: KvCache };
  /** Linear attention. */
  readonly linear: { readonly params: LinearAttentionParams; readonly cache: LinearAttentionState };
  /** The JetBlock. */
  readonly jet: { readonly params: JetParams; readonly cache: JetCache };
}

/** Params of a mixer of kind `K`; for a union of kinds (the default: any kind), the union of theirs. */
export type MixerParams<K extends MixerKind = MixerKind> = MixerTypes[K]["params"];

/** Decoding cache of a mixer of kind `K`; for a union of kinds, the union of theirs. */
export type MixerCache<K extends MixerKind = MixerKind> = MixerTypes[K]["cache"];

/** Binds the mixer of kind `K` to a layer's config and spec. */
export type MixerFactory<K extends MixerKind> = (
  cfg: ModelConfig,
  spec: BlockSpecOf<K>,
) => Mixer<MixerParams<K>, MixerCache<K>>;

/** The mixer implementation of each `BlockSpec.attn`. */
export const MIXERS: { readonly [K in MixerKind]: MixerFactory<K> } = {
  mha: attention,
  swa: attention,
  linear: linearAttention,
  jet: jetBlock,
};

/**
 * The mixer of one layer, bound to its config and spec: `spec.attn` picks the implementation, and
 * the params and cache types follow from it (`Mixer<JetParams, JetCache>` for a `jet` spec; the
 * unions over the kinds for a spec of unknown kind, such as an element of `cfg.blocks`).
 *
 * @example
 * ```ts
 * import { block, mixer, modelConfig, normal, randomKey } from "../mod.ts";
 * import assert from "node:assert/strict";
 * const cfg = modelConfig({ vocab: 16, width: 8, heads: 2, blocks: [block("mha"), block("jet")] });
 * const layers = cfg.blocks.map((spec) => mixer(cfg, spec));
 * const y = layers[1].apply(layers[1].init(randomKey(0)), normal(randomKey(1), [1, 5, 8]));
 * assert.deepEqual(y.shape, [1, 5, 8]);
 * assert.ok(layers[0].stateBytes(4096) > layers[1].stateBytes(4096)); // a KV cache against a fixed state
 * ```
 */
export function mixer<K extends MixerKind>(
  cfg: ModelConfig,
  spec: BlockSpecOf<K>,
): Mixer<MixerParams<K>, MixerCache<K>> {
  const kind: K = spec.attn;
  // A spec that bypassed `block` (parsed JSON, say) gets checkBlock's sentence, not "not a function".
  if (!Object.hasOwn(MIXERS, kind)) checkBlock(spec, "mixer");
  return MIXERS[kind](cfg, spec);
}
