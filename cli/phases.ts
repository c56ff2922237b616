// The training phases the commands share: train a model, warm up a supernet, evaluate, sample.

import {
  adamw,
  type AdamWState,
  type AnswerSet,
  type Distillation,
  distillLoss,
  evaluateAnswers,
  evaluateModel,
  type Evaluation,
  foldIn,
  generate,
  type Key,
  lossFn,
  makeTrainStep,
  type ModelConfig,
  type ModelParams,
  randomKey,
  realize,
  type Supernet,
  supernetTrainer,
  type Tensor,
  type ToyBatch,
  type TrainStep,
  treeLeaves,
  valueAndGrad,
  warmupCosine,
} from "../mod.ts";
import { type DataSource, STREAM } from "./data.ts";
import { InputError, readTextFile } from "./input.ts";
import { encodeText } from "./model.ts";
import { type LoopResult, trainLoop } from "./loop.ts";
import type { Out } from "./progress.ts";
import type { RunDir } from "./rundir.ts";

/** What every phase needs: output settings, the run directory, the data, the seed. */
export interface Ctx {
  readonly out: Out;
  readonly run: RunDir;
  readonly data: DataSource;
  readonly seed: number;
  readonly logEvery: number;
  /** `--eval`'s prompts and answers, where given: the search's objective and tune's report. */
  readonly evalSet?: AnswerSet;
}

/** At most this many bytes of --eval JSONL are read. */
const EVAL_LIMIT = 64 * 2 ** 20;

/**
 * Reads `--eval FILE`: JSON lines `{"prompt": "...", "answer": "..."}` (blank lines skipped), encoded as the data is
 * (through a --model's tokenizer, else as UTF-8 bytes). A line that is not such an object is an InputError naming it.
 */
export async function loadEvalSet(
  path: string,
  codec: { readonly tokenizer?: DataSource["tokenizer"]; readonly vocab: number },
): Promise<AnswerSet> {
  const text = await readTextFile(path, "--eval", EVAL_LIMIT);
  const bytes = new TextEncoder();
  const answers = text.split("\n").flatMap((line, i) => {
    if (line.trim() === "") return [];
    const where = `--eval ${path}:${i + 1}`;
    let item: unknown;
    try {
      item = JSON.parse(line);
    } catch (e) {
      throw new InputError(`${where}: not valid JSON (${(e as Error).message})`);
    }
    const rec = item as Record<string, unknown>;
    if (item === null || typeof item !== "object" || Array.isArray(item)) {
      throw new InputError(`${where}: expected an object {"prompt": ..., "answer": ...}`);
    }
    const extra = Object.keys(rec).filter((k) => k !== "prompt" && k !== "answer");
    if (extra.length > 0) throw new InputError(`${where}: unknown field ${JSON.stringify(extra[0])}`);
    const ids = (field: "prompt" | "answer") => {
      const v = rec[field];
      if (typeof v !== "string" || v === "") throw new InputError(`${where}: "${field}" must be a non-empty string`);
      const out = codec.tokenizer === undefined
        ? Array.from(bytes.encode(v))
        : encodeText(codec.tokenizer, v, codec.vocab, `${where} "${field}"`);
      if (out.length === 0) throw new InputError(`${where}: "${field}" encodes to no tokens`);
      return out;
    };
    return [{ prompt: ids("prompt"), answer: ids("answer") }];
  });
  if (answers.length === 0) throw new InputError(`--eval ${path}: no items (one JSON object per line)`);
  return { answers };
}

/** Keys derived from the seed, one per purpose, so changing one use never shifts another. */
export function keyFor(seed: number, purpose: "init" | "supernet" | "paths" | "geometry"): Key {
  return foldIn(randomKey(seed), { init: 1, supernet: 2, paths: 3, geometry: 4 }[purpose]);
}

/** A learning-rate schedule: linear warmup to `lr`, cosine decay to lr/10 at `decaySteps`. */
export interface LrOptions {
  readonly lr: number;
  readonly warmup: number;
  readonly decaySteps: number;
}

function schedule(o: LrOptions) {
  const total = Math.max(o.decaySteps, 1);
  return warmupCosine({ peak: o.lr, warmupSteps: Math.min(o.warmup, total), totalSteps: total });
}

/** The optimizer of every model-training phase (its state shape depends only on the params). */
export function optimizer(o: LrOptions & { readonly freezeMlp?: boolean }) {
  const base = { lr: schedule(o), clipNorm: 1 };
  return adamw(o.freezeMlp ? { ...base, mask: (path: string) => !/(^|\.)ffn\./.test(path) } : base);
}

/** Options of `trainModel`. */
export interface TrainModelOptions extends LrOptions {
  readonly label: string;
  readonly stream: keyof typeof STREAM;
  readonly config: ModelConfig;
  readonly params: ModelParams;
  /** Optimizer state to continue from (resume), or null to start fresh. */
  readonly opt: AdamWState | null;
  /** Steps already taken. */
  readonly start: number;
  /** Step count at the end. */
  readonly total: number;
  /** Learn from a frozen teacher (`distillLoss`) instead of the data's next tokens. */
  readonly distill?: Distillation;
  /** Keep the MLPs as they are (PostNAS distillation freezes them). */
  readonly freezeMlp?: boolean;
  /** Tensors the training must never dispose (shared with models trained after this one). */
  readonly keep?: readonly Tensor[];
  /** The phase name of its metrics (default: the stream's). */
  readonly phase?: string;
}

/** The outcome of a training phase. */
export interface Trained extends LoopResult {
  readonly params: ModelParams;
  readonly opt: AdamWState;
}

type Opt = ReturnType<typeof optimizer>;

// makeTrainStep's step, with the teacher's loss where given, never disposing `kept` tensors (the teacher's, those a
// student taken from a supernet shares with it and with other students).
function keepingStep(
  opt: Opt,
  cfg: ModelConfig,
  distill: Distillation | undefined,
  kept: readonly Tensor[],
): TrainStep<ModelParams, AdamWState, ToyBatch> {
  const vg = valueAndGrad((p: ModelParams, b: ToyBatch) =>
    distill ? distillLoss(p, b, cfg, distill) : lossFn(p, b, cfg)
  );
  const frozen = [...kept, ...(distill ? treeLeaves(distill.teacher.params) : [])];
  return async (state, batch) => {
    const [value, grads] = vg(state.params, batch);
    const { params, state: next } = opt.update(grads, state.opt, state.params);
    const fresh = treeLeaves([params, next]);
    await realize([...fresh, value]);
    const keep = new Set([...fresh, ...frozen]);
    for (const t of treeLeaves([state.params, state.opt])) if (!keep.has(t)) t.dispose();
    return [{ params, opt: next, step: state.step + 1 }, value];
  };
}

/** Trains a plain model with AdamW on the data stream `stream`, batch `i` at step `i`. */
export async function trainModel(ctx: Ctx, o: TrainModelOptions): Promise<Trained> {
  const opt = optimizer(o);
  const cfg = o.config;
  const { distill, keep } = o;
  const step = distill || keep
    ? keepingStep(opt, cfg, distill, keep ?? [])
    : makeTrainStep((p: ModelParams, b: ToyBatch) => lossFn(p, b, cfg), opt);
  let state = { params: o.params, opt: o.opt ?? opt.init(o.params), step: o.start };
  const result = await trainLoop({
    out: ctx.out,
    label: o.label,
    phase: o.phase ?? o.stream,
    metrics: (r) => ctx.run.appendMetric(r),
    start: o.start,
    total: o.total,
    logEvery: ctx.logEvery,
    step: async (i) => {
      const [next, loss] = await step(state, ctx.data.batch(STREAM[o.stream], i));
      state = next;
      return loss;
    },
  });
  return { ...result, params: state.params, opt: state.opt };
}

/**
 * Trains a supernet one random path per step (MLPs frozen), as PostNAS does before searching: on the data's next
 * tokens, or with `distill` against a frozen teacher.
 */
export async function warmSupernet(
  ctx: Ctx,
  sn: Supernet,
  o: LrOptions & { readonly steps: number; readonly distill?: Distillation },
): Promise<LoopResult & { readonly supernet: Supernet }> {
  const base = { lr: schedule(o), clipNorm: 1 };
  const trainer = supernetTrainer(o.distill ? { ...base, distill: o.distill } : base);
  let opt = trainer.init(sn);
  const paths = keyFor(ctx.seed, "paths");
  const result = await trainLoop({
    out: ctx.out,
    label: "supernet",
    phase: "supernet",
    metrics: (r) => ctx.run.appendMetric(r),
    start: 0,
    total: o.steps,
    logEvery: ctx.logEvery,
    step: async (i) => {
      const batch = ctx.data.batch(STREAM.supernet, i);
      const r = await trainer.step(sn, opt, { ...batch, key: foldIn(paths, i) });
      [sn, opt] = [r.supernet, r.opt];
      return r.loss;
    },
  });
  return { ...result, supernet: sn };
}

/** The loss on `--eval`'s answers and their greedy exact-match accuracy. */
export function evaluateEvalSet(ctx: Ctx, params: ModelParams, cfg: ModelConfig): Promise<Evaluation> | null {
  return ctx.evalSet === undefined ? null : evaluateAnswers(params, cfg, ctx.evalSet);
}

/** "answer loss 1.234, exact match 0.500 (12 items)". */
export function describeAnswers(ev: Evaluation, items: number): string {
  return `--eval answer loss ${ev.loss.toFixed(3)}, exact match ${ev.accuracy.toFixed(3)} (${items} items)`;
}

/** Held-out loss, perplexity and recall accuracy of a model. */
export function evaluate(ctx: Ctx, params: ModelParams, cfg: ModelConfig): Promise<Evaluation> {
  return evaluateModel(params, cfg, ctx.data.heldOut());
}

/** "loss 0.823 (perplexity 2.28), recall 0.281" (recall only where the data has queries). */
export function describeEval(ev: Evaluation): string {
  const recall = Number.isNaN(ev.accuracy) ? "" : `, recall accuracy ${ev.accuracy.toFixed(3)}`;
  return `held-out loss ${ev.loss.toFixed(3)} (perplexity ${ev.perplexity.toFixed(2)})${recall}`;
}

/** Greedy continuation of a prompt. */
export async function sample(params: ModelParams, cfg: ModelConfig, prompt: readonly number[], tokens: number) {
  const [ids] = await generate(params, cfg, [...prompt], { maxNewTokens: tokens });
  return ids;
}
