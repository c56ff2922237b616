// The JetBlock: gated delta rule linear attention with a dynamic causal convolution on the values.

import { type Key, randomBits, splitKey, type Tensor, tensor, zeros } from "../core/mod.ts";
import * as ops from "../ops/mod.ts";
import { gatedDeltaRule, gatedDeltaRuleAuto } from "./delta_rule.ts";
import { dense } from "./layers.ts";
import type { Mixer } from "./mixer.ts";
import { type BlockSpec, type JetGeometry, jetGeometry, type ModelConfig } from "./spec.ts";

/**
 * The kernel generator of a dynamic convolution: `kernels = silu(x w1) w2 + b2`, one `[channels,
 * width]` kernel per token. `w2` starts at zero, so at init the conv is the static kernel `b2`.
 */
export interface DynamicConvParams {
  /** `[inSize, hidden]`. */
  readonly w1: Tensor;
  /** `[hidden, channels * width]`. */
  readonly w2: Tensor;
  /** `[channels, width]`: the static kernel the conv starts from. */
  readonly b2: Tensor;
}

/** JetBlock params: projections, the dynamic conv's generator, the decay and gate parameters. */
export interface JetParams {
  /** Query projection `[width, heads * K]`. */
  readonly wq: Tensor;
  /** Key projection `[width, heads * K]`. */
  readonly wk: Tensor;
  /** Value projection `[width, heads * V]` (the dynamic conv's input). */
  readonly wv: Tensor;
  /** Per-head write strength: `beta = sigmoid(x wb)`, `[width, heads]`. */
  readonly wb: Tensor;
  /** Per-head decay rate: `g = -exp(aLog) softplus(x wa + dtBias)`, `[width, heads]`. */
  readonly wa: Tensor;
  /** `[heads]`. */
  readonly aLog: Tensor;
  /** `[heads]`. */
  readonly dtBias: Tensor;
  /** The dynamic conv's kernel generator, reading the block input. */
  readonly conv: DynamicConvParams;
  /** RMSNorm weight over a head's value size, shared by the heads. */
  readonly norm: Tensor;
  /** Output gate projection. */
  readonly wg: Tensor;
  /** Output projection `[heads * V, width]`. */
  readonly wo: Tensor;
}

/** What the next token needs: the delta-rule state and the dynamic conv's last inputs. */
export interface JetCache {
  /** The delta-rule state `[B, H, K, V]`. */
  readonly state: Tensor;
  /** The last convWidth-1 inputs of the dynamic conv (zeros before the start) `[B, W-1, H*V]`. */
  readonly conv: Tensor;
}

/**
 * Generator params for a dynamic conv over `channels` with kernels of `width` taps, reading inputs
 * of size `inSize` through `hidden` units. `b2` holds the identity kernel (all weight on the current
 * token) and `w2` is zero, so the conv starts as a static (identity) one and learns to vary.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { initDynamicConv, randomKey } from "../mod.ts";
 * const p = initDynamicConv(randomKey(0), { inSize: 8, channels: 2, width: 3, hidden: 4 });
 * assert.deepEqual([p.w1.shape, p.w2.shape], [[8, 4], [4, 6]]);
 * assert.deepEqual(await p.b2.array(), [[0, 0, 1], [0, 0, 1]]); // each channel passes its current token
 * assert.equal(await p.w2.square().sum().item(), 0);
 * ```
 */
export function initDynamicConv(
  key: Key,
  sizes: { readonly inSize: number; readonly channels: number; readonly width: number; readonly hidden: number },
): DynamicConvParams {
  const { inSize, channels, width, hidden } = sizes;
  const b2 = new Float32Array(channels * width);
  for (let c = 0; c < channels; c++) b2[c * width + width - 1] = 1;
  return {
    w1: dense(key, inSize, hidden),
    w2: zeros([hidden, channels * width]),
    b2: tensor(b2, { shape: [channels, width] }),
  };
}

/**
 * Causal convolution whose kernel changes per token: `y[b, t, c] = sum_j w[b, t, c, j] *
 * x[b, t - W + 1 + j, c]` for `x` `[B, T, C]` and kernels `w` `[B, T, C, W]` made from the
 * generator input `gen` `[B, T, inSize]` (the block input). Zeros precede the start unless `past`
 * (`[B, W-1, C]`, the previous inputs) continues a sequence. With `w2 = 0` this is `causalConv`
 * with the kernel `b2`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { causalConv, dynamicConv, initDynamicConv, normal, randomKey, readAll, tensor } from "../mod.ts";
 * const p = initDynamicConv(randomKey(0), { inSize: 8, channels: 2, width: 3, hidden: 4 });
 * const x = normal(randomKey(1), [2, 5, 2]), gen = normal(randomKey(2), [2, 5, 8]);
 * // With w2 = 0 every token gets the static kernel b2: here a causalConv that delays by one step.
 * const b2 = tensor([[0, 1, 0], [0, 1, 0]]);
 * const [a, b] = await readAll([dynamicConv({ ...p, b2 }, x, gen), causalConv(x, b2)]);
 * assert.ok(a.every((v, i) => Math.abs(v - b[i]) < 1e-6));
 * ```
 */
export function dynamicConv(
  p: DynamicConvParams,
  x: Tensor,
  gen: Tensor,
  opts: { readonly past?: Tensor } = {},
): Tensor {
  // B batch, T time, C channels, W taps.
  const [B, T, C] = x.shape, [C2, W] = p.b2.shape;
  if (x.ndim !== 3 || C !== C2 || gen.ndim !== 3 || gen.shape[0] !== B || gen.shape[1] !== T) {
    throw new Error(
      `dynamicConv: expected x [B, T, ${C2}] and gen [B, T, inSize], got [${x.shape}] and [${gen.shape}]`,
    );
  }
  const w = ops.silu(gen.matmul(p.w1)).matmul(p.w2).add(p.b2.reshape([C * W])).reshape([B, T, C, W]);
  const xp = withPast(x, W, opts.past);
  let y: Tensor | null = null;
  for (let j = 0; j < W; j++) {
    const term = xp.slice([0, j, 0], [B, j + T, C]).mul(w.slice([0, 0, 0, j], [B, T, C, j + 1]).reshape([B, T, C]));
    y = y === null ? term : y.add(term);
  }
  return y!;
}

// The conv input with its W-1 predecessors in front: the cached ones, or zeros at the start.
function withPast(x: Tensor, W: number, past?: Tensor): Tensor {
  return past ? ops.concat([past, x], { axis: 1 }) : x.pad([[0, 0], [W - 1, 0], [0, 0]]);
}

// B batch, T time, H heads, K key size, V value size, W conv taps.
function splitHeads(t: Tensor, heads: number, size: number): Tensor {
  const [B, T] = t.shape;
  return t.reshape([B, T, heads, size]).permute([0, 2, 1, 3]); // [B, H, T, size]
}

interface Projected {
  readonly q: Tensor;
  readonly k: Tensor;
  readonly v: Tensor;
  readonly g: Tensor;
  readonly beta: Tensor;
  /** Inputs of the dynamic conv including the W-1 before this segment: `[B, W-1+T, H*V]`. */
  readonly convIn: Tensor;
}

type Geometry = Required<JetGeometry>;

function project(p: JetParams, x: Tensor, cfg: ModelConfig, geo: Geometry, past?: Tensor): Projected {
  const { heads: H, keyDim: K, valueDim: V } = geo;
  // Unit keys make each update (I - beta k k^T) a contraction for beta in (0, 1), so the state stays
  // bounded however long the sequence; q's 1/sqrt(K) keeps the readout at the scale attention uses.
  const q = ops.l2Normalize(splitHeads(ops.silu(x.matmul(p.wq)), H, K)).mul(1 / Math.sqrt(K));
  const k = ops.l2Normalize(splitHeads(ops.silu(x.matmul(p.wk)), H, K));
  const raw = x.matmul(p.wv); // [B, T, H*V]
  const v = splitHeads(ops.silu(dynamicConv(p.conv, raw, x, { past })), H, V);
  const beta = ops.sigmoid(x.matmul(p.wb)).permute([0, 2, 1]); // [B, H, T]
  const g = ops.softplus(x.matmul(p.wa).add(p.dtBias)).mul(p.aLog.exp().neg()).permute([0, 2, 1]);
  return { q, k, v, g, beta, convIn: withPast(raw, cfg.convWidth, past) };
}

// Gated RMSNorm per head, then the output projection: o [B, H, T, V] -> [B, T, width].
function output(p: JetParams, o: Tensor, x: Tensor, geo: Geometry): Tensor {
  const [B, H, T, V] = o.shape;
  const gate = ops.silu(x.matmul(p.wg)).reshape([B, T, H, V]);
  const y = ops.rmsNorm(o.permute([0, 2, 1, 3]), { weight: p.norm, eps: geo.normEps }).mul(gate);
  return y.reshape([B, T, H * V]).matmul(p.wo);
}

function lastInputs(convIn: Tensor, W: number): Tensor {
  return convIn.slice([0, convIn.shape[1] - (W - 1), 0]);
}

/** Hidden units of the dynamic conv's kernel generator for a config. */
export function generatorHidden(cfg: ModelConfig): number {
  return jetGeometry(cfg).generatorHidden;
}

// Mamba2 / GatedDeltaNet init: A uniform in [1, 16), dt log-uniform in [1e-3, 1e-1) stored through
// the inverse softplus, so early decays span slow to fast. Computed on the host in float64.
function decayInit(key: Key, heads: number): { aLog: Tensor; dtBias: Tensor } {
  const bits = randomBits(key, 2 * heads);
  const unit = (w: number) => (w >>> 8) / 16777216;
  const aLog = new Float32Array(heads), dtBias = new Float32Array(heads);
  for (let h = 0; h < heads; h++) {
    aLog[h] = Math.log(1 + 15 * unit(bits[h]));
    const dt = Math.exp(Math.log(1e-3) + unit(bits[heads + h]) * (Math.log(1e-1) - Math.log(1e-3)));
    dtBias[h] = Math.log(Math.expm1(dt));
  }
  return { aLog: tensor(aLog), dtBias: tensor(dtBias) };
}

/**
 * The `jet` mixer (the paper's JetBlock). Per head, with H heads, key size K and value size V from
 * the spec's geometry (`JetGeometry`; by default K = V = width/heads):
 * `q = l2norm(silu(x Wq)) / sqrt(K)`, `k = l2norm(silu(x Wk))`, `v = silu(dynconv(x Wv))` with
 * kernels generated from x, `beta = sigmoid(x Wb)`, `g = -exp(A_log) softplus(x Wa + dt_bias)`;
 * the gated delta rule gives `o`, and the output is `(rmsnorm(o) * silu(x Wg)) Wo`. `apply` and
 * `prefill` run the fused scan (one kernel forward, one backward) while its state history fits
 * `FUSED_SCAN_LIMIT`, and the chunked form beyond; the fused scan supports first derivatives only,
 * so second derivatives of a jet layer need `gatedDeltaRuleChunked`. `step` runs one step of the
 * recurrence: O(1) per token, whatever the context. It reads sizes from the config and the spec's
 * geometry (the spec may be omitted for the defaults).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { block, jetBlock, modelConfig, normal, randomKey, readAll } from "../mod.ts";
 * const cfg = modelConfig({ vocab: 16, width: 8, heads: 2, blocks: [block("jet")] });
 * const m = jetBlock(cfg);
 * const p = m.init(randomKey(0)), x = normal(randomKey(1), [1, 5, 8]);
 * const y = m.apply(p, x);
 * assert.deepEqual(y.shape, [1, 5, 8]);
 * // One recurrent step from the prefilled state and conv cache gives apply's last position.
 * const [, cache] = m.prefill(p, x.slice([0, 0, 0], [1, 4, 8]));
 * const [last] = m.step(p, x.slice([0, 4, 0]), { cache, pos: 4 });
 * const [a, b] = await readAll([last, y.slice([0, 4, 0])]);
 * assert.ok(a.every((v, i) => Math.abs(v - b[i]) < 1e-4));
 * assert.equal(m.stateBytes(4096), m.stateBytes(1)); // O(1) state per sequence
 * ```
 */
export function jetBlock(cfg: ModelConfig, spec?: BlockSpec): Mixer<JetParams, JetCache> {
  const geo = jetGeometry(cfg, spec), { heads: H, keyDim: K, valueDim: V } = geo;
  return {
    init(key: Key): JetParams {
      const [kq, kk, kv, kb, ka, kd, kc, kg, ko] = splitKey(key, 9);
      const D = cfg.width;
      return {
        wq: dense(kq, D, H * K),
        wk: dense(kk, D, H * K),
        wv: dense(kv, D, H * V),
        wb: dense(kb, D, H),
        wa: dense(ka, D, H),
        ...decayInit(kd, H),
        conv: initDynamicConv(kc, { inSize: D, channels: H * V, width: cfg.convWidth, hidden: geo.generatorHidden }),
        norm: ops.ones([V]),
        wg: dense(kg, D, H * V),
        wo: dense(ko, H * V, D, { scale: 1 / Math.sqrt(2 * cfg.blocks.length) }),
      };
    },
    apply(p, x) {
      const { q, k, v, g, beta } = project(p, x, cfg, geo);
      return output(p, gatedDeltaRuleAuto(q, k, v, g, beta).out, x, geo);
    },
    prefill(p, x) {
      const { q, k, v, g, beta, convIn } = project(p, x, cfg, geo);
      const { out, state } = gatedDeltaRuleAuto(q, k, v, g, beta);
      return [output(p, out, x, geo), { state, conv: lastInputs(convIn, cfg.convWidth) }];
    },
    step(p, x, { cache }) {
      const { q, k, v, g, beta, convIn } = project(p, x, cfg, geo, cache.conv);
      const { out, state } = gatedDeltaRule(q, k, v, g, beta, { initialState: cache.state });
      return [output(p, out, x, geo), { state, conv: lastInputs(convIn, cfg.convWidth) }];
    },
    stateBytes() {
      // The K x V state of every head, and the W-1 last inputs of the dynamic conv over the value width.
      return (H * K * V + (cfg.convWidth - 1) * H * V) * 4;
    },
  };
}
