// Causal linear attention with the elu + 1 feature map: constant-size recurrent state for generation.

import { type Key, splitKey, type Tensor } from "../core/mod.ts";
import * as ops from "../ops/mod.ts";
import { dense } from "./layers.ts";
import type { Mixer } from "./mixer.ts";
import { headDim, type ModelConfig } from "./spec.ts";

/** Linear attention params: query, key, value and output projections. */
export interface LinearAttentionParams {
  /** Query projection `[width, width]`. */
  readonly wq: Tensor;
  /** Key projection `[width, width]`. */
  readonly wk: Tensor;
  /** Value projection `[width, width]`. */
  readonly wv: Tensor;
  /** Output projection `[width, width]`. */
  readonly wo: Tensor;
}

/** The recurrent state after a prefix: `S = sum phi(k) v^T` `[B, H, K, V]` and `z = sum phi(k)` `[B, H, K]`. */
export interface LinearAttentionState {
  /** `sum_s phi(k_s) v_s^T`, `[B, H, K, V]`. */
  readonly S: Tensor;
  /** `sum_s phi(k_s)`, `[B, H, K]`. */
  readonly z: Tensor;
}

// Keeps the normalizer positive-definite away from 0; phi > 0, so it only matters for tiny features.
const EPS = 1e-6;

/** The feature map phi(x) = elu(x) + 1: positive, so the normalizer phi(q)^T z never vanishes. */
function phi(x: Tensor): Tensor {
  return ops.elu(x).add(1);
}

// B batch, T time, H heads, E head size (K = V = E).
function project(p: LinearAttentionParams, x: Tensor, cfg: ModelConfig): [Tensor, Tensor, Tensor] {
  const [B, T] = x.shape, H = cfg.heads, E = headDim(cfg);
  const heads = (t: Tensor) => t.reshape([B, T, H, E]).permute([0, 2, 1, 3]); // [B, H, T, E]
  return [phi(heads(x.matmul(p.wq))), phi(heads(x.matmul(p.wk))), heads(x.matmul(p.wv))];
}

function merge(o: Tensor, p: LinearAttentionParams): Tensor {
  const [B, H, T, E] = o.shape;
  return o.permute([0, 2, 1, 3]).reshape([B, T, H * E]).matmul(p.wo);
}

// The quadratic masked form: A = phi(Q) phi(K)^T kept causal, o = A V / (A 1 + eps). Its row sums are
// phi(q_t)^T z_t and A V is phi(q_t)^T S_t, so it equals the recurrence without a sequential loop.
function quadratic(q: Tensor, k: Tensor, v: Tensor): Tensor {
  const A = ops.tril(q.matmul(k.transpose())); // [B, H, T, T]
  return A.matmul(v).div(A.sum({ axis: -1, keepdims: true }).add(EPS));
}

/**
 * The `linear` mixer for one layer: per head, `o_t = phi(q_t)^T S_t / (phi(q_t)^T z_t + eps)` with
 * `S_t = sum_{s<=t} phi(k_s) v_s^T`, `z_t = sum_{s<=t} phi(k_s)`, phi = elu + 1, no RoPE; then
 * the output projection. `apply`/`prefill` use the quadratic masked form (one matmul pair, like
 * attention); `step` updates `S` and `z` in O(1) per token. It reads only sizes from the config,
 * so it takes no spec.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { block, linearAttention, modelConfig, normal, randomKey, readAll } from "../mod.ts";
 * const cfg = modelConfig({ vocab: 16, width: 8, heads: 2, blocks: [block("linear")] });
 * const m = linearAttention(cfg);
 * const p = m.init(randomKey(0)), x = normal(randomKey(1), [1, 5, 8]);
 * const y = m.apply(p, x);
 * assert.deepEqual(y.shape, [1, 5, 8]);
 * // The recurrence equals the quadratic form: prefill 4 tokens, step the 5th, and get apply's last position.
 * const [, cache] = m.prefill(p, x.slice([0, 0, 0], [1, 4, 8]));
 * const [last] = m.step(p, x.slice([0, 4, 0]), { cache, pos: 4 });
 * const [a, b] = await readAll([last, y.slice([0, 4, 0])]);
 * assert.ok(a.every((v, i) => Math.abs(v - b[i]) < 1e-4));
 * assert.equal(m.stateBytes(4096), m.stateBytes(1)); // the state does not grow with the context
 * ```
 */
export function linearAttention(cfg: ModelConfig): Mixer<LinearAttentionParams, LinearAttentionState> {
  return {
    init(key: Key): LinearAttentionParams {
      const [kq, kk, kv, ko] = splitKey(key, 4);
      const D = cfg.width;
      return {
        wq: dense(kq, D, D),
        wk: dense(kk, D, D),
        wv: dense(kv, D, D),
        wo: dense(ko, D, D, { scale: 1 / Math.sqrt(2 * cfg.blocks.length) }),
      };
    },
    apply(p, x) {
      const [q, k, v] = project(p, x, cfg);
      return merge(quadratic(q, k, v), p);
    },
    prefill(p, x) {
      const [q, k, v] = project(p, x, cfg);
      const state = { S: k.transpose().matmul(v), z: k.sum({ axis: 2 }) };
      return [merge(quadratic(q, k, v), p), state];
    },
    step(p, x, { cache: { S, z } }) {
      const [q, k, v] = project(p, x, cfg); // [B, H, 1, E] each
      const S1 = S.add(k.transpose().mul(v)); // outer product, elementwise so it fuses with the add
      const z1 = z.add(k.squeeze(2));
      const o = q.matmul(S1).div(q.matmul(z1.expandDims(-1)).add(EPS));
      return [merge(o, p), { S: S1, z: z1 }];
    },
    stateBytes() {
      const E = headDim(cfg);
      return cfg.heads * (E * E + E) * 4;
    },
  };
}
