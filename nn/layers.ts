// Building blocks shared by the mixers: dense init, RoPE, causal depthwise conv, FFNs.

import { type Key, normal, splitKey, type Tensor } from "../core/mod.ts";
import * as ops from "../ops/mod.ts";
import type { FfnKind, ModelConfig } from "./spec.ts";

/**
 * A `[fanIn, fanOut]` weight drawn from N(0, (scale / sqrt(fanIn))^2).
 *
 * @example
 * ```ts
 * import { dense, randomKey } from "../mod.ts";
 * const w = dense(randomKey(0), 64, 256);
 * ```
 */
export function dense(key: Key, fanIn: number, fanOut: number, opts: { readonly scale?: number } = {}): Tensor {
  return normal(key, [fanIn, fanOut], { std: (opts.scale ?? 1) / Math.sqrt(fanIn) });
}

/**
 * Rotary position embedding of `x` `[..., T, d]` (d even) at positions `offset .. offset+T-1`,
 * rotating the pairs (i, i + d/2) by angle `pos * theta^(-2i/d)`.
 *
 * @example
 * ```ts
 * import { normal, randomKey, rope } from "../mod.ts";
 * const q = rope(normal(randomKey(0), [1, 2, 5, 8]), { theta: 10000 });
 * ```
 */
export function rope(x: Tensor, opts: { readonly theta: number; readonly offset?: number }): Tensor {
  const T = x.shape[x.ndim - 2], d = x.shape[x.ndim - 1], half = d / 2;
  if (!Number.isInteger(half) || d === 0) throw new Error(`rope: the last axis must be even, got shape [${x.shape}]`);
  const inv = ops.arange(0, half).mul(-2 * Math.log(opts.theta) / d).exp();
  const pos = ops.arange(0, T).add(opts.offset ?? 0);
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
 * import { causalConv, normal, ones, randomKey } from "../mod.ts";
 * const y = causalConv(normal(randomKey(0), [2, 6, 3]), ones([3, 4]));
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
 * import { block, initFfn, modelConfig, randomKey } from "../mod.ts";
 * const p = initFfn(randomKey(0), modelConfig({ vocab: 16, width: 8, heads: 2, blocks: [block("mha")] }));
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
 * import { applyFfn, block, initFfn, modelConfig, normal, randomKey } from "../mod.ts";
 * const cfg = modelConfig({ vocab: 16, width: 8, heads: 2, blocks: [block("mha")] });
 * const y = applyFfn(initFfn(randomKey(0), cfg), normal(randomKey(1), [2, 3, 8]), "swiglu");
 * ```
 */
export function applyFfn(p: FfnParams, x: Tensor, kind: FfnKind): Tensor {
  const gate = x.matmul(p.w1);
  const act = kind === "swiglu" ? ops.silu(gate) : ops.gelu(gate);
  return act.mul(x.matmul(p.w3)).matmul(p.w2);
}
