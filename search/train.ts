// Once-for-all supernet training: a random path per step, AdamW on that path only, MLPs frozen.

import { type Key, realize, type Tensor, type Tree, treeLeaves, valueAndGrad } from "../core/mod.ts";
import {
  adamw,
  type AdamWOptions,
  type AdamWState,
  type Batch,
  type BlockSpec,
  lossFn,
  type ModelConfig,
  type ModelParams,
} from "../nn/mod.ts";
import { type Distillation, distillLoss } from "./distill.ts";
import { extractSubnet, mergeSubnet, samplePath, type Supernet } from "./supernet.ts";

/** Trains a supernet path by path, keeping one optimizer state shaped like the supernet. */
export interface SupernetTrainer {
  /** Optimizer state for a supernet (moments for every trainable tensor, none for frozen MLPs). */
  init(sn: Supernet): AdamWState;
  /**
   * One step on `batch` along `path` (random when omitted, from `key`): only the path's tensors
   * change; the rest of the supernet and of the optimizer state is carried over as is.
   */
  step(
    sn: Supernet,
    opt: AdamWState,
    batch: Batch & { readonly key?: Key; readonly path?: readonly BlockSpec[] },
  ): Promise<{ supernet: Supernet; opt: AdamWState; loss: Tensor; path: readonly BlockSpec[] }>;
}

const isMlp = (path: string) => /(^|\.)ffn\./.test(path);

// The optimizer moments have the supernet's structure, so the same extraction applies to them. Their
// type (a plain Tree) does not say so, hence the cast.
const asParams = (sn: Supernet, tree: Tree): Supernet => ({ ...sn, params: tree as unknown as Supernet["params"] });

/** Options of `supernetTrainer`: AdamW's, and what the MLPs and the loss do. */
export type SupernetTrainerOptions = Omit<AdamWOptions, "mask"> & {
  /** Keep the MLPs frozen, as PostNAS does (default true). */
  readonly freezeMlp?: boolean;
  /**
   * Learn from a frozen teacher with `distillLoss` (default: the data's next-token cross entropy). The teacher's
   * tensors, often shared with the supernet it was built into, are never disposed by the trainer.
   */
  readonly distill?: Distillation;
};

/**
 * A supernet trainer: AdamW with the given options, the MLPs frozen (as PostNAS does) unless
 * `freezeMlp` is false, the loss next-token cross entropy or, with `distill`, a teacher's.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { block, initSupernet, modelConfig, randomKey, supernetTrainer, toyBatch, treeLeaves } from "../mod.ts";
 * const cfg = modelConfig({ vocab: 256, width: 32, heads: 4, blocks: [block("mha")] });
 * const sn = initSupernet(randomKey(0), cfg, [[block("mha"), block("jet")]]);
 * const trainer = supernetTrainer({ lr: 1e-3 });
 * const batch = toyBatch(randomKey(1), { batch: 2, seqLen: 48 });
 * const { supernet, loss, path } = await trainer.step(sn, trainer.init(sn), { ...batch, key: randomKey(2) });
 * assert.ok(Number.isFinite(await loss.item()));
 * assert.ok(path.length === 1 && ["mha", "jet"].includes(path[0].attn)); // one random candidate per layer
 * const mlp = (s: typeof sn) => treeLeaves(s.params.layers[0].ffn);
 * assert.ok(mlp(supernet).every((t, i) => t === mlp(sn)[i])); // the MLPs stay frozen
 * ```
 */
export function supernetTrainer(opts: SupernetTrainerOptions): SupernetTrainer {
  const { freezeMlp = true, distill, ...rest } = opts;
  const opt = adamw({ ...rest, mask: (path) => !(freezeMlp && isMlp(path)) });
  const frozen = new Set(distill ? treeLeaves(distill.teacher.params) : []);
  const objective = (p: ModelParams, batch: Batch, cfg: ModelConfig) =>
    distill ? distillLoss(p, batch, cfg, distill) : lossFn(p, batch, cfg);
  return {
    init: (sn) => opt.init(sn.params),
    async step(sn, state, batch) {
      if (!batch.path && !batch.key) throw new Error("supernetTrainer.step: give a path or a key to sample one");
      const path = batch.path ?? samplePath(batch.key!, sn.space);
      const sub = extractSubnet(sn, path);
      const sub2 = (tree: Tree) => extractSubnet(asParams(sn, tree), path).params as unknown as Tree;
      const [loss, grads] = valueAndGrad((p: ModelParams) => objective(p, batch, sub.config))(sub.params);
      const next = opt.update(grads, { count: state.count, mu: sub2(state.mu), nu: sub2(state.nu) }, sub.params);
      const supernet = mergeSubnet(sn, path, next.params);
      const merge = (tree: Tree, part: unknown) =>
        mergeSubnet(asParams(sn, tree), path, part as ModelParams).params as unknown as Tree;
      const newState: AdamWState = {
        count: next.state.count,
        mu: merge(state.mu, next.state.mu),
        nu: merge(state.nu, next.state.nu),
      };
      const fresh = treeLeaves([supernet.params, newState]);
      await realize([...fresh, loss]);
      const keep = new Set([...fresh, ...frozen]);
      for (const t of treeLeaves([sn.params, state])) if (!keep.has(t)) t.dispose();
      return { supernet, opt: newState, loss, path };
    },
  };
}
