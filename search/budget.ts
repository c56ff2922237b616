// Budgets for PostNAS: counts of a kind of block, and the decoding state a configuration needs.

import { type BlockSpec, mixer, type ModelConfig } from "../nn/mod.ts";

/**
 * A feasibility test: at most `k` layers satisfy `pred` (e.g. at most 2 full-attention layers).
 *
 * @example
 * ```ts
 * import { maxCount } from "../mod.ts";
 * const atMostTwoMha = maxCount((b: { attn: string }) => b.attn === "mha", 2);
 * ```
 */
export function maxCount<C>(pred: (c: C) => boolean, k: number): (config: readonly C[]) => boolean {
  if (!Number.isInteger(k) || k < 0) throw new Error(`maxCount: k must be a non-negative integer, got ${k}`);
  return (config) => config.filter(pred).length <= k;
}

/**
 * Bytes of decoding state one sequence needs in a layer after `context` tokens: the KV cache for
 * attention (bounded by the window for `swa`), a constant recurrent state for `linear` and `jet`.
 *
 * @example
 * ```ts
 * import { block, modelConfig, stateBytes } from "../mod.ts";
 * const cfg = modelConfig({ vocab: 256, width: 128, heads: 4, blocks: [block("mha")] });
 * console.log(stateBytes(block("mha"), { cfg, context: 4096 }));
 * ```
 */
export function stateBytes(spec: BlockSpec, opts: { readonly cfg: ModelConfig; readonly context: number }): number {
  const conv = spec.conv ? (opts.cfg.convWidth - 1) * opts.cfg.width * 4 : 0;
  return mixer(opts.cfg, spec).stateBytes(opts.context) + conv;
}

/**
 * A feasibility test: the whole configuration's decoding state at `context` fits in `limit` bytes.
 *
 * @example
 * ```ts
 * import { block, maxStateBytes, modelConfig } from "../mod.ts";
 * const cfg = modelConfig({ vocab: 256, width: 128, heads: 4, blocks: [block("mha")] });
 * const fits = maxStateBytes(1 << 20, { cfg, context: 8192 });
 * ```
 */
export function maxStateBytes(
  limit: number,
  opts: { readonly cfg: ModelConfig; readonly context: number },
): (config: readonly BlockSpec[]) => boolean {
  return (config) => totalStateBytes(config, opts) <= limit;
}

/** Total decoding-state bytes of a configuration at `context` tokens (one sequence). */
export function totalStateBytes(
  config: readonly BlockSpec[],
  opts: { readonly cfg: ModelConfig; readonly context: number },
): number {
  return config.reduce((acc, spec) => acc + stateBytes(spec, opts), 0);
}
