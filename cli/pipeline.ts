// The Jet-Nemotron pipeline of demo and search: a full-attention base, the supernet warmup, PostNAS.

import {
  block,
  type BlockSpec,
  extractSubnet,
  initModel,
  initSupernet,
  type ModelConfig,
  type ModelParams,
  paramCount,
  type Supernet,
} from "../mod.ts";
import { int, num } from "./args.ts";
import { FILES, type Saved, writeJson } from "./rundir.ts";
import { blockLabel, configFrom } from "./options.ts";
import { type Ctx, describeEval, evaluate, keyFor, trainModel, warmSupernet } from "./phases.ts";
import { makeSpace, runSearch, type SearchOptions, type SearchRecord } from "./postnas.ts";
import { paint, say } from "./progress.ts";
import { stopIfInterrupted } from "./session.ts";

/** Options of the warmup: the base model's pretraining and the supernet's training. */
export const WARMUP = {
  pretrainSteps: int(600, "steps of pretraining the full-attention base model (skipped with a given model)"),
  supernetSteps: int(300, "steps of supernet training, one random path per step, MLPs frozen"),
  lr: num(3e-3, "peak learning rate of pretraining"),
  supernetLr: num(3e-3, "peak learning rate of supernet training"),
  warmup: int(20, "learning-rate warmup steps of each phase"),
} as const;

/** Values the warmup reads. */
export interface WarmupOptions {
  readonly pretrainSteps: number;
  readonly supernetSteps: number;
  readonly lr: number;
  readonly supernetLr: number;
  readonly warmup: number;
  readonly layers: number;
  readonly width: number;
  readonly heads: number;
  readonly kvHeads: number | null;
  readonly ffnHidden: number | null;
}

const RESUME_HINT = " (sample from it with generate; only train runs resume)";

/**
 * Phase 1: pretrains a full-attention base model (or takes `base`), then trains a once-for-all
 * supernet over `space` initialized from it: attention weights inherited, the other mixers fresh.
 */
export async function warmup(
  ctx: Ctx,
  o: WarmupOptions & SearchOptions,
  base: Saved | null,
): Promise<{ supernet: Supernet; baseConfig: ModelConfig; space: ReturnType<typeof makeSpace> }> {
  let config: ModelConfig, params: ModelParams;
  if (base === null) {
    config = configFrom(o, Array.from({ length: o.layers }, () => block("mha")));
    const fresh = initModel(keyFor(ctx.seed, "init"), config);
    say(ctx.out, `  base model: ${o.layers} x mha, width ${config.width}, ${paramCount(fresh)} parameters`);
    const r = await trainModel(ctx, {
      label: "pretrain",
      stream: "pretrain",
      config,
      params: fresh,
      opt: null,
      start: 0,
      total: o.pretrainSteps,
      lr: o.lr,
      warmup: o.warmup,
      decaySteps: o.pretrainSteps,
    });
    params = r.params;
    const step = r.step;
    await stopIfInterrupted(
      ctx,
      "pretraining",
      () => ({ config, params, step, data: ctx.data.meta, opt: null }),
      RESUME_HINT,
    );
  } else {
    ({ config, params } = base);
    say(ctx.out, `  base model: ${config.blocks.map(blockLabel).join(", ")}, ${paramCount(params)} parameters`);
  }
  say(ctx.out, `  base model: ${describeEval(await evaluate(ctx, params, config))}`);
  const space = makeSpace(o);
  const layerSpace = config.blocks.map(() => space.candidates);
  say(ctx.out, `  supernet: ${space.candidates.map(blockLabel).join(" | ")} in each of ${config.blocks.length} layers`);
  const sn0 = initSupernet(keyFor(ctx.seed, "supernet"), config, layerSpace, { from: params });
  const w = await warmSupernet(ctx, sn0, {
    steps: o.supernetSteps,
    lr: o.supernetLr,
    warmup: o.warmup,
    decaySteps: o.supernetSteps,
  });
  await stopIfInterrupted(ctx, "supernet training", () => {
    // The base layout through the supernet is a plain model (mha shares the attention weights).
    const sub = extractSubnet(w.supernet, config.blocks.map((b) => (b.attn === "mha" ? space.candidates[0] : b)));
    return { ...sub, step: w.step, data: ctx.data.meta, opt: null };
  }, RESUME_HINT);
  return { supernet: w.supernet, baseConfig: config, space };
}

/** Phase 2: PostNAS over the supernet; prints each layer's candidates and writes search.json. */
export async function search(
  ctx: Ctx,
  sn: Supernet,
  space: ReturnType<typeof makeSpace>,
  o: SearchOptions,
): Promise<{ choice: readonly BlockSpec[]; record: SearchRecord }> {
  const how = space.strategy === "beam" ? `beam search (width ${o.beamWidth})` : "greedy search";
  say(
    ctx.out,
    `  ${how} over ${space.name} space, at most ${o.maxMha} mha layer(s); score = ` +
      (space.accuracyWeight > 0 ? `held-out loss - ${space.accuracyWeight} * recall accuracy` : "held-out loss"),
  );
  say(
    ctx.out,
    `  per layer, each candidate's best score with the layers before it decided and the rest at ` +
      `${blockLabel(space.baseline)}:`,
  );
  const { choice, record } = await runSearch(ctx, sn, space, o);
  if (space.strategy === "beam") {
    say(
      ctx.out,
      "  (beam search keeps several configurations per layer, so a layer's choice is the one in the best " +
        "final configuration, not always its best-scoring cell)",
    );
  }
  await writeJson(ctx.dir, FILES.search, record);
  say(ctx.out, `  choice: ${paint(ctx.out, "bold", record.choice.join(", "))} (score ${record.score.toFixed(3)})`);
  return { choice, record };
}
