// summary.json: the teacher, every layer a JetBlock, and the chosen model side by side, for people and scripts.

import {
  type BlockSpec,
  type Evaluation,
  extractSubnet,
  type ModelConfig,
  type ModelParams,
  totalStateBytes,
} from "../mod.ts";
import { blockLabel } from "./options.ts";
import { type Ctx, evaluate } from "./phases.ts";
import type { Warm } from "./pipeline.ts";
import type { GeometrySummary, ModelSummary, RunSummary } from "./report.ts";
import { FILES } from "./rundir.ts";

function modelSummary(cfg: ModelConfig, blocks: readonly BlockSpec[], ev: Evaluation, context: number): ModelSummary {
  return {
    blocks: blocks.map(blockLabel),
    loss: ev.loss,
    recall: Number.isNaN(ev.accuracy) ? null : ev.accuracy,
    stateBytes: totalStateBytes(blocks, { cfg, context }),
  };
}

/**
 * Every layer a JetBlock, through the supernet, scored on the held-out proxy; null where the space has no jet. Call
 * it before post-training a path: that disposes the supernet tensors the path shares (embeddings, norms).
 */
export async function allJetSummary(ctx: Ctx, warm: Warm, context: number): Promise<ModelSummary | null> {
  const jet = warm.space.candidates.find((c) => c.attn === "jet");
  if (jet === undefined) return null;
  const blocks = warm.baseConfig.blocks.map(() => jet);
  const sub = extractSubnet(warm.supernet, blocks);
  return modelSummary(warm.baseConfig, blocks, await evaluate(ctx, sub.params, sub.config), context);
}

/**
 * Writes summary.json: the teacher (the base model, scored before supernet training), every layer a JetBlock
 * (`allJet`, else `allJetSummary`'s), and the chosen model (`chosen`: e.g. demo's post-tuned one; by default the
 * supernet's path), each with its held-out loss and recall and its decoding state at `context` tokens.
 */
export async function writeSummary(
  ctx: Ctx,
  warm: Warm,
  choice: readonly BlockSpec[],
  o: {
    readonly context: number;
    readonly seconds: number;
    readonly chosen?: { readonly config: ModelConfig; readonly params: ModelParams };
    readonly allJet?: ModelSummary | null;
    readonly hardware?: readonly GeometrySummary[];
  },
): Promise<RunSummary> {
  const cfg = warm.baseConfig;
  const allJet = o.allJet !== undefined ? o.allJet : await allJetSummary(ctx, warm, o.context);
  const model = o.chosen ?? extractSubnet(warm.supernet, choice);
  const summary: RunSummary = {
    teacher: modelSummary(cfg, cfg.blocks, warm.baseEval, o.context),
    allJet,
    chosen: modelSummary(cfg, choice, await evaluate(ctx, model.params, model.config), o.context),
    hardware: o.hardware ?? [],
    seconds: o.seconds,
  };
  await ctx.run.writeJson(FILES.summary, summary);
  return summary;
}
