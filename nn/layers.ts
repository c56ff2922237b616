// Building blocks shared by the mixers: dense init, RoPE, causal depthwise conv, FFNs.

import { type Key, normal, splitKey, type Tensor, zeros } from "../core/mod.ts";
import * as ops from "../ops/mod.ts";
import type { FfnKind, ModelConfig } from "./spec.ts";

/**
 * A `[fanIn, fanOut]` weight drawn from N(0, (scale / sqrt(fanIn))^2).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { dense, randomKey } from "../mod.ts";
 * const w = dense(randomKey(0), 64, 256);
 * assert.deepEqual(w.shape, [64, 256]);
 * // The spread is 1 / sqrt(fanIn), so a layer keeps the scale of its input.
 * const std = Math.sqrt(await w.square().mean().item());
 * assert.ok(Math.abs(std - 1 / 8) < 0.005);
 * ```
 */
export function dense(key: Key, fanIn: number, fanOut: number, opts: { readonly scale?: number } = {}): Tensor {
  return initNormal(key, [fanIn, fanOut], (opts.scale ?? 1) / Math.sqrt(fanIn));
}

// While a template is built (`shapesOnly`), initializers give lazy zeros of their shape: random draws are computed
// on the host at once, which for a real model's template would cost minutes and its size in memory, for nothing.
let templates = 0;

/** Normal initial values of `shape` with spread `std`; zeros (nothing drawn) inside `shapesOnly`. */
export function initNormal(key: Key, shape: readonly number[], std: number): Tensor {
  return templates > 0 ? zeros(shape) : normal(key, shape, { std });
}

/** Runs `fn` (an initializer, synchronously) with every `initNormal` giving zeros: a template of its shapes. */
export function shapesOnly<T>(fn: () => T): T {
  templates++;
  try {
    return fn();
  } finally {
    templates--;
  }
}

/**
 * Rotary position embedding of `x` `[..., T, d]` (d even) at positions `offset .. offset+T-1`,
 * rotating the pairs (i, i + d/2) by angle `pos * theta^(-2i/d)`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { rope, tensor } from "../mod.ts";
 * // With d = 2 the one pair turns by `pos` radians: position 0 stays, position 1 turns by one radian.
 * const y = await rope(tensor([[1, 0], [1, 0]]), { theta: 10000 }).data();
 * const want = [1, 0, Math.cos(1), Math.sin(1)];
 * assert.ok(want.every((w, i) => Math.abs(y[i] - w) < 1e-5));
 * // An offset continues the positions, as decoding one token at a time needs.
 * const [c, s] = await rope(tensor([[1, 0]]), { theta: 10000, offset: 1 }).data();
 * assert.ok(Math.abs(c - Math.cos(1)) < 1e-5 && Math.abs(s - Math.sin(1)) < 1e-5);
 * ```
 */
export function rope(
  x: Tensor,
  opts: { readonly theta: number; readonly offset?: number; readonly scale?: number },
): Tensor {
  const T = x.shape[x.ndim - 2], d = x.shape[x.ndim - 1], half = d / 2;
  if (!Number.isInteger(half) || d === 0) throw new Error(`rope: the last axis must be even, got shape [${x.shape}]`);
  const inv = ops.arange(0, half).mul(-2 * Math.log(opts.theta) / d).exp();
  const at = ops.arange(0, T).add(opts.offset ?? 0);
  // Linear scaling divides the positions (left out when absent, so unscaled models compute what they did).
  const pos = opts.scale === undefined ? at : at.div(opts.scale);
  const angle = pos.reshape([T, 1]).mul(inv.reshape([1, half]));
  const [cos, sin] = [angle.cos(), angle.sin()];
  const x1 = x.slice(x.shape.map(() => 0), [...x.shape.slice(0, -1), half]);
  const x2 = x.slice([...x.shape.slice(0, -1).map(() => 0), half]);
  return ops.concat([x1.mul(cos).sub(x2.mul(sin)), x1.mul(sin).add(x2.mul(cos))], { axis: -1 });
}

/**
 * Causal depthwise convolution over time: `y[b, t, c] = sum_j w[c, j] * x[b, t - K + 1 + j, c]`
 * for `x` `[B, T, C]` and `w` `[C, K]`, with zeros before the start. `past` (`[B, K-1, C]`)
 * replaces those zeros when continuing a sequence.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { causalConv, tensor } from "../mod.ts";
 * const x = tensor([1, 2, 3, 4, 5, 6]).reshape([1, 6, 1]); // B 1, T 6, C 1
 * const oldest = tensor([[1, 0, 0]]); // all weight on the first of 3 taps: a delay of 2 steps
 * assert.deepEqual(Array.from(await causalConv(x, oldest).data()), [0, 0, 1, 2, 3, 4]);
 * // `past` supplies the inputs before the segment in place of the zeros.
 * const past = tensor([7, 8]).reshape([1, 2, 1]);
 * assert.deepEqual(Array.from(await causalConv(x, oldest, { past }).data()), [7, 8, 1, 2, 3, 4]);
 * ```
 */
export function causalConv(x: Tensor, w: Tensor, opts: { readonly past?: Tensor } = {}): Tensor {
  const [B, T, C] = x.shape, K = w.shape[1];
  if (x.ndim !== 3 || w.ndim !== 2 || w.shape[0] !== C) {
    throw new Error(`causalConv: expected x [B, T, C] and w [C, K], got [${x.shape}] and [${w.shape}]`);
  }
  const xp = opts.past ? ops.concat([opts.past, x], { axis: 1 }) : x.pad([[0, 0], [K - 1, 0], [0, 0]]);
  let y: Tensor | null = null;
  for (let j = 0; j < K; j++) {
    const term = xp.slice([0, j, 0], [B, j + T, C]).mul(w.slice([0, j], [C, j + 1]).reshape([C]));
    y = y === null ? term : y.add(term);
  }
  return y!;
}

/** Params of a feed-forward block: gate, up and down projections. */
export interface FfnParams {
  /** Gate projection `[width, hidden]`. */
  readonly w1: Tensor;
  /** Up projection `[width, hidden]`. */
  readonly w3: Tensor;
  /** Down projection `[hidden, width]`. */
  readonly w2: Tensor;
}

/**
 * Initializes an FFN of the config's sizes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { block, initFfn, modelConfig, randomKey } from "../mod.ts";
 * const cfg = modelConfig({ vocab: 16, width: 8, heads: 2, ffnHidden: 12, blocks: [block("mha")] });
 * const p = initFfn(randomKey(0), cfg);
 * assert.deepEqual([p.w1.shape, p.w3.shape, p.w2.shape], [[8, 12], [8, 12], [12, 8]]);
 * ```
 */
export function initFfn(key: Key, cfg: ModelConfig): FfnParams {
  const [k1, k2, k3] = splitKey(key, 3);
  const depthScale = 1 / Math.sqrt(2 * cfg.blocks.length);
  return {
    w1: dense(k1, cfg.width, cfg.ffnHidden),
    w3: dense(k2, cfg.width, cfg.ffnHidden),
    w2: dense(k3, cfg.ffnHidden, cfg.width, { scale: depthScale }),
  };
}

/**
 * Applies an FFN: `swiglu` is `(silu(x w1) * x w3) w2`; `gated` uses GELU for the gate.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { applyFfn, block, initFfn, modelConfig, normal, randomKey, tensor } from "../mod.ts";
 * // Width 1, hidden 1: swiglu of x = 1 is silu(1 * 1) * (1 * 2) * 3 = 6 / (1 + e^-1).
 * const p = { w1: tensor([[1]]), w3: tensor([[2]]), w2: tensor([[3]]) };
 * const [y] = await applyFfn(p, tensor([[[1]]]), "swiglu").data();
 * assert.ok(Math.abs(y - 6 / (1 + Math.exp(-1))) < 1e-5);
 * const cfg = modelConfig({ vocab: 16, width: 8, heads: 2, blocks: [block("mha")] });
 * const x = normal(randomKey(1), [2, 3, 8]);
 * assert.deepEqual(applyFfn(initFfn(randomKey(0), cfg), x, "gated").shape, [2, 3, 8]);
 * ```
 */
export function applyFfn(p: FfnParams, x: Tensor, kind: FfnKind): Tensor {
  const gate = x.matmul(p.w1);
  const act = kind === "swiglu" ? ops.silu(gate) : ops.gelu(gate);
  return act.mul(x.matmul(p.w3)).matmul(p.w2);
}
