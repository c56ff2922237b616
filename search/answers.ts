// An evaluation set of prompts and answers: the loss on the answer tokens and greedy exact-match accuracy.

import { readAll, type Tensor, tensor, treeDispose } from "../core/mod.ts";
import * as ops from "../ops/mod.ts";
import { forward, type ModelConfig, type ModelParams } from "../nn/mod.ts";
import type { Evaluation } from "./objectives.ts";

/** One item of an evaluation set, as token ids: the model reads `prompt` and should continue with `answer`. */
export interface Answer {
  /** The ids the model reads. */
  readonly prompt: readonly number[];
  /** The ids it should continue with. */
  readonly answer: readonly number[];
}

/** An evaluation set: what `pathObjective` and `evaluateAnswers` score instead of held-out batches. */
export interface AnswerSet {
  /** The items. */
  readonly answers: readonly Answer[];
  /** Items per forward pass (default 16). */
  readonly batch?: number;
}

function checkItems(set: AnswerSet, vocab: number): void {
  if (set.answers.length === 0) throw new Error("evaluateAnswers: the set has no items");
  set.answers.forEach((item, i) => {
    if (item.prompt.length === 0) throw new Error(`evaluateAnswers: item ${i} has an empty prompt`);
    if (item.answer.length === 0) throw new Error(`evaluateAnswers: item ${i} has an empty answer`);
    const bad = [...item.prompt, ...item.answer].find((id) => !(Number.isInteger(id) && id >= 0 && id < vocab));
    if (bad !== undefined) throw new Error(`evaluateAnswers: item ${i} has id ${bad}, outside [0, ${vocab})`);
  });
  const b = set.batch ?? 16;
  if (!(Number.isInteger(b) && b >= 1)) throw new Error(`evaluateAnswers: batch must be a positive integer, got ${b}`);
}

// Items as one right-padded batch: inputs are prompt + answer without its last token, targets shifted by one, and
// `mask` 1 where the target is an answer token. Padding comes after every real token, so causality leaves the real
// positions as they would be alone.
function packed(items: readonly Answer[]) {
  const T = Math.max(...items.map((it) => it.prompt.length + it.answer.length - 1));
  const B = items.length;
  const [inputs, targets, mask] = [new Int32Array(B * T), new Int32Array(B * T), new Float32Array(B * T)];
  items.forEach((it, b) => {
    const seq = [...it.prompt, ...it.answer];
    for (let t = 0; t < seq.length - 1; t++) {
      inputs[b * T + t] = seq[t];
      targets[b * T + t] = seq[t + 1];
      mask[b * T + t] = t + 1 >= it.prompt.length ? 1 : 0;
    }
  });
  return {
    inputs: tensor(inputs, { shape: [B, T], dtype: "i32" }),
    targets: tensor(targets, { shape: [B, T], dtype: "i32" }),
    mask: tensor(mask, { shape: [B, T] }),
  };
}

/**
 * Scores a model on prompts and answers: `loss` is the mean cross entropy over all answer tokens (each predicted
 * after the prompt and the answer before it), `accuracy` the fraction of items whose answer greedy decoding after
 * the prompt reproduces exactly. Greedy decoding reproduces the answer exactly when, teacher-forced, every answer
 * token is the argmax of its position, so one forward pass gives both.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { block, evaluateAnswers, generate, initModel, modelConfig, randomKey } from "../mod.ts";
 * const cfg = modelConfig({ vocab: 16, width: 8, heads: 2, blocks: [block("mha")] });
 * const params = initModel(randomKey(0), cfg);
 * // The model's own greedy continuation is an exact match; the same answer with its last token changed is not.
 * const [own] = await generate(params, cfg, [1, 2, 3], { maxNewTokens: 2 });
 * const answers = [{ prompt: [1, 2, 3], answer: own }, { prompt: [1, 2, 3], answer: [own[0], (own[1] + 1) % 16] }];
 * const ev = await evaluateAnswers(params, cfg, { answers });
 * assert.equal(ev.accuracy, 0.5);
 * assert.ok(ev.loss > 0 && Math.abs(ev.perplexity - Math.exp(ev.loss)) < 1e-9);
 * ```
 */
export async function evaluateAnswers(params: ModelParams, cfg: ModelConfig, set: AnswerSet): Promise<Evaluation> {
  checkItems(set, cfg.vocab);
  const size = set.batch ?? 16;
  let loss = 0, tokens = 0, exact = 0;
  for (let start = 0; start < set.answers.length; start += size) {
    const items = set.answers.slice(start, start + size);
    const { inputs, targets, mask } = packed(items);
    const logits = forward(params, inputs, cfg);
    const nll = ops.crossEntropy(logits, targets, { reduction: "none" }).mul(mask);
    // Per item: answer tokens whose argmax is wrong (0 for an exact match).
    const wrong = ops.argmax(logits).ne(targets).cast("f32").mul(mask).sum({ axis: -1 });
    const parts: Tensor[] = [nll.sum(), wrong];
    const [total, misses] = await readAll(parts);
    loss += total[0];
    exact += Array.from(misses).filter((m) => m === 0).length;
    tokens += items.reduce((n, it) => n + it.answer.length, 0);
    treeDispose([inputs, targets, mask, logits, nll, wrong]);
  }
  const mean = loss / tokens;
  return { loss: mean, perplexity: Math.exp(mean), accuracy: exact / set.answers.length };
}
