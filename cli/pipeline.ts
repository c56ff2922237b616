// The Jet-Nemotron pipeline of demo and search: a full-attention base, the supernet warmup, PostNAS.

import {
  block,
  type BlockSpec,
  type Distillation,
  type DistillWeights,
  type Evaluation,
  extractSubnet,
  initModel,
  initSupernet,
  type ModelConfig,
  modelConfig,
  type ModelParams,
  paramCount,
  type Supernet,
} from "../mod.ts";
import { choice, InputError, int, num } from "./args.ts";
import type { DataOptions } from "./data.ts";
import { checkMemory, evalBytes, trainBytes } from "./limits.ts";
import type { Saved } from "./checkpoint.ts";
import { FILES } from "./rundir.ts";
import {
  blockLabel,
  configFrom,
  DISTILL,
  distillLabel,
  parseDistill,
  plainTraining,
  refuseIgnored,
  stepCount,
} from "./options.ts";
import {
  type Ctx,
  describeAnswers,
  describeEval,
  evaluate,
  evaluateEvalSet,
  keyFor,
  trainModel,
  warmSupernet,
} from "./phases.ts";
import { type MakeScorer, runSearch, type SearchRecord } from "./postnas.ts";
import { budgetText, fitSpace, makeSpace, objectiveOf, type SearchOptions, type Space } from "./space.ts";
import { Interrupted } from "./interrupt.ts";
import { paint, say } from "./progress.ts";
import { stopIfInterrupted } from "./session.ts";

/** Options of the warmup: the base model's pretraining and the supernet's training. */
export const WARMUP = {
  pretrainSteps: stepCount(600, "steps of pretraining the full-attention base model (skipped with a given model)"),
  supernetSteps: stepCount(300, "steps of supernet training, one random path per step, MLPs frozen"),
  lr: num(3e-3, "peak learning rate of pretraining"),
  supernetLr: num(3e-3, "peak learning rate of supernet training"),
  warmup: int(20, "learning-rate warmup steps of each phase"),
  base: choice(
    ["mha", "mha+conv"],
    "mha+conv",
    "block of every layer of the pretrained base model; +conv puts a short causal conv before attention,\n" +
      "with which a small model learns recall in hundreds of steps, not thousands (the candidates keep it)",
  ),
  ...DISTILL,
} as const;

/** Values the warmup reads. */
export interface WarmupOptions extends DataOptions {
  readonly pretrainSteps: number;
  readonly supernetSteps: number;
  readonly lr: number;
  readonly supernetLr: number;
  readonly warmup: number;
  /** The pretrained base model's block (`--base`); null reads as the default, mha+conv. */
  readonly base: "mha" | "mha+conv" | null;
  readonly layers: number;
  readonly width: number;
  readonly heads: number;
  readonly kvHeads: number | null;
  readonly ffnHidden: number | null;
  /** The supernet's loss (`--distill`): against the base model as a frozen teacher, or the data's next tokens. */
  readonly distill: string | null;
}

/** The checked plan of demo's and search's first two phases. */
export interface PipelinePlan {
  /** The given model, or null to pretrain one. */
  readonly base: Saved | null;
  /** The base model's config: the given model's, or `layers` x mha of the size options. */
  readonly baseConfig: ModelConfig;
  readonly space: Space;
  /** What the supernet learns from (`--distill`, parsed). */
  readonly distill: DistillWeights;
}

// Options that only shape the pretrained base model: a given model makes them meaningless.
const BASE_ONLY = ["base", "width", "heads", "kvHeads", "ffnHidden", "layers", "pretrainSteps", "lr"] as const;

/**
 * Checks the warmup and search options before any work: nothing given may go unused (model sizes
 * with a given model, swa's window or the accuracy weight in the seed space, the beam width of a
 * greedy search), the base model and every candidate must make a valid model, and the phases must
 * fit in memory.
 */
export function planPipeline(
  o: WarmupOptions & SearchOptions,
  given: ReadonlySet<string>,
  base: Saved | null,
): PipelinePlan {
  if (base !== null) {
    refuseIgnored(
      given,
      BASE_ONLY,
      "with --checkpoint, --run or --model: the given model is not pretrained and fixes the sizes",
    );
  }
  if (o.space === "seed") {
    refuseIgnored(given, ["window", "maxSwa"], "with --space seed: it has no swa candidate");
    refuseIgnored(given, ["accuracyWeight"], "with --space seed: it scores by held-out loss only");
  }
  const conv = (o.base ?? "mha+conv") === "mha+conv";
  const space = base === null ? makeSpace(o, { conv }) : fitSpace(makeSpace(o), base.config);
  if (space.strategy === "greedy") refuseIgnored(given, ["beamWidth"], "with a greedy search (a beam of one)");
  const distill = parseDistill(o.distill ?? "ce");
  const baseConfig = base?.config ?? configFrom(o, Array.from({ length: o.layers }, () => block("mha", { conv })));
  try {
    modelConfig({ ...baseConfig, blocks: space.candidates });
  } catch (e) {
    throw new InputError(`invalid search space: ${(e as Error).message.replace(/^modelConfig: /, "")}`);
  }
  const mixers = new Set(space.candidates.map((c) => (c.attn === "swa" ? "mha" : c.attn))).size;
  const sizes = "--batch, --seq-len or the model's sizes";
  if (base === null) {
    checkMemory(
      `pretraining (--batch ${o.batch} x --seq-len ${o.seqLen})`,
      trainBytes(baseConfig, o),
      sizes,
    );
  }
  checkMemory(
    `supernet training (--batch ${o.batch} x --seq-len ${o.seqLen}, ${mixers} mixers per layer)`,
    trainBytes(baseConfig, { ...o, mixers }),
    sizes,
  );
  checkMemory(
    `scoring configurations (--eval-batch ${o.evalBatch} x --seq-len ${o.seqLen})`,
    evalBytes(baseConfig, { batch: o.evalBatch, seqLen: o.seqLen, mixers }),
    "--eval-batch, --seq-len or the model's sizes",
  );
  return { base, baseConfig, space, distill };
}

/** A warmed-up supernet and what it was built from. */
export interface Warm {
  readonly supernet: Supernet;
  readonly baseConfig: ModelConfig;
  readonly baseParams: ModelParams;
  readonly space: Space;
  /** The frozen teacher and weights the supernet was distilled with; null for plain next-token training. */
  readonly distill: Distillation | null;
  /** The base model's held-out scores, taken before supernet training (which may reuse its tensors). */
  readonly baseEval: Evaluation;
}

const RESUME_HINT = " (sample from it with generate; only train runs resume)";

// The base model's layout read through the supernet (its attention weights as the supernet trained
// them); the base model as it was where the supernet holds no such layout.
function baseLayout(
  w: Pick<Warm, "supernet" | "baseConfig" | "baseParams">,
): { config: ModelConfig; params: ModelParams } {
  try {
    return extractSubnet(w.supernet, w.baseConfig.blocks);
  } catch {
    return { config: w.baseConfig, params: w.baseParams };
  }
}

/**
 * Phase 1: pretrains a full-attention base model (or takes the given one), then trains a once-for-all
 * supernet over the plan's space initialized from it: attention weights inherited, the other mixers
 * fresh. A signal saves the model so far and throws Interrupted.
 */
export async function warmup(ctx: Ctx, o: WarmupOptions & SearchOptions, plan: PipelinePlan): Promise<Warm> {
  const config = plan.baseConfig;
  let params: ModelParams;
  if (plan.base === null) {
    const fresh = initModel(keyFor(ctx.seed, "init"), config);
    const kind = blockLabel(config.blocks[0]);
    say(ctx.out, `  base model: ${o.layers} x ${kind}, width ${config.width}, ${paramCount(fresh)} parameters`);
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
    params = plan.base.params;
    say(ctx.out, `  base model: ${config.blocks.map(blockLabel).join(", ")}, ${paramCount(params)} parameters`);
  }
  const baseEval = await evaluate(ctx, params, config);
  say(ctx.out, `  base model: ${describeEval(baseEval)}`);
  const answers = await evaluateEvalSet(ctx, params, config);
  if (answers !== null) say(ctx.out, `  base model: ${describeAnswers(answers, ctx.evalSet!.answers.length)}`);
  const { space } = plan;
  const layerSpace = config.blocks.map(() => space.candidates);
  say(ctx.out, `  supernet: ${space.candidates.map(blockLabel).join(" | ")} in each of ${config.blocks.length} layers`);
  const sn0 = initSupernet(keyFor(ctx.seed, "supernet"), config, layerSpace, { from: params });
  const distill = plainTraining(plan.distill) ? null : { teacher: { config, params }, weights: plan.distill };
  if (distill !== null) {
    say(ctx.out, `  supernet loss: ${distillLabel(plan.distill)} against the base model (frozen teacher)`);
  }
  const w = await warmSupernet(ctx, sn0, {
    steps: o.supernetSteps,
    lr: o.supernetLr,
    warmup: o.warmup,
    decaySteps: o.supernetSteps,
    ...(distill === null ? {} : { distill }),
  });
  const warm = { supernet: w.supernet, baseConfig: config, baseParams: params, baseEval, space, distill };
  await stopIfInterrupted(ctx, "supernet training", () => ({
    ...baseLayout(warm),
    step: w.step,
    data: ctx.data.meta,
    opt: null,
  }), RESUME_HINT);
  return warm;
}

/**
 * Phase 2: PostNAS over the supernet; prints each layer's candidates and writes search.json. A signal
 * stops it before the next configuration: search.json then holds the trace so far (marked
 * interrupted), the checkpoint the base layout as in an interrupted warmup, and Interrupted is thrown.
 * `makeScorer` scores elsewhere (on workers); by default the configurations are scored here.
 */
export async function search(
  ctx: Ctx,
  warm: Warm,
  o: SearchOptions,
  makeScorer?: MakeScorer,
): Promise<{ choice: readonly BlockSpec[]; record: SearchRecord }> {
  const { space } = warm;
  const how = space.strategy === "beam" ? `beam search (width ${o.beamWidth})` : "greedy search";
  say(
    ctx.out,
    `  ${how} over ${space.name} space, ${budgetText(o)}; score = ` +
      objectiveOf(space, ctx.evalSet !== undefined).replace(" (log perplexity)", ""),
  );
  say(
    ctx.out,
    `  per layer, each candidate's best score with the layers before it decided and the rest at ` +
      `${blockLabel(space.baseline)}:`,
  );
  const outcome = await runSearch(ctx, warm.supernet, space, o, makeScorer);
  if (!outcome.done) {
    const n = outcome.partial.trace.length;
    await ctx.run.writeJson(FILES.search, outcome.partial);
    await ctx.run.saveCheckpoint({ ...baseLayout(warm), step: 0, data: ctx.data.meta, opt: null });
    console.log(
      `interrupted during the search after ${n} configuration${n === 1 ? "" : "s"}; saved ` +
        `${ctx.run.file(FILES.checkpoint)} (the base layout) and the trace so far in ${ctx.run.file(FILES.search)}` +
        RESUME_HINT,
    );
    throw new Interrupted();
  }
  const { choice, record } = outcome;
  if (space.strategy === "beam") {
    say(
      ctx.out,
      "  (beam search keeps several configurations per layer, so a layer's choice is the one in the best " +
        "final configuration, not always its best-scoring cell)",
    );
  }
  await ctx.run.writeJson(FILES.search, record);
  say(ctx.out, `  choice: ${paint(ctx.out, "bold", record.choice.join(", "))} (score ${record.score.toFixed(3)})`);
  return { choice, record };
}
