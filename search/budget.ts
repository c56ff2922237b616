// Budgets for PostNAS: counts of a kind of block, and the decoding state a configuration needs.

import { type BlockSpec, mixer, type ModelConfig } from "../nn/mod.ts";

/**
 * A feasibility test: at most `k` layers satisfy `pred` (e.g. at most 2 full-attention layers).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { block, type BlockSpec, maxCount } from "../mod.ts";
 * const atMostOneMha = maxCount((b: BlockSpec) => b.attn === "mha", 1);
 * assert.equal(atMostOneMha([block("mha"), block("jet")]), true);
 * assert.equal(atMostOneMha([block("mha"), block("mha")]), false);
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
 * import assert from "node:assert/strict";
 * import { block, modelConfig, stateBytes } from "../mod.ts";
 * const cfg = modelConfig({ vocab: 256, width: 128, heads: 4, kvHeads: 2, blocks: [block("mha")] });
 * // Keys and values: 2 x 2 KV heads x 32 floats per head x 4096 tokens x 4 bytes.
 * assert.equal(stateBytes(block("mha"), { cfg, context: 4096 }), 2 * 2 * 32 * 4096 * 4);
 * // Sliding-window attention keeps at most a window; a JetBlock's state does not grow at all.
 * const swa = block("swa", { window: 16 }), jet = block("jet");
 * assert.equal(stateBytes(swa, { cfg, context: 4096 }), stateBytes(swa, { cfg, context: 64 }));
 * assert.equal(stateBytes(jet, { cfg, context: 4096 }), stateBytes(jet, { cfg, context: 64 }));
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
 * import assert from "node:assert/strict";
 * import { block, maxStateBytes, modelConfig } from "../mod.ts";
 * const cfg = modelConfig({ vocab: 256, width: 128, heads: 4, kvHeads: 2, blocks: [block("mha")] });
 * const fits = maxStateBytes(1 << 20, { cfg, context: 8192 });
 * assert.equal(fits([block("jet"), block("jet")]), true);
 * assert.equal(fits([block("mha"), block("jet")]), false); // its KV cache alone is 4 MiB
 * ```
 */
export function maxStateBytes(
  limit: number,
  opts: { readonly cfg: ModelConfig; readonly context: number },
): (config: readonly BlockSpec[]) => boolean {
  return (config) => totalStateBytes(config, opts) <= limit;
}

/**
 * Total decoding-state bytes of a configuration at `context` tokens (one sequence): the sum of
 * `stateBytes` over its layers.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { block, modelConfig, stateBytes, totalStateBytes } from "../mod.ts";
 * const cfg = modelConfig({ vocab: 256, width: 128, heads: 4, blocks: [block("mha")] });
 * const hybrid = [block("mha"), block("jet"), block("jet"), block("jet")];
 * const allMha = hybrid.map(() => block("mha"));
 * const opts = { cfg, context: 4096 };
 * assert.equal(totalStateBytes(hybrid, opts), stateBytes(block("mha"), opts) + 3 * stateBytes(block("jet"), opts));
 * assert.ok(totalStateBytes(hybrid, opts) < totalStateBytes(allMha, opts) / 3);
 * ```
 */
export function totalStateBytes(
  config: readonly BlockSpec[],
  opts: { readonly cfg: ModelConfig; readonly context: number },
): number {
  return config.reduce((acc, spec) => acc + stateBytes(spec, opts), 0);
}
