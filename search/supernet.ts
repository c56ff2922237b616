// The once-for-all supernet: shared embeddings, norms and MLPs, every candidate mixer per layer.

import { type Key, randomBits, splitKey, type Tensor } from "../core/mod.ts";
import {
  type BlockParams,
  type BlockSpec,
  checkBlock,
  forward,
  initBlock,
  initModel,
  mixer,
  type MixerParams,
  type ModelConfig,
  modelConfig,
  type ModelParams,
} from "../nn/mod.ts";

/**
 * Mixer params are shared by kinds with the same shapes: mha and swa differ only in their mask. A spec with its own
 * geometry (attention's `headDim`/`bias`, a JetBlock's heads and sizes) has params of other shapes, so its slot names
 * the geometry too (`jet:heads=4,keyDim=16,valueDim=32`), and candidates of one kind but different geometries each
 * get their own params.
 */
export type MixerSlot = "attention" | "linear" | "jet" | `attention:${string}` | `jet:${string}`;

/** The params of each slot: a slot holds the params of the mixer kinds that share it. */
export type SlotParams = {
  readonly attention: MixerParams<"mha" | "swa">;
  readonly linear: MixerParams<"linear">;
  readonly jet: MixerParams<"jet">;
  readonly [slot: `attention:${string}`]: MixerParams<"mha" | "swa">;
  readonly [slot: `jet:${string}`]: MixerParams<"jet">;
};

const SLOT_GEOMETRY = {
  attention: ["headDim", "bias"],
  jet: ["heads", "keyDim", "valueDim", "generatorHidden", "normEps"],
} as const;

/** The slot whose params a block spec uses: its kind's, plus the geometry fields it gives. */
export function slotOf(spec: BlockSpec): MixerSlot {
  if (spec.attn === "linear") return "linear";
  const base = spec.attn === "jet" ? "jet" : "attention";
  const fields = SLOT_GEOMETRY[base] as readonly string[];
  const rec = spec as unknown as Record<string, unknown>;
  const given = fields.filter((f) => rec[f] !== undefined).map((f) => `${f}=${rec[f]}`);
  return given.length === 0 ? base : `${base}:${given.join(",")}`;
}

/** One supernet layer: the shared parts and one mixer per slot its candidates use. */
export interface SupernetLayer {
  /** RMSNorm weight before the mixer (shared by the candidates). */
  readonly norm1: Tensor;
  /** RMSNorm weight before the FFN (shared). */
  readonly norm2: Tensor;
  /** The layer's FFN, shared by every candidate (frozen in PostNAS training). */
  readonly ffn: BlockParams["ffn"];
  /** Causal conv weights, when some candidate uses `conv`. */
  readonly conv?: Tensor;
  /** One mixer's params per slot the layer's candidates use. */
  readonly mixers: { readonly [S in MixerSlot]?: SlotParams[S] };
}

/** Supernet params (a pytree), with the sizes and the candidates they serve. */
export interface Supernet {
  /** Sizes (its `blocks` are the model the supernet started from). */
  readonly config: ModelConfig;
  /** Candidates per layer. */
  readonly space: readonly (readonly BlockSpec[])[];
  /** The params pytree. */
  readonly params: { readonly embed: Tensor; readonly normf: Tensor; readonly layers: readonly SupernetLayer[] };
}

/**
 * A supernet for `space` (candidates per layer) with the sizes of `config`. With `from`, the
 * embeddings, norms, MLPs, convs and attention weights are inherited from a trained model of the
 * same sizes (PostNAS starts from a pretrained model); the other mixers start fresh.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { block, initModel, initSupernet, modelConfig, randomKey } from "../mod.ts";
 * const cfg = modelConfig({ vocab: 16, width: 8, heads: 2, blocks: [block("mha"), block("mha")] });
 * const space = [[block("mha"), block("jet")], [block("mha"), block("swa", { window: 4 }), block("linear")]];
 * const sn = initSupernet(randomKey(0), cfg, space);
 * // mha and swa share one attention slot; each other kind gets its own.
 * const slots = sn.params.layers.map((layer) => Object.keys(layer.mixers).sort());
 * assert.deepEqual(slots, [["attention", "jet"], ["attention", "linear"]]);
 * // With `from`, the shared parts and the attention weights are the trained model's own tensors.
 * const trained = initModel(randomKey(1), cfg);
 * const inherited = initSupernet(randomKey(0), cfg, space, { from: trained });
 * assert.equal(inherited.params.embed, trained.embed);
 * assert.equal(inherited.params.layers[1].mixers.attention, trained.blocks[1].mixer);
 * ```
 */
export function initSupernet(
  key: Key,
  config: ModelConfig,
  space: readonly (readonly BlockSpec[])[],
  opts: { readonly from?: ModelParams } = {},
): Supernet {
  if (space.length !== config.blocks.length) {
    throw new Error(`initSupernet: the space has ${space.length} layers but the config has ${config.blocks.length}`);
  }
  space.forEach((cands, i) => {
    if (cands.length === 0) throw new Error(`initSupernet: layer ${i} has no candidates`);
    cands.forEach((c, j) => checkBlock(c, `initSupernet: space[${i}][${j}]`));
  });
  const [kBase, kLayers] = splitKey(key, 2);
  const base = opts.from ?? initModel(kBase, config);
  const layerKeys = splitKey(kLayers, space.length);
  const layers = space.map((cands, i): SupernetLayer => {
    const inherited = base.blocks[i];
    const slots = [...new Set(cands.map(slotOf))];
    const keys = splitKey(layerKeys[i], slots.length + 1);
    const mixers = slots.reduce((acc: SupernetLayer["mixers"], slot, j) => {
      const spec = cands.find((c) => slotOf(c) === slot)!;
      const fromTrained = opts.from && slotOf(config.blocks[i]) === slot;
      return { ...acc, [slot]: fromTrained ? inherited.mixer : mixer(config, spec).init(keys[j]) };
    }, {});
    const wantsConv = cands.some((c) => c.conv);
    const conv = inherited.conv ??
      (wantsConv ? initBlock(keys[slots.length], config, { ...cands[0], conv: true }).conv : undefined);
    const layer = { norm1: inherited.norm1, norm2: inherited.norm2, ffn: inherited.ffn, mixers };
    return wantsConv ? { ...layer, conv } : layer;
  });
  return { config, space, params: { embed: base.embed, normf: base.normf, layers } };
}

/**
 * The plain model of one configuration (one candidate per layer), sharing the supernet's tensors.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { block, extractSubnet, initSupernet, modelConfig, randomKey } from "../mod.ts";
 * const cfg = modelConfig({ vocab: 16, width: 8, heads: 2, blocks: [block("mha")] });
 * const sn = initSupernet(randomKey(0), cfg, [[block("mha"), block("jet")]]);
 * const { config, params } = extractSubnet(sn, [block("jet")]);
 * assert.deepEqual(config.blocks, [block("jet")]);
 * // No copies: the subnet's leaves are the supernet's tensors.
 * assert.equal(params.embed, sn.params.embed);
 * assert.equal(params.blocks[0].mixer, sn.params.layers[0].mixers.jet);
 * ```
 */
export function extractSubnet(
  sn: Supernet,
  choice: readonly BlockSpec[],
): { config: ModelConfig; params: ModelParams } {
  if (choice.length !== sn.space.length) {
    throw new Error(`extractSubnet: the choice has ${choice.length} layers but the supernet has ${sn.space.length}`);
  }
  const blocks = choice.map((spec, i): BlockParams => {
    checkBlock(spec, `extractSubnet: choice[${i}]`);
    const layer = sn.params.layers[i], mixer = layer.mixers[slotOf(spec)];
    if (mixer === undefined) throw new Error(`extractSubnet: layer ${i} has no ${spec.attn} candidate`);
    if (spec.conv && !layer.conv) throw new Error(`extractSubnet: layer ${i} has no candidate with conv`);
    const p = { norm1: layer.norm1, mixer, norm2: layer.norm2, ffn: layer.ffn };
    return spec.conv ? { ...p, conv: layer.conv } : p;
  });
  const config = modelConfig({ ...sn.config, blocks: choice });
  return { config, params: { embed: sn.params.embed, blocks, normf: sn.params.normf } };
}

/**
 * Writes a subnet's (e.g. trained) params back into the supernet, returning a new supernet.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { block, extractSubnet, initSupernet, mergeSubnet, modelConfig, randomKey } from "../mod.ts";
 * const cfg = modelConfig({ vocab: 16, width: 8, heads: 2, blocks: [block("mha")] });
 * const sn = initSupernet(randomKey(0), cfg, [[block("mha"), block("jet")]]);
 * const { params } = extractSubnet(sn, [block("jet")]);
 * const trained = { ...params, embed: params.embed.mul(2) };
 * const next = mergeSubnet(sn, [block("jet")], trained);
 * // Extracting the merged path gives back what was merged; the other candidates and the old supernet stay.
 * assert.equal(extractSubnet(next, [block("jet")]).params.embed, trained.embed);
 * assert.equal(next.params.layers[0].mixers.attention, sn.params.layers[0].mixers.attention);
 * assert.equal(sn.params.embed, params.embed);
 * ```
 */
export function mergeSubnet(sn: Supernet, choice: readonly BlockSpec[], params: ModelParams): Supernet {
  const layers = sn.params.layers.map((layer, i): SupernetLayer => {
    const b = params.blocks[i], spec = choice[i];
    const merged = {
      ...layer,
      norm1: b.norm1,
      norm2: b.norm2,
      ffn: b.ffn,
      mixers: { ...layer.mixers, [slotOf(spec)]: b.mixer },
    };
    return spec.conv ? { ...merged, conv: b.conv } : merged;
  });
  return { ...sn, params: { embed: params.embed, normf: params.normf, layers } };
}

/**
 * Logits of one path through the supernet: the forward of the extracted subnet.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { block, extractSubnet, forward, forwardPath, initSupernet, modelConfig, randomKey, tensor } from "../mod.ts";
 * const cfg = modelConfig({ vocab: 16, width: 8, heads: 2, blocks: [block("mha")] });
 * const sn = initSupernet(randomKey(0), cfg, [[block("mha"), block("jet")]]);
 * const tokens = tensor([[1, 2, 3]], { dtype: "i32" });
 * const logits = forwardPath(sn, tokens, [block("jet")]);
 * assert.deepEqual(logits.shape, [1, 3, 16]);
 * // It is the forward of the extracted subnet.
 * const { config, params } = extractSubnet(sn, [block("jet")]);
 * const want = await forward(params, tokens, config).data();
 * assert.ok((await logits.data()).every((v, i) => Math.abs(v - want[i]) < 1e-6));
 * ```
 */
export function forwardPath(sn: Supernet, tokens: Tensor, path: readonly BlockSpec[]): Tensor {
  const { config, params } = extractSubnet(sn, path);
  return forward(params, tokens, config);
}

/**
 * A uniformly random path: one candidate per layer, deterministic in the key.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { block, type BlockSpec, randomKey, samplePath } from "../mod.ts";
 * const space: BlockSpec[][] = [[block("mha"), block("jet")], [block("jet")], [block("linear"), block("mha")]];
 * const path = samplePath(randomKey(3), space);
 * assert.equal(path.length, 3);
 * assert.ok(path.every((spec, i) => space[i].includes(spec))); // one of its own layer's candidates
 * assert.equal(path[1], space[1][0]); // a layer with one candidate always gets it
 * assert.deepEqual(samplePath(randomKey(3), space), path); // the same key, the same path
 * ```
 */
export function samplePath<C>(key: Key, space: readonly (readonly C[])[]): C[] {
  const bits = randomBits(key, space.length);
  return space.map((cands, i) => cands[bits[i] % cands.length]);
}
