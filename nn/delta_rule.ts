// The gated delta rule: a sequential reference scan and the chunked (WY / UT-transform) form.

import { apply, type Tensor, zeros } from "../core/mod.ts";
import * as ops from "../ops/mod.ts";

/** Options of the gated delta rule. */
export interface DeltaRuleOptions {
  /** The state `[B, H, K, V]` before the first token; zeros when omitted. */
  readonly initialState?: Tensor;
}

/** Options of the chunked form. */
export interface ChunkedDeltaRuleOptions extends DeltaRuleOptions {
  /** Tokens per chunk; 32 by default. Any positive size works (T need not divide by it). */
  readonly chunkSize?: number;
}

/** Outputs `[B, H, T, V]` and the state `[B, H, K, V]` after the last token. */
export interface DeltaRuleResult {
  /** `o_t = S_t^T q_t` for every token, `[B, H, T, V]`. */
  readonly out: Tensor;
  /** The state after the last token, `[B, H, K, V]`. */
  readonly state: Tensor;
}

/**
 * Default chunk size of `gatedDeltaRuleChunked`. Work inside a chunk grows as C^2 per token and the
 * sequential part as T/C; 32 beat 64 on the CPU reference and on llvmpipe for T from 64 to 256.
 */
export const DELTA_RULE_CHUNK = 32;

// B batch, H heads, T time, K key size, V value size.
function checkInputs(where: string, q: Tensor, k: Tensor, v: Tensor, g: Tensor, beta: Tensor, s0?: Tensor): void {
  const [B, H, T, K] = q.shape, V = v.shape[3];
  const same = (x: Tensor, want: readonly number[]) => x.ndim === want.length && x.shape.every((d, i) => d === want[i]);
  const checks: [boolean, string][] = [
    [q.ndim === 4, `q [${q.shape}] must be [B, H, T, K]`],
    [same(k, [B, H, T, K]), `k [${k.shape}] must match q [${q.shape}]`],
    [v.ndim === 4 && same(v, [B, H, T, V]), `v [${v.shape}] must be [B, H, T, V] = [${B}, ${H}, ${T}, V]`],
    [same(g, [B, H, T]), `g [${g.shape}] must be [B, H, T] = [${B}, ${H}, ${T}]`],
    [same(beta, [B, H, T]), `beta [${beta.shape}] must be [B, H, T] = [${B}, ${H}, ${T}]`],
    [
      s0 === undefined || same(s0, [B, H, K, V]),
      `initialState [${s0?.shape}] must be [B, H, K, V] = [${B}, ${H}, ${K}, ${V}]`,
    ],
  ];
  const failed = checks.find(([ok]) => !ok);
  if (failed) throw new Error(`${where}: ${failed[1]}`);
}

/**
 * The gated delta rule as a sequential scan over time, one head at a time in parallel:
 * `S_t = exp(g_t) S_{t-1}; u_t = beta_t (v_t - S_t^T k_t); S_t += k_t u_t^T; o_t = S_t^T q_t`,
 * for q, k `[B, H, T, K]`, v `[B, H, T, V]`, g, beta `[B, H, T]`. The reference the chunked form
 * is tested against, and the one-token update of generation; each step costs a few dispatches,
 * so long sequences should use `gatedDeltaRuleChunked`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { gatedDeltaRule, tensor, zeros } from "../mod.ts";
 * // One head, two tokens, K = V = 1, no decay (g = 0): the state learns v, at rate beta.
 * const ones = tensor([1, 1]).reshape([1, 1, 2, 1]), v = tensor([2, 3]).reshape([1, 1, 2, 1]);
 * const { out, state } = gatedDeltaRule(ones, ones, v, zeros([1, 1, 2]), tensor([[[1, 0.5]]]));
 * // S_1 = 0 + 1 * (2 - 0) = 2; S_2 = 2 + 0.5 * (3 - 2) = 2.5; o_t = S_t q_t.
 * assert.deepEqual(await out.data(), Float32Array.of(2, 2.5));
 * assert.equal(await state.item(), 2.5);
 * ```
 */
export function gatedDeltaRule(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  g: Tensor,
  beta: Tensor,
  opts: DeltaRuleOptions = {},
): DeltaRuleResult {
  checkInputs("gatedDeltaRule", q, k, v, g, beta, opts.initialState);
  const [B, H, T, K] = q.shape, V = v.shape[3];
  let S = opts.initialState ?? zeros([B, H, K, V]);
  const outs: Tensor[] = [];
  for (let t = 0; t < T; t++) {
    const row = (x: Tensor, d: number) => x.slice([0, 0, t, 0], [B, H, t + 1, d]); // [B, H, 1, d]
    const gate = (x: Tensor) => x.slice([0, 0, t], [B, H, t + 1]).reshape([B, H, 1, 1]);
    const kt = row(k, K);
    S = S.mul(gate(g).exp());
    const u = row(v, V).sub(kt.matmul(S)).mul(gate(beta)); // [B, H, 1, V]
    S = S.add(kt.transpose().mul(u)); // the outer product k u^T, elementwise so it fuses
    outs.push(row(q, K).matmul(S));
  }
  const out = T === 0 ? zeros([B, H, 0, V]) : ops.concat(outs, { axis: 2 });
  return { out, state: S };
}

/**
 * The inverse of a unit lower-triangular matrix `M` (`[..., C, C]`), by recursive doubling of the
 * diagonal blocks: if `X` holds the inverses of the diagonal blocks of size s, those of size 2s are
 * `X - X L X`, where `L` is M's part inside the 2s blocks and outside the s blocks. log2(C) rounds
 * of two matmuls, and every intermediate is a block of the true inverse (unlike the Neumann product
 * `prod (I + (-A)^(2^i))`, whose matrix powers grow large and cancel in f32 when keys are alike).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tensor } from "../mod.ts";
 * import { unitLowerInverse } from "./delta_rule.ts";
 * assert.deepEqual(await unitLowerInverse(tensor([[1, 0], [2, 1]])).array(), [[1, 0], [-2, 1]]);
 * ```
 */
export function unitLowerInverse(M: Tensor): Tensor {
  const C = M.shape[M.ndim - 1];
  if (M.ndim < 2 || M.shape[M.ndim - 2] !== C) {
    throw new Error(`unitLowerInverse: expected square matrices [..., C, C], got [${M.shape}]`);
  }
  const i = ops.arange(0, C, { dtype: "i32" }).reshape([C, 1]), j = ops.arange(0, C, { dtype: "i32" }).reshape([1, C]);
  let X = identity(C).broadcastTo(M.shape);
  for (let s = 1; s < C; s *= 2) {
    const inner = i.div(2 * s).eq(j.div(2 * s)).where(i.div(s).ne(j.div(s)), false);
    X = X.sub(X.matmul(inner.where(M, 0)).matmul(X));
  }
  return X;
}

/**
 * The gated delta rule computed chunk by chunk (same inputs and results as `gatedDeltaRule`):
 * within a chunk everything is matmuls over `[C, C]` blocks, and only the state passes from one
 * chunk to the next, so the sequential part has T/C steps of one matmul each.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { full, gatedDeltaRule, gatedDeltaRuleChunked, normal, ops, randomKey, readAll } from "../mod.ts";
 * // B 1, H 2, T 50, K 4, V 3; unit-norm keys, some decay.
 * const q = normal(randomKey(1), [1, 2, 50, 4]), k = ops.l2Normalize(normal(randomKey(2), [1, 2, 50, 4]));
 * const v = normal(randomKey(3), [1, 2, 50, 3]), g = full([1, 2, 50], -0.1), beta = full([1, 2, 50], 0.5);
 * const chunked = gatedDeltaRuleChunked(q, k, v, g, beta, { chunkSize: 16 }); // 4 chunks, the last partial
 * const scan = gatedDeltaRule(q, k, v, g, beta);
 * const [a, b] = await readAll([chunked.out, scan.out]);
 * assert.equal(a.length, 1 * 2 * 50 * 3);
 * assert.ok(a.every((x, i) => Math.abs(x - b[i]) < 1e-4));
 * ```
 */
export function gatedDeltaRuleChunked(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  g: Tensor,
  beta: Tensor,
  opts: ChunkedDeltaRuleOptions = {},
): DeltaRuleResult {
  checkInputs("gatedDeltaRuleChunked", q, k, v, g, beta, opts.initialState);
  const C0 = opts.chunkSize ?? DELTA_RULE_CHUNK;
  if (!Number.isInteger(C0) || C0 < 1) {
    throw new Error(`gatedDeltaRuleChunked: chunkSize must be a positive integer, got ${C0}`);
  }
  // Derivation, within one chunk of C tokens entering with state S (all per head). Let a_i = exp(g_i),
  // gamma_i = g_1 + ... + g_i, G_i = exp(gamma_i). Unrolling the recurrence by induction gives
  //   S_i = G_i S + sum_{j<=i} (G_i / G_j) k_j u_j^T,
  // and substituting the S_{i-1} it implies into u_i = beta_i (v_i - a_i S_{i-1}^T k_i):
  //   u_i + beta_i sum_{j<i} (G_i / G_j) (k_i . k_j) u_j = beta_i v_i - beta_i G_i S^T k_i.
  // In matrix form (rows are tokens), with A strictly lower, A_ij = beta_i (G_i / G_j) (k_i . k_j):
  //   (I + A) U = diag(beta) V - diag(beta G) K S,  so  U = Ut - W S  with the UT transform
  //   Ut = (I + A)^-1 diag(beta) V  and  W = (I + A)^-1 diag(beta G) K.
  // Outputs o_i = S_i^T q_i: O = diag(G) Q S + P U with P = (Q K^T) * D, D_ij = G_i / G_j for j <= i
  // (else 0), so O = Qe S + P Ut with Qe = diag(G) Q - P W. The state after the chunk is
  //   S' = G_C S + Kd^T U = (G_C I - Kd^T W) S + Kd^T Ut,  Kd = diag(G_C / G) K.
  // Everything but the S -> S' recursion is computed for all chunks at once. Padding the tail with
  // k = v = beta = g = 0 leaves u = 0 and the decay 1 there, so the final state is unchanged.
  const [B, H, T, K] = q.shape, V = v.shape[3];
  if (T === 0) return { out: zeros([B, H, 0, V]), state: opts.initialState ?? zeros([B, H, K, V]) };
  const C = Math.min(C0, T), N = Math.ceil(T / C), pad = N * C - T;
  // B batch, H heads, N chunks, C tokens per chunk, K key size, V value size.
  const split = (x: Tensor) => x.pad([[0, 0], [0, 0], [0, pad], [0, 0]]).reshape([B, H, N, C, x.shape[3]]);
  const splitGate = (x: Tensor) => x.pad([[0, 0], [0, 0], [0, pad]]).reshape([B, H, N, C]);
  const [qc, kc, vc, bc] = [split(q), split(k), split(v), splitGate(beta)];
  const gam = splitGate(g).cumsum(-1); // gamma_i, [B, H, N, C]
  const i = ops.arange(0, C, { dtype: "i32" }).reshape([C, 1]), j = ops.arange(0, C, { dtype: "i32" }).reshape([1, C]);
  const lower = j.le(i), strict = j.lt(i);
  // G_i / G_j as exp(gamma_i - gamma_j), masked before exp so the upper triangle cannot overflow.
  const D = lower.where(lower.where(gam.expandDims(-1).sub(gam.expandDims(-2)), 0).exp(), 0); // [B, H, N, C, C]
  const kT = kc.transpose();
  const A = strict.where(kc.matmul(kT).mul(D).mul(bc.expandDims(-1)), 0);
  const Tinv = unitLowerInverse(A.add(identity(C)));
  const G = gam.exp().expandDims(-1); // [B, H, N, C, 1]
  const W = Tinv.matmul(kc.mul(bc.expandDims(-1).mul(G))); // [B, H, N, C, K]
  const Ut = Tinv.matmul(vc.mul(bc.expandDims(-1))); // [B, H, N, C, V]
  const P = qc.matmul(kT).mul(D); // [B, H, N, C, C]
  const Qe = qc.mul(G).sub(P.matmul(W));
  const Ob = P.matmul(Ut);
  const last = gam.slice([0, 0, 0, C - 1]); // gamma_C, [B, H, N, 1]
  const Kd = kc.mul(last.sub(gam).exp().expandDims(-1));
  const KdT = Kd.transpose();
  const Ad = last.exp().expandDims(-1).mul(identity(K)).sub(KdT.matmul(W)); // [B, H, N, K, K]
  const Bd = KdT.matmul(Ut); // [B, H, N, K, V]
  const chunk = (x: Tensor, n: number) => x.slice([0, 0, n, 0, 0], [B, H, n + 1, x.shape[3], x.shape[4]]);
  // The only sequential part: S_{n+1} = Ad_n S_n + Bd_n, one matmul per chunk.
  const states: Tensor[] = [];
  let S: Tensor | null = opts.initialState?.expandDims(2) ?? null; // [B, H, 1, K, V]
  for (let n = 0; n < N; n++) {
    states.push(S ?? zeros([B, H, 1, K, V]));
    S = S === null ? chunk(Bd, n) : chunk(Ad, n).matmul(S).add(chunk(Bd, n));
  }
  const before = ops.concat(states, { axis: 2 }); // state entering each chunk, [B, H, N, K, V]
  const O = Qe.matmul(before).add(Ob).reshape([B, H, N * C, V]).slice([0, 0, 0, 0], [B, H, T, V]);
  return { out: O, state: S!.squeeze(2) };
}

function identity(n: number): Tensor {
  const r = ops.arange(0, n, { dtype: "i32" });
  return r.reshape([n, 1]).eq(r.reshape([1, n])).cast("f32");
}

/**
 * Largest state history (B*H*T*K*V floats) `gatedDeltaRuleAuto` lets the fused scan keep: a memory
 * bound (32 MiB), not a device limit. Longer inputs take the chunked form, which keeps only one
 * state per chunk.
 */
export const FUSED_SCAN_LIMIT = 1 << 23;

/**
 * The gated delta rule as one fused primitive: a single kernel runs the recurrence over time for
 * every value column and keeps every state (`[B, H, T, K, V]`), from which the outputs are one
 * batched matmul; its gradient is a second kernel running the recurrence backwards. Same inputs
 * and results as `gatedDeltaRule`; first derivatives only. Any length runs on every backend: one
 * whose kernels cannot loop over T tokens at once splits the scan in time itself.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { full, gatedDeltaRule, gatedDeltaRuleFused, normal, ops, randomKey, readAll } from "../mod.ts";
 * const q = normal(randomKey(1), [1, 2, 9, 4]), k = ops.l2Normalize(normal(randomKey(2), [1, 2, 9, 4]));
 * const v = normal(randomKey(3), [1, 2, 9, 4]), g = full([1, 2, 9], -0.1), beta = full([1, 2, 9], 0.5);
 * const fused = gatedDeltaRuleFused(q, k, v, g, beta), scan = gatedDeltaRule(q, k, v, g, beta);
 * const [o1, s1, o2, s2] = await readAll([fused.out, fused.state, scan.out, scan.state]);
 * assert.ok(o1.every((x, i) => Math.abs(x - o2[i]) < 1e-5));
 * assert.ok(s1.every((x, i) => Math.abs(x - s2[i]) < 1e-5));
 * ```
 */
export function gatedDeltaRuleFused(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  g: Tensor,
  beta: Tensor,
  opts: DeltaRuleOptions = {},
): DeltaRuleResult {
  checkInputs("gatedDeltaRuleFused", q, k, v, g, beta, opts.initialState);
  const [B, H, T, K] = q.shape, V = v.shape[3];
  const s0 = opts.initialState ?? zeros([B, H, K, V]);
  if (T === 0) return { out: zeros([B, H, 0, V]), state: s0 };
  const states = apply("deltaScan", [k, v, g, beta, s0], {}); // [B, H, T, K, V]
  const out = q.reshape([B, H, T, 1, K]).matmul(states).reshape([B, H, T, V]);
  return { out, state: states.slice([0, 0, T - 1, 0, 0]).reshape([B, H, K, V]) };
}

/**
 * The fused scan while its state history (B*H*T*K*V floats) stays under 2^23 (32 MiB), the chunked
 * form beyond (long prompts), so memory stays bounded.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { full, gatedDeltaRule, gatedDeltaRuleAuto, normal, ops, randomKey, readAll } from "../mod.ts";
 * const q = normal(randomKey(1), [1, 2, 9, 4]), k = ops.l2Normalize(normal(randomKey(2), [1, 2, 9, 4]));
 * const v = normal(randomKey(3), [1, 2, 9, 4]), g = full([1, 2, 9], -0.1), beta = full([1, 2, 9], 0.5);
 * const [auto, scan] = await readAll([gatedDeltaRuleAuto(q, k, v, g, beta).out, gatedDeltaRule(q, k, v, g, beta).out]);
 * assert.ok(auto.every((x, i) => Math.abs(x - scan[i]) < 1e-5));
 * ```
 */
export function gatedDeltaRuleAuto(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  g: Tensor,
  beta: Tensor,
  opts: DeltaRuleOptions = {},
): DeltaRuleResult {
  const history = q.shape[0] * q.shape[1] * q.shape[2] * q.shape[3] * v.shape[3];
  return history <= FUSED_SCAN_LIMIT
    ? gatedDeltaRuleFused(q, k, v, g, beta, opts)
    : gatedDeltaRuleChunked(q, k, v, g, beta, opts);
}
