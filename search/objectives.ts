// Objectives for PostNAS: held-out loss and perplexity, retrieval accuracy, and cost terms.

import { randint, randomKey, readAll, realize, type Tensor, treeDispose, treeLeaves } from "../core/mod.ts";
import * as ops from "../ops/mod.ts";
import { type BlockSpec, decodeStep, forward, type ModelConfig, type ModelParams, prefill } from "../nn/mod.ts";
import { type AnswerSet, evaluateAnswers } from "./answers.ts";
import { totalStateBytes } from "./budget.ts";
import type { ToyBatch } from "./data.ts";
import { stableKey } from "./postnas.ts";
import { extractSubnet, type Supernet } from "./supernet.ts";

/** Held-out quality of a model. */
export interface Evaluation {
  /** Mean next-token cross entropy (nats). */
  readonly loss: number;
  /** `exp(loss)`. */
  readonly perplexity: number;
  /** Fraction of recall answers predicted exactly (NaN when the batches have no answers). */
  readonly accuracy: number;
}

/**
 * Loss, perplexity and retrieval accuracy over batches, read back in one realization.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { block, evaluateModel, initModel, modelConfig, randomKey, textBatch, toyBatch } from "../mod.ts";
 * const cfg = modelConfig({ vocab: 256, width: 32, heads: 4, blocks: [block("mha")] });
 * const params = initModel(randomKey(0), cfg);
 * const ev = await evaluateModel(params, cfg, [toyBatch(randomKey(1), { batch: 2, seqLen: 48 })]);
 * assert.ok(Math.abs(ev.loss - Math.log(256)) < 1); // an untrained model is near uniform over bytes
 * assert.ok(Math.abs(ev.perplexity - Math.exp(ev.loss)) < 1e-9);
 * assert.ok(ev.accuracy >= 0 && ev.accuracy <= 1);
 * // Plain text has no recall answers to score.
 * const text = textBatch(new TextEncoder().encode("no answers here. ".repeat(8)), { key: randomKey(2), batch: 1, seqLen: 32 });
 * assert.ok(Number.isNaN((await evaluateModel(params, cfg, [text])).accuracy));
 * ```
 */
export async function evaluateModel(
  params: ModelParams,
  cfg: ModelConfig,
  batches: readonly ToyBatch[],
): Promise<Evaluation> {
  if (batches.length === 0) throw new Error("evaluateModel: needs at least one batch");
  const sums: Tensor[] = [];
  let tokens = 0;
  for (const b of batches) {
    const logits = forward(params, b.inputs, cfg);
    const hit = ops.argmax(logits).eq(b.targets).cast("f32");
    sums.push(ops.crossEntropy(logits, b.targets, { reduction: "sum" }), hit.mul(b.answers).sum(), b.answers.sum());
    tokens += b.inputs.size;
  }
  const vals = (await readAll(sums)).map((v) => v[0]);
  let loss = 0, correct = 0, answers = 0;
  for (let i = 0; i < vals.length; i += 3) {
    [loss, correct, answers] = [loss + vals[i], correct + vals[i + 1], answers + vals[i + 2]];
  }
  const mean = loss / tokens;
  return { loss: mean, perplexity: Math.exp(mean), accuracy: answers > 0 ? correct / answers : NaN };
}

/** Weights of the terms `pathObjective` adds up (lower is better). */
export interface ObjectiveWeights {
  /** Weight of the held-out loss (default 1). */
  readonly loss?: number;
  /** Weight subtracted per unit of retrieval accuracy (default 0). */
  readonly accuracy?: number;
  /** Weight per MiB of decoding state at `context` tokens (default: no state term). */
  readonly stateMiB?: { readonly weight: number; readonly context: number };
  /** Weight per millisecond of measured decoding time per token after `context` tokens (default: none). */
  readonly latencyMs?: { readonly weight: number; readonly context: number };
}

/** An objective over configurations, with every evaluation kept for reports. */
export interface PathObjective {
  (config: readonly BlockSpec[]): Promise<number>;
  /** The metrics of a configuration scored so far (equal specs match whatever their key order), else undefined. */
  evaluation(config: readonly BlockSpec[]): Evaluation | undefined;
  /** Metrics of each configuration scored so far, keyed by a canonical string of the configuration. */
  readonly metrics: ReadonlyMap<string, Evaluation>;
}

/**
 * The objective of a supernet path on held-out batches (loss and recall accuracy as `evaluateModel` gives them) or
 * on an evaluation set of prompts and answers (answer-token loss and exact match, as `evaluateAnswers` gives them):
 * `loss * w.loss - accuracy * w.accuracy + stateMiB * w.stateMiB.weight`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { block, initSupernet, modelConfig, pathObjective, randomKey, toyBatch } from "../mod.ts";
 * const cfg = modelConfig({ vocab: 256, width: 32, heads: 4, blocks: [block("mha")] });
 * const sn = initSupernet(randomKey(0), cfg, [[block("mha"), block("jet")]]);
 * const score = pathObjective(sn, [toyBatch(randomKey(1), { batch: 2, seqLen: 48 })], { accuracy: 1 });
 * const s = await score([block("jet")]);
 * const ev = score.evaluation([block("jet")])!;
 * assert.ok(Math.abs(s - (ev.loss - ev.accuracy)) < 1e-9); // loss x 1 - accuracy x 1
 * assert.equal(score.evaluation([block("mha")]), undefined); // not scored yet
 * ```
 */
export function pathObjective(
  sn: Supernet,
  heldOut: readonly ToyBatch[] | AnswerSet,
  weights: ObjectiveWeights = {},
): PathObjective {
  const metrics = new Map<string, Evaluation>();
  const f = async (config: readonly BlockSpec[]) => {
    const { config: cfg, params } = extractSubnet(sn, config);
    const ev = "answers" in heldOut
      ? await evaluateAnswers(params, cfg, heldOut)
      : await evaluateModel(params, cfg, heldOut);
    metrics.set(stableKey(config), ev);
    const acc = Number.isNaN(ev.accuracy) ? 0 : ev.accuracy;
    let s = (weights.loss ?? 1) * ev.loss - (weights.accuracy ?? 0) * acc;
    if (weights.stateMiB) {
      s += weights.stateMiB.weight * totalStateBytes(config, { cfg, context: weights.stateMiB.context }) / 2 ** 20;
    }
    if (weights.latencyMs) s += weights.latencyMs.weight * await decodeLatency(params, cfg, weights.latencyMs);
    return s;
  };
  return Object.assign(f, { metrics, evaluation: (config: readonly BlockSpec[]) => metrics.get(stableKey(config)) });
}

/**
 * Number of parameters in a pytree.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { paramCount, zeros } from "../mod.ts";
 * assert.equal(paramCount({ w: zeros([3, 4]), b: zeros([4]), frozen: null }), 16);
 * ```
 */
export function paramCount(tree: unknown): number {
  return treeLeaves(tree).reduce((n, t) => n + t.size, 0);
}

/**
 * Measured milliseconds per generated token (batch 1) after a prompt of `context` tokens: the
 * prompt is prefilled once, then `tokens` decode steps are timed, each realized on the device and
 * the last one read back. A wall-clock measurement: it varies with the machine and its load.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { block, decodeLatency, initModel, modelConfig, randomKey } from "../mod.ts";
 * const cfg = modelConfig({ vocab: 256, width: 32, heads: 4, blocks: [block("jet"), block("mha")] });
 * const ms = await decodeLatency(initModel(randomKey(0), cfg), cfg, { context: 16, tokens: 2 });
 * assert.ok(Number.isFinite(ms) && ms > 0);
 * ```
 */
export async function decodeLatency(
  params: ModelParams,
  cfg: ModelConfig,
  opts: { readonly context: number; readonly tokens?: number },
): Promise<number> {
  const { context, tokens = 8 } = opts;
  if (!Number.isInteger(context) || context < 1) {
    throw new Error(`decodeLatency: context must be a positive integer, got ${context}`);
  }
  if (!Number.isInteger(tokens) || tokens < 1) {
    throw new Error(`decodeLatency: tokens must be a positive integer, got ${tokens}`);
  }
  const prompt = randint(randomKey(context), [1, context], { maxval: cfg.vocab });
  let [logits, state] = prefill(params, prompt, cfg);
  const step = async () => {
    const token = ops.argmax(logits).reshape([1, 1]);
    const [l, s] = decodeStep(params, token, state, cfg);
    await realize([l, ...treeLeaves(s.layers)]);
    const kept = new Set(treeLeaves(s.layers));
    treeDispose([logits, token, ...treeLeaves(state.layers).filter((t) => !kept.has(t))]);
    [logits, state] = [l, s];
  };
  await step(); // prefill and compile outside the timing
  await logits.data();
  const t0 = performance.now();
  for (let i = 0; i < tokens; i++) await step();
  await logits.data();
  const ms = (performance.now() - t0) / tokens;
  treeDispose([logits, prompt, ...treeLeaves(state.layers)]);
  return ms;
}
