// Causal multi-head attention with RoPE and grouped-query heads; `swa` limits it to a window.

import { type Key, splitKey, type Tensor, zeros } from "../core/mod.ts";
import * as ops from "../ops/mod.ts";
import { dense, rope } from "./layers.ts";
import type { Mixer, MixerPrefillOptions } from "./mixer.ts";
import { type BlockSpec, type BlockSpecOf, headDim, type ModelConfig } from "./spec.ts";

/** Attention params: query, key, value and output projections (and q/k/v biases with `bias: true`). */
export interface AttentionParams {
  /** Query projection `[width, heads * headDim]`. */
  readonly wq: Tensor;
  /** Key projection `[width, kvHeads * headDim]`. */
  readonly wk: Tensor;
  /** Value projection `[width, kvHeads * headDim]`. */
  readonly wv: Tensor;
  /** Output projection `[heads * headDim, width]`. */
  readonly wo: Tensor;
  /** Query bias `[heads * headDim]` (specs with `bias`). */
  readonly bq?: Tensor;
  /** Key bias `[kvHeads * headDim]` (specs with `bias`). */
  readonly bk?: Tensor;
  /** Value bias `[kvHeads * headDim]` (specs with `bias`). */
  readonly bv?: Tensor;
}

/**
 * Keys and values of the tokens a next query may see: `[B, kvHeads, L, headDim]` each. A cache that `prefill`
 * preallocated holds `L` slots (the capacity for `mha`, the window for `swa`, a ring), the unwritten ones zero.
 */
export interface KvCache {
  /** Rotated keys. */
  readonly k: Tensor;
  /** Values. */
  readonly v: Tensor;
}

// B batch, T queries, S keys, G kv heads (groups), R query heads per group, E head size.
function heads(x: Tensor, n: number, e: number): Tensor {
  const [B, T] = x.shape;
  return x.reshape([B, T, n, e]).permute([0, 2, 1, 3]); // [B, n, T, E]
}

function attend(q: Tensor, k: Tensor, v: Tensor, cfg: ModelConfig, mask: Tensor | null): Tensor {
  const [B, , T, E] = q.shape, G = cfg.kvHeads, R = cfg.heads / G, S = k.shape[2];
  const qg = q.reshape([B, G, R, T, E]);
  const scores = qg.matmul(k.reshape([B, G, 1, S, E]).transpose()).mul(1 / Math.sqrt(E)); // [B, G, R, T, S]
  const p = ops.softmax(mask === null ? scores : mask.where(scores, -Infinity));
  const o = p.matmul(v.reshape([B, G, 1, S, E])); // [B, G, R, T, E]
  return o.reshape([B, cfg.heads, T, E]).permute([0, 2, 1, 3]).reshape([B, T, cfg.heads * E]);
}

/** Which keys each query sees: causal, and within `window` tokens for `swa`. `[T, T]` bool. */
export function attentionMask(T: number, spec: BlockSpec): Tensor {
  const i = ops.arange(0, T, { dtype: "i32" }).reshape([T, 1]), j = ops.arange(0, T, { dtype: "i32" }).reshape([1, T]);
  const causal = j.le(i);
  return spec.attn === "swa" ? causal.where(j.gt(i.sub(spec.window)), false) : causal;
}

function linear(x: Tensor, w: Tensor, b: Tensor | undefined): Tensor {
  return b === undefined ? x.matmul(w) : x.matmul(w).add(b);
}

function project(p: AttentionParams, x: Tensor, cfg: ModelConfig, E: number, offset: number): [Tensor, Tensor, Tensor] {
  const q = rope(heads(linear(x, p.wq, p.bq), cfg.heads, E), { theta: cfg.ropeTheta, offset, scale: cfg.ropeScale });
  const k = rope(heads(linear(x, p.wk, p.bk), cfg.kvHeads, E), { theta: cfg.ropeTheta, offset, scale: cfg.ropeScale });
  return [q, k, heads(linear(x, p.wv, p.bv), cfg.kvHeads, E)];
}

// The cache keeps what later queries can still see: everything for mha, the last window-1 for swa.
function keep(t: Tensor, spec: BlockSpec): Tensor {
  if (spec.attn !== "swa") return t;
  const S = t.shape[2], n = Math.min(S, spec.window - 1);
  return t.slice([0, 0, S - n, 0]);
}

// The slots a preallocated cache has: the capacity, or for swa a ring of its window.
function slots(spec: BlockSpec, capacity: number): number {
  return spec.attn === "swa" ? spec.window : capacity;
}

// The prompt's keys [B, G, T, E] in a preallocated cache of L slots: mha pads them; swa keeps the last window,
// position p in slot p % window (a rotation of the last L once the prompt is longer than the window).
function preallocate(t: Tensor, spec: BlockSpec, capacity: number): Tensor {
  const [B, G, T, E] = t.shape, L = slots(spec, capacity);
  if (spec.attn !== "swa" && T > L) throw new Error(`prefill: the prompt's ${T} tokens exceed the capacity ${L}`);
  if (T <= L) return t.pad([[0, 0], [0, 0], [0, L - T], [0, 0]]);
  const kept = t.slice([0, 0, T - L, 0]), r = T % L;
  if (r === 0) return kept;
  return ops.concat([kept.slice([0, 0, L - r, 0]), kept.slice([0, 0, 0, 0], [B, G, L - r, E])], { axis: 2 });
}

// Writes one token's keys [B, G, 1, E] into slot `slot` of a cache [B, G, L, E]: an elementwise select, so the
// cache keeps its shape (and every step its graph), and the other slots are copied bit for bit.
function writeSlot(cache: Tensor, t: Tensor, slot: number): Tensor {
  const L = cache.shape[2];
  return ops.arange(0, L, { dtype: "i32" }).reshape([1, 1, L, 1]).eq(slot).where(t, cache);
}

/**
 * The `mha` and `swa` mixers for one layer: grouped-query attention with RoPE, causal, and for
 * `swa` limited to the last `window` tokens (whose keys and values are all its cache keeps). With
 * `prefill(p, x, { capacity })` the cache is preallocated: `step` writes a slot instead of concatenating
 * (`mha`: slot `pos` of `capacity`; `swa`: slot `pos % window` of a ring), and attends over every slot
 * with the unwritten ones masked, which gives the same numbers (on the CPU backend the same bits).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { attention, block, modelConfig, normal, randomKey, readAll } from "../mod.ts";
 * const cfg = modelConfig({ vocab: 16, width: 8, heads: 2, kvHeads: 1, blocks: [block("mha")] });
 * const m = attention(cfg, block("mha"));
 * const p = m.init(randomKey(0)), x = normal(randomKey(1), [1, 5, 8]);
 * const y = m.apply(p, x);
 * assert.deepEqual(y.shape, [1, 5, 8]);
 * // Prefilling 4 tokens and stepping the 5th from the KV cache gives apply's last position.
 * const [, cache] = m.prefill(p, x.slice([0, 0, 0], [1, 4, 8]));
 * const [last] = m.step(p, x.slice([0, 4, 0]), { cache, pos: 4 });
 * const [a, b] = await readAll([last, y.slice([0, 4, 0])]);
 * assert.ok(a.every((v, i) => Math.abs(v - b[i]) < 1e-4));
 * // `swa` keeps only the keys a later query can see: window - 1 of them (B 1, 1 KV head, head size 4).
 * const swa = attention(cfg, block("swa", { window: 3 }));
 * assert.deepEqual(swa.prefill(p, x)[1].k.shape, [1, 1, 2, 4]);
 * ```
 */
export function attention(cfg: ModelConfig, spec: BlockSpecOf<"mha" | "swa">): Mixer<AttentionParams, KvCache> {
  const E = headDim(cfg, spec);
  return {
    init(key: Key): AttentionParams {
      const [kq, kk, kv, ko] = splitKey(key, 4);
      const p = {
        wq: dense(kq, cfg.width, cfg.heads * E),
        wk: dense(kk, cfg.width, cfg.kvHeads * E),
        wv: dense(kv, cfg.width, cfg.kvHeads * E),
        wo: dense(ko, cfg.heads * E, cfg.width, { scale: 1 / Math.sqrt(2 * cfg.blocks.length) }),
      };
      if (!spec.bias) return p;
      return { ...p, bq: zeros([cfg.heads * E]), bk: zeros([cfg.kvHeads * E]), bv: zeros([cfg.kvHeads * E]) };
    },
    apply(p, x) {
      const [q, k, v] = project(p, x, cfg, E, 0);
      return attend(q, k, v, cfg, attentionMask(x.shape[1], spec)).matmul(p.wo);
    },
    prefill(p, x, opts: MixerPrefillOptions = {}) {
      const [q, k, v] = project(p, x, cfg, E, 0);
      const out = attend(q, k, v, cfg, attentionMask(x.shape[1], spec)).matmul(p.wo);
      const { capacity } = opts;
      if (capacity === undefined) return [out, { k: keep(k, spec), v: keep(v, spec) }];
      if (!Number.isInteger(capacity) || capacity < x.shape[1]) {
        throw new Error(
          `prefill: capacity must be an integer of at least the prompt's ${x.shape[1]} tokens, got ${capacity}`,
        );
      }
      return [out, { k: preallocate(k, spec, capacity), v: preallocate(v, spec, capacity) }];
    },
    step(p, x, { cache, pos, capacity }) {
      const [q, k, v] = project(p, x, cfg, E, pos);
      if (capacity !== undefined) {
        const L = cache.k.shape[2];
        if (spec.attn !== "swa" && pos >= L) {
          throw new Error(`decodeStep: position ${pos} is past the KV cache's capacity of ${L} tokens`);
        }
        const slot = spec.attn === "swa" ? pos % L : pos;
        const ks = writeSlot(cache.k, k, slot), vs = writeSlot(cache.v, v, slot);
        // Slot s holds a token of the window once it is written: s <= pos (for the ring, all of them from pos L-1).
        const seen = ops.arange(0, L, { dtype: "i32" }).reshape([1, L]).le(pos);
        return [attend(q, ks, vs, cfg, seen).matmul(p.wo), { k: ks, v: vs }];
      }
      const ks = ops.concat([cache.k, k], { axis: 2 }), vs = ops.concat([cache.v, v], { axis: 2 });
      const out = attend(q, ks, vs, cfg, null).matmul(p.wo);
      return [out, { k: keep(ks, spec), v: keep(vs, spec) }];
    },
    stateBytes(context) {
      const kept = spec.attn === "swa" ? Math.min(context, spec.window - 1) : context;
      return 2 * cfg.kvHeads * E * kept * 4;
    },
  };
}
