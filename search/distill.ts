// Teacher-student training for PostNAS: the student (a supernet path) learns the frozen teacher's layer outputs
// (MSE, the paper's choice), its next-token distribution (KL), the data's next tokens (CE), or a weighted mix.

import type { Tensor } from "../core/mod.ts";
import * as ops from "../ops/mod.ts";
import { type Batch, ffnResidual, logitsOf, mixer, mixerInput, type ModelConfig, type ModelParams } from "../nn/mod.ts";

/** The terms of a distillation loss and their weights (a term left out, or weighted 0, is not computed). */
export interface DistillWeights {
  /** Mean squared error between each layer's output (the residual stream after it) and the teacher's. */
  readonly mse?: number;
  /** KL divergence from the teacher's next-token distribution to the student's. */
  readonly kl?: number;
  /** Next-token cross entropy on the data, as plain training. */
  readonly ce?: number;
}

/** A frozen teacher and the weights of the terms: what the supernet trainer and `tune` distill with. */
export interface Distillation {
  /** The teacher: the model the supernet was built from, never updated. */
  readonly teacher: { readonly config: ModelConfig; readonly params: ModelParams };
  /** The terms' weights. */
  readonly weights: DistillWeights;
}

/**
 * The hidden state after each layer (the residual stream, `[B, T, width]`) and the logits of a forward pass;
 * the logits equal `forward`'s.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { block, forward, hiddenStates, initModel, modelConfig, randomKey, tensor } from "../mod.ts";
 * const cfg = modelConfig({ vocab: 16, width: 8, heads: 2, blocks: [block("mha"), block("jet")] });
 * const params = initModel(randomKey(0), cfg);
 * const tokens = tensor([[1, 2, 3]], { dtype: "i32" });
 * const { hidden, logits } = hiddenStates(params, tokens, cfg);
 * assert.deepEqual(hidden.map((h) => h.shape), [[1, 3, 8], [1, 3, 8]]); // one per layer
 * const want = await forward(params, tokens, cfg).data();
 * assert.ok((await logits.data()).every((v, i) => Math.abs(v - want[i]) < 1e-6));
 * ```
 */
export function hiddenStates(
  params: ModelParams,
  tokens: Tensor,
  cfg: ModelConfig,
): { hidden: Tensor[]; logits: Tensor } {
  if (tokens.dtype !== "i32" || tokens.ndim !== 2) {
    throw new Error(`hiddenStates: tokens must be i32 [batch, time], got ${tokens.dtype} [${tokens.shape}]`);
  }
  // The same blocks as nn's forward, with every layer's output kept.
  let h = params.embed.gather(tokens);
  const hidden = cfg.blocks.map((spec, i) => {
    const p = params.blocks[i];
    h = h.add(mixer(cfg, spec).apply(p.mixer, mixerInput(p, h, cfg)));
    h = ffnResidual(p, h, cfg, spec);
    return h;
  });
  return { hidden, logits: logitsOf(params, h, cfg) };
}

/**
 * Mean over layers of the mean squared difference between the student's and the teacher's layer outputs.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { layerMse, tensor } from "../mod.ts";
 * const s = [tensor([1, 2]), tensor([0, 0])], t = [tensor([1, 4]), tensor([3, 0])];
 * // Layer 0: (0 + 4) / 2 = 2; layer 1: (9 + 0) / 2 = 4.5; their mean 3.25.
 * assert.equal(await layerMse(s, t).item(), 3.25);
 * ```
 */
export function layerMse(student: readonly Tensor[], teacher: readonly Tensor[]): Tensor {
  if (student.length !== teacher.length || student.length === 0) {
    throw new Error(`layerMse: the student has ${student.length} layers and the teacher ${teacher.length}`);
  }
  const terms = student.map((s, i) => {
    if (s.shape.join() !== teacher[i].shape.join()) {
      throw new Error(`layerMse: layer ${i}: student [${s.shape}] vs teacher [${teacher[i].shape}]`);
    }
    return s.sub(teacher[i]).square().mean();
  });
  return terms.reduce((a, b) => a.add(b)).div(terms.length);
}

/**
 * Mean over positions of KL(teacher || student) between the next-token distributions of two logits
 * `[..., vocab]`: `sum_v p_t(v) (log p_t(v) - log p_s(v))`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { klDivergence, tensor } from "../mod.ts";
 * const t = tensor([[0, Math.log(3)]]); // p_t = [1/4, 3/4]
 * assert.ok(Math.abs(await klDivergence(t, t).item()) < 1e-6); // equal distributions
 * const s = tensor([[0, 0]]); // p_s = [1/2, 1/2]
 * const want = 0.25 * Math.log(0.5) + 0.75 * Math.log(1.5);
 * assert.ok(Math.abs(await klDivergence(t, s).item() - want) < 1e-6);
 * ```
 */
export function klDivergence(teacherLogits: Tensor, studentLogits: Tensor): Tensor {
  if (teacherLogits.shape.join() !== studentLogits.shape.join()) {
    throw new Error(`klDivergence: teacher [${teacherLogits.shape}] vs student [${studentLogits.shape}]`);
  }
  const logT = ops.logSoftmax(teacherLogits), logS = ops.logSoftmax(studentLogits);
  const positions = teacherLogits.size / teacherLogits.shape[teacherLogits.ndim - 1];
  return logT.exp().mul(logT.sub(logS)).sum().div(positions);
}

/** The terms given a positive weight, checked: weights are finite and non-negative, and at least one is positive. */
function activeTerms(weights: DistillWeights): [keyof DistillWeights, number][] {
  const terms = Object.entries(weights) as [keyof DistillWeights, number][];
  for (const [name, w] of terms) {
    if (!["mse", "kl", "ce"].includes(name)) throw new Error(`distillLoss: unknown term ${JSON.stringify(name)}`);
    if (!(Number.isFinite(w) && w >= 0)) throw new Error(`distillLoss: the ${name} weight must be >= 0, got ${w}`);
  }
  const active = terms.filter(([, w]) => w > 0);
  if (active.length === 0) throw new Error("distillLoss: give at least one of mse, kl, ce a positive weight");
  return active;
}

/**
 * The student's loss on a batch: `w.mse * layerMse + w.kl * klDivergence + w.ce * crossEntropy`, the teacher run
 * on the same inputs as a constant (gradients reach only `params`). MSE needs as many layers as the teacher.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { block, distillLoss, initModel, lossFn, modelConfig, randomKey, toyBatch } from "../mod.ts";
 * const cfg = modelConfig({ vocab: 256, width: 16, heads: 2, blocks: [block("mha")] });
 * const teacher = { config: cfg, params: initModel(randomKey(0), cfg) };
 * const batch = toyBatch(randomKey(1), { batch: 1, seqLen: 32 });
 * // A student equal to its teacher: nothing to learn from it, while the data's cross entropy remains.
 * const same = distillLoss(teacher.params, batch, cfg, { teacher, weights: { mse: 1, kl: 1 } });
 * assert.ok(Math.abs(await same.item()) < 1e-6);
 * const ce = distillLoss(teacher.params, batch, cfg, { teacher, weights: { ce: 0.5 } });
 * assert.ok(Math.abs(await ce.item() - 0.5 * await lossFn(teacher.params, batch, cfg).item()) < 1e-5);
 * ```
 */
export function distillLoss(params: ModelParams, batch: Batch, cfg: ModelConfig, distill: Distillation): Tensor {
  const terms = activeTerms(distill.weights);
  const { teacher } = distill;
  const needTeacher = terms.some(([name]) => name !== "ce");
  if (needTeacher && teacher.config.vocab !== cfg.vocab) {
    throw new Error(`distillLoss: the teacher's vocabulary (${teacher.config.vocab}) differs from ${cfg.vocab}`);
  }
  const student = hiddenStates(params, batch.inputs, cfg);
  const fixed = needTeacher ? hiddenStates(teacher.params, batch.inputs, teacher.config) : null;
  const parts = terms.map(([name, w]) => {
    const term = name === "mse"
      ? layerMse(student.hidden, fixed!.hidden)
      : name === "kl"
      ? klDivergence(fixed!.logits, student.logits)
      : ops.crossEntropy(student.logits, batch.targets);
    return w === 1 ? term : term.mul(w);
  });
  return parts.reduce((a, b) => a.add(b));
}
