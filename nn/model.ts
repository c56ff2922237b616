// The model: tied embeddings, a stack of (conv?) -> mixer -> FFN blocks, next-token loss.

import { foldIn, type Key, ones, randomKey, splitKey, type Tensor, tensor } from "../core/mod.ts";
import * as ops from "../ops/mod.ts";
import { applyFfn, causalConv, dense, type FfnParams, initFfn, initNormal, shapesOnly } from "./layers.ts";
import { mixer, type MixerParams } from "./mixers.ts";
import { type BlockSpec, type BlockSpecOf, checkConfig, type MixerKind, type ModelConfig } from "./spec.ts";

/**
 * Params of one layer whose mixer is of kind `K`; for a union of kinds (the default: any kind), the
 * union of each kind's block params. The union is discriminated by the layer's spec (`spec.attn`)
 * rather than by a field, because pytree leaves are tensors: `mixer(cfg, spec)` takes params of
 * exactly the type this gives for that spec. `conv` exists only with `conv: true`.
 */
export type BlockParams<K extends MixerKind = MixerKind> = {
  readonly [Q in K]: {
    /** RMSNorm weight before the mixer. */
    readonly norm1: Tensor;
    /** Causal depthwise conv `[width, convWidth]` (blocks with `conv`). */
    readonly conv?: Tensor;
    /** The mixer's params. */
    readonly mixer: MixerParams<Q>;
    /** RMSNorm weight before the FFN. */
    readonly norm2: Tensor;
    /** The FFN's projections. */
    readonly ffn: FfnParams;
  };
}[K];

/** Params of a model: a plain pytree. */
export interface ModelParams {
  /** Token embeddings `[vocab, width]`, also the output head unless the model has `head`. */
  readonly embed: Tensor;
  /** The output head `[width, vocab]` of an untied model (config `tied: false`). */
  readonly head?: Tensor;
  /** One entry per layer. */
  readonly blocks: readonly BlockParams[];
  /** Final RMSNorm weight. */
  readonly normf: Tensor;
}

/** A training batch: `inputs` and next-token `targets`, both i32 `[B, T]`. */
export interface Batch {
  /** Input tokens, i32 `[B, T]`. */
  readonly inputs: Tensor;
  /** Next tokens, i32 `[B, T]`. */
  readonly targets: Tensor;
}

/** A causal conv that starts as the identity (all weight on the current token). */
function identityConv(cfg: ModelConfig): Tensor {
  const K = cfg.convWidth, w = new Float32Array(cfg.width * K);
  for (let c = 0; c < cfg.width; c++) w[c * K + K - 1] = 1;
  return tensor(w, { shape: [cfg.width, K] });
}

/**
 * Params of one block for `spec` (used by `initModel`, and by the supernet for each candidate).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { block, initBlock, modelConfig, randomKey } from "../mod.ts";
 * const cfg = modelConfig({ vocab: 16, width: 8, heads: 2, blocks: [block("mha", { conv: true })] });
 * const p = initBlock(randomKey(0), cfg, cfg.blocks[0]);
 * assert.deepEqual(Object.keys(p).sort(), ["conv", "ffn", "mixer", "norm1", "norm2"]);
 * assert.deepEqual(await p.norm1.array(), [1, 1, 1, 1, 1, 1, 1, 1]); // the norms start with unit weights
 * // Without `conv` there is no conv weight, and the mixer's params are those of the spec's kind.
 * const jet = initBlock(randomKey(1), cfg, block("jet"));
 * assert.ok(!("conv" in jet));
 * assert.deepEqual(jet.mixer.aLog.shape, [2]);
 * ```
 */
export function initBlock<K extends MixerKind>(key: Key, cfg: ModelConfig, spec: BlockSpecOf<K>): BlockParams<K> {
  const [km, kf] = splitKey(key, 2);
  const p: BlockParams<K> = {
    norm1: ones([cfg.width]),
    mixer: mixer(cfg, spec).init(km),
    norm2: ones([cfg.width]),
    ffn: initFfn(kf, cfg),
  };
  return spec.conv ? { ...p, conv: identityConv(cfg) } : p;
}

/**
 * Fresh params for a config (deterministic in the key).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { block, initModel, modelConfig, randomKey } from "../mod.ts";
 * const cfg = modelConfig({ vocab: 16, width: 8, heads: 2, blocks: [block("mha"), block("swa", { window: 4 })] });
 * const params = initModel(randomKey(0), cfg);
 * assert.deepEqual(params.embed.shape, [16, 8]);
 * assert.equal(params.blocks.length, 2);
 * // The same key gives the same weights.
 * assert.deepEqual(await initModel(randomKey(0), cfg).embed.data(), await params.embed.data());
 * ```
 */
export function initModel(key: Key, cfg: ModelConfig): ModelParams {
  checkConfig(cfg);
  const keys = splitKey(key, cfg.blocks.length + 1);
  const params: ModelParams = {
    embed: initNormal(keys[0], [cfg.vocab, cfg.width], 1 / Math.sqrt(cfg.width)),
    blocks: cfg.blocks.map((spec, i) => initBlock(keys[i + 1], cfg, spec)),
    normf: ones([cfg.width]),
  };
  // A key of its own for the untied head, so tied models draw exactly what they always did.
  return cfg.tied === false ? { ...params, head: dense(foldIn(keys[0], 1), cfg.width, cfg.vocab) } : params;
}

function checkTokens(tokens: Tensor, cfg: ModelConfig, where: string): void {
  if (tokens.dtype !== "i32" || tokens.ndim !== 2) {
    throw new Error(`${where}: tokens must be i32 [batch, time], got ${tokens.dtype} [${tokens.shape}]`);
  }
  if (cfg.blocks.length === 0) throw new Error(`${where}: the config has no blocks`);
}

/**
 * The params `initModel` would give, as lazy zeros: the same paths, shapes and dtypes with nothing drawn or
 * computed, for checking or loading params against a config (`initModel` draws its weights on the host at once,
 * which for a model of billions of params takes minutes and gigabytes).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { block, initModel, modelConfig, modelTemplate, randomKey, treeLeaves, treePaths } from "../mod.ts";
 * const cfg = modelConfig({ vocab: 16, width: 8, heads: 2, blocks: [block("mha"), block("jet")] });
 * const [t, p] = [modelTemplate(cfg), initModel(randomKey(0), cfg)];
 * assert.deepEqual(treePaths(t), treePaths(p));
 * assert.deepEqual(treeLeaves(t).map((x) => x.shape), treeLeaves(p).map((x) => x.shape));
 * assert.ok((await t.embed.data()).every((v) => v === 0));
 * ```
 */
export function modelTemplate(cfg: ModelConfig): ModelParams {
  return shapesOnly(() => initModel(randomKey(0), cfg));
}

/** The mixer input of a block: normalized, then (with `conv`) causally convolved. */
export function mixerInput(p: BlockParams, h: Tensor, cfg: ModelConfig, opts: { readonly past?: Tensor } = {}): Tensor {
  const a = ops.rmsNorm(h, { weight: p.norm1, eps: cfg.normEps });
  return p.conv ? causalConv(a, p.conv, opts) : a;
}

/** Adds a block's FFN (pre-norm, residual) to `h`. */
export function ffnResidual(p: BlockParams, h: Tensor, cfg: ModelConfig, spec: BlockSpec): Tensor {
  return h.add(applyFfn(p.ffn, ops.rmsNorm(h, { weight: p.norm2, eps: cfg.normEps }), spec.ffn));
}

/** Logits of the head (the tied embedding, or `head`) for hidden states `[B, T, width]`. */
export function logitsOf(params: ModelParams, h: Tensor, cfg: ModelConfig): Tensor {
  return ops.rmsNorm(h, { weight: params.normf, eps: cfg.normEps }).matmul(params.head ?? params.embed.transpose());
}

/**
 * Next-token logits `[B, T, vocab]` for i32 tokens `[B, T]`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { block, forward, initModel, modelConfig, randomKey, readAll, tensor } from "../mod.ts";
 * const cfg = modelConfig({ vocab: 16, width: 8, heads: 2, blocks: [block("mha"), block("jet")] });
 * const params = initModel(randomKey(0), cfg);
 * const logits = forward(params, tensor([[1, 2, 3]], { dtype: "i32" }), cfg);
 * assert.deepEqual(logits.shape, [1, 3, 16]);
 * // Causal: another last token leaves the logits of the first two positions as they were.
 * const other = forward(params, tensor([[1, 2, 9]], { dtype: "i32" }), cfg);
 * const [a, b] = await readAll([logits.slice([0, 0, 0], [1, 2, 16]), other.slice([0, 0, 0], [1, 2, 16])]);
 * assert.ok(a.every((v, i) => Math.abs(v - b[i]) < 1e-5));
 * ```
 */
export function forward(params: ModelParams, tokens: Tensor, cfg: ModelConfig): Tensor {
  checkTokens(tokens, cfg, "forward");
  let h = params.embed.gather(tokens);
  cfg.blocks.forEach((spec, i) => {
    const p = params.blocks[i];
    h = h.add(mixer(cfg, spec).apply(p.mixer, mixerInput(p, h, cfg)));
    h = ffnResidual(p, h, cfg, spec);
  });
  return logitsOf(params, h, cfg);
}

/**
 * Mean next-token cross entropy of a batch.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { block, initModel, lossFn, modelConfig, randint, randomKey, zeros } from "../mod.ts";
 * const cfg = modelConfig({ vocab: 16, width: 8, heads: 2, blocks: [block("mha")] });
 * const params = initModel(randomKey(0), cfg);
 * const [inputs, targets] = [1, 2].map((i) => randint(randomKey(i), [4, 16], { maxval: 16 }));
 * // A fresh model is close to uniform over the vocabulary, and exactly uniform with zero embeddings.
 * assert.ok(Math.abs(await lossFn(params, { inputs, targets }, cfg).item() - Math.log(16)) < 1);
 * const uniform = lossFn({ ...params, embed: zeros([16, 8]) }, { inputs, targets }, cfg);
 * assert.ok(Math.abs(await uniform.item() - Math.log(16)) < 1e-5);
 * ```
 */
export function lossFn(params: ModelParams, batch: Batch, cfg: ModelConfig): Tensor {
  if (batch.targets.dtype !== "i32" || batch.targets.shape.join() !== batch.inputs.shape.join()) {
    throw new Error(
      `lossFn: targets must be i32 of the inputs' shape [${batch.inputs.shape}], got ${batch.targets.dtype} [${batch.targets.shape}]`,
    );
  }
  return ops.crossEntropy(forward(params, batch.inputs, cfg), batch.targets);
}
