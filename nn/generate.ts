// Autoregressive generation with per-layer caches: KV for attention, recurrent state for the rest.

import {
  type Key,
  randomKey,
  readAll,
  realize,
  splitKey,
  type Tensor,
  tensor,
  treeDispose,
  treeFlatten,
  treeLeaves,
  treePaths,
} from "../core/mod.ts";
import * as ops from "../ops/mod.ts";
import { causalConv } from "./layers.ts";
import { mixer, type MixerCache } from "./mixers.ts";
import { ffnResidual, logitsOf, type ModelParams, modelTemplate } from "./model.ts";
import { checkConfig, type ModelConfig } from "./spec.ts";

/** Options of `generate`. */
export interface GenerateOptions {
  /** Tokens to produce after the prompt. */
  readonly maxNewTokens: number;
  /** 0 (the default) is greedy; higher values flatten the distribution. */
  readonly temperature?: number;
  /** Sample only among the `topK` most likely tokens (ties at the threshold are kept). */
  readonly topK?: number;
  /** PRNG key for sampling (ignored when greedy). */
  readonly key?: Key;
  /**
   * Read the new tokens back every this many tokens (default: once, at the end), calling `onTokens` with them.
   * Sampling stays on the device between reads, so a token costs no readback of its own (one per read).
   */
  readonly readEvery?: number;
  /** Called after each read with the tokens read, one array per row (for streaming text as it comes). */
  readonly onTokens?: (tokens: number[][]) => void | Promise<void>;
  /**
   * Stop once every row has produced this id (an end-of-sequence token), seen at a read; each row ends at its first
   * such id (kept), and nothing after it is passed on or returned.
   */
  readonly stopId?: number;
}

/** The per-layer caches of a decoding model, and the position of the next token. */
export interface DecodeState {
  /** Per layer: the mixer's cache and, with `conv`, the last convWidth-1 conv inputs. */
  readonly layers: readonly { readonly mixer: MixerCache; readonly conv?: Tensor }[];
  /** Position of the next token. */
  readonly pos: number;
  /** The tokens in all that the attention caches were preallocated for (see `prefill`); absent: they grow. */
  readonly capacity?: number;
}

/** Options of `prefill`. */
export interface PrefillOptions {
  /**
   * Preallocate the attention caches for this many tokens in all, prompt included (`swa`: a ring of its window),
   * so that every `decodeStep` writes one slot of caches of fixed shape instead of concatenating longer ones.
   */
  readonly capacity?: number;
}

// The last K-1 mixer inputs of a block with `conv`, zero-padded when the prompt is shorter.
function convTail(a: Tensor, K: number): Tensor {
  const T = a.shape[1], keep = Math.min(T, K - 1);
  const tail = a.slice([0, T - keep, 0]);
  return keep === K - 1 ? tail : tail.pad([[0, 0], [K - 1 - keep, 0], [0, 0]]);
}

/**
 * Runs the prompt `[B, T]` through the model once, returning the last position's logits `[B, vocab]`
 * and the caches that `decodeStep` continues from.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { block, forward, initModel, modelConfig, prefill, randomKey, readAll, tensor } from "../mod.ts";
 * const cfg = modelConfig({ vocab: 16, width: 8, heads: 2, blocks: [block("mha"), block("linear")] });
 * const params = initModel(randomKey(0), cfg), prompt = tensor([[1, 2, 3]], { dtype: "i32" });
 * const [logits, state] = prefill(params, prompt, cfg);
 * assert.deepEqual([logits.shape, state.pos, state.layers.length], [[1, 16], 3, 2]);
 * // The logits are those `forward` gives at the last position.
 * const [a, b] = await readAll([logits, forward(params, prompt, cfg).slice([0, 2, 0]).squeeze(1)]);
 * assert.ok(a.every((v, i) => Math.abs(v - b[i]) < 1e-4));
 * ```
 */
export function prefill(
  params: ModelParams,
  tokens: Tensor,
  cfg: ModelConfig,
  opts: PrefillOptions = {},
): [Tensor, DecodeState] {
  if (tokens.dtype !== "i32" || tokens.ndim !== 2 || tokens.shape[1] === 0) {
    throw new Error(
      `prefill: the prompt must be i32 [batch, time] with time >= 1, got ${tokens.dtype} [${tokens.shape}]`,
    );
  }
  let h = params.embed.gather(tokens);
  const layers = cfg.blocks.map((spec, i) => {
    const p = params.blocks[i];
    const normed = ops.rmsNorm(h, { weight: p.norm1, eps: cfg.normEps });
    const a = p.conv ? causalConv(normed, p.conv) : normed;
    const [out, cache] = mixer(cfg, spec).prefill(p.mixer, a, { capacity: opts.capacity });
    h = ffnResidual(p, h.add(out), cfg, spec);
    return p.conv ? { mixer: cache, conv: convTail(normed, cfg.convWidth) } : { mixer: cache };
  });
  const T = tokens.shape[1];
  const state = opts.capacity === undefined ? { layers, pos: T } : { layers, pos: T, capacity: opts.capacity };
  return [logitsOf(params, h.slice([0, T - 1, 0]), cfg).squeeze(1), state];
}

/**
 * Feeds one token per sequence (`[B, 1]` i32) and returns its logits `[B, vocab]` and the new state.
 * The work per token is constant for `linear`, `jet` and `swa` layers and grows with context for `mha`
 * (with a state `prefill` preallocated, every step has the same shapes: the cache's capacity).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { block, decodeStep, forward, initModel, modelConfig, prefill, randomKey, readAll, tensor } from "../mod.ts";
 * const cfg = modelConfig({ vocab: 16, width: 8, heads: 2, blocks: [block("mha"), block("jet", { conv: true })] });
 * const params = initModel(randomKey(0), cfg);
 * const [, state] = prefill(params, tensor([[1, 2]], { dtype: "i32" }), cfg);
 * const [logits, next] = decodeStep(params, tensor([[3]], { dtype: "i32" }), state, cfg);
 * assert.equal(next.pos, 3);
 * // Decoding [1, 2] then 3 gives the logits of the whole sequence [1, 2, 3] at its last position.
 * const whole = forward(params, tensor([[1, 2, 3]], { dtype: "i32" }), cfg).slice([0, 2, 0]).squeeze(1);
 * const [a, b] = await readAll([logits, whole]);
 * assert.ok(a.every((v, i) => Math.abs(v - b[i]) < 1e-4));
 * ```
 */
export function decodeStep(
  params: ModelParams,
  token: Tensor,
  state: DecodeState,
  cfg: ModelConfig,
): [Tensor, DecodeState] {
  if (token.dtype !== "i32" || token.ndim !== 2 || token.shape[1] !== 1) {
    throw new Error(`decodeStep: expected one i32 token per sequence [batch, 1], got ${token.dtype} [${token.shape}]`);
  }
  let h = params.embed.gather(token);
  const layers = cfg.blocks.map((spec, i) => {
    const p = params.blocks[i], layer = state.layers[i];
    const normed = ops.rmsNorm(h, { weight: p.norm1, eps: cfg.normEps });
    const a = p.conv ? causalConv(normed, p.conv, { past: layer.conv }) : normed;
    const step = { cache: layer.mixer, pos: state.pos, capacity: state.capacity };
    const [out, cache] = mixer(cfg, spec).step(p.mixer, a, step);
    h = ffnResidual(p, h.add(out), cfg, spec);
    if (!p.conv) return { mixer: cache };
    const K = cfg.convWidth, conv = ops.concat([layer.conv!, normed], { axis: 1 });
    return { mixer: cache, conv: conv.slice([0, 1, 0], [h.shape[0], K, cfg.width]) };
  });
  return [logitsOf(params, h, cfg).squeeze(1), { ...state, layers, pos: state.pos + 1 }];
}

/** Picks the next token from logits `[B, vocab]`: greedy at temperature 0, else sampled. */
export function sampleToken(logits: Tensor, opts: Omit<GenerateOptions, "maxNewTokens"> = {}): Tensor {
  const temperature = opts.temperature ?? 0;
  if (!(temperature >= 0)) throw new Error(`generate: temperature must be >= 0, got ${temperature}`);
  if (temperature === 0) return ops.argmax(logits, { axis: -1 });
  let scaled = logits.div(temperature);
  if (opts.topK !== undefined) {
    const k = opts.topK;
    if (!Number.isInteger(k) || k < 1) throw new Error(`generate: topK must be a positive integer, got ${k}`);
    // The k-th largest distinct value, found by peeling off maxima (k small reductions on device).
    let rest = scaled, threshold = scaled.max({ axis: -1, keepdims: true });
    for (let i = 1; i < Math.min(k, logits.shape[1]); i++) {
      rest = rest.lt(threshold).where(rest, -Infinity);
      const next = rest.max({ axis: -1, keepdims: true });
      threshold = next.gt(-Infinity).where(next, threshold);
    }
    scaled = scaled.ge(threshold).where(scaled, -Infinity);
  }
  return ops.categorical(opts.key ?? randomKey(0), scaled, { axis: -1 });
}

const shapeOf = (t: Tensor) => `${t.dtype} [${t.shape.join(", ")}]`;

// Params of another config would fail deep inside a matmul or gather, if at all (extra layers are
// silently ignored); one sentence naming the first leaf that differs says what is wrong.
function checkParams(params: ModelParams, cfg: ModelConfig, where: string): void {
  const template = modelTemplate(cfg); // only its names, shapes and dtypes are used
  const wanted = treePaths(template), want = treeLeaves(template);
  const [leaves] = treeFlatten(params, { op: `${where}: params` });
  const found = new Map(treePaths(params).map((path, i) => [path, leaves[i]]));
  const problem = (() => {
    for (const [i, path] of wanted.entries()) {
      const t = found.get(path);
      if (t === undefined) return `"${path}" is missing (the config needs ${shapeOf(want[i])})`;
      if (shapeOf(t) !== shapeOf(want[i])) return `"${path}" is ${shapeOf(t)} but the config needs ${shapeOf(want[i])}`;
    }
    const known = new Set(wanted);
    const extra = [...found.keys()].find((path) => !known.has(path));
    return extra === undefined ? null : `"${extra}" (${shapeOf(found.get(extra)!)}) has no place in the config`;
  })();
  treeDispose(template);
  if (problem !== null) throw new Error(`${where}: the params are not of this config: ${problem}`);
}

// Ids outside the vocabulary would gather garbage (or zeros) on the device rather than fail.
async function checkPrompt(prompt: Tensor | readonly unknown[], vocab: number, where: string): Promise<void> {
  const isId = (v: unknown) => Number.isInteger(v) && (v as number) >= 0 && (v as number) < vocab;
  const bad = (at: string, v: unknown): never => {
    const shown = typeof v === "number" ? String(v) : JSON.stringify(v) ?? String(v);
    throw new Error(`${where}: prompt${at} = ${shown} is not a token id (an integer in [0, ${vocab}))`);
  };
  if (Array.isArray(prompt)) {
    prompt.forEach((v, t) => isId(v) || bad(`[${t}]`, v));
    return;
  }
  const t = prompt as Tensor;
  if (t.dtype !== "i32" || t.ndim !== 2) return; // prefill says what the prompt must be
  const ids = await t.data(), T = t.shape[1];
  ids.forEach((v, i) => isId(v) || bad(`[${Math.floor(i / T)}][${i % T}]`, v));
}

/**
 * Generates `maxNewTokens` tokens after each prompt row, greedily (temperature 0) or by sampling.
 * The attention caches are preallocated for prompt + maxNewTokens (see `prefill`); caches are
 * realized on the device after every token, and tokens are sampled there and read back once at the
 * end, or every `readEvery` tokens to `onTokens` (streaming), stopping early at `stopId`.
 * Before any work it checks that `params` are of `cfg` (every leaf's path, dtype and shape; the
 * error names the first that differs) and that the prompt's ids lie in `[0, vocab)` (a prompt
 * tensor is read back for that).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { block, generate, initModel, modelConfig, randomKey } from "../mod.ts";
 * const cfg = modelConfig({ vocab: 32, width: 16, heads: 2, blocks: [block("mha"), block("jet")] });
 * const params = initModel(randomKey(0), cfg);
 * const [ids] = await generate(params, cfg, [1, 2, 3], { maxNewTokens: 5 });
 * assert.equal(ids.length, 5);
 * assert.ok(ids.every((t) => Number.isInteger(t) && t >= 0 && t < 32));
 * // Greedy (temperature 0, the default) is deterministic.
 * assert.deepEqual(await generate(params, cfg, [1, 2, 3], { maxNewTokens: 5 }), [ids]);
 * // Params of another config, and ids outside the vocabulary, are refused before any work.
 * const deeper = modelConfig({ ...cfg, blocks: [...cfg.blocks, block("mha")] });
 * await assert.rejects(generate(params, deeper, [1], { maxNewTokens: 1 }), /"blocks.2.ffn.w1" is missing/);
 * const wider = modelConfig({ ...cfg, width: 32 });
 * await assert.rejects(generate(params, wider, [1], { maxNewTokens: 1 }), /is f32 \[16, 64\] but the config needs/);
 * await assert.rejects(generate(params, cfg, [1, 32], { maxNewTokens: 1 }), /prompt\[1\] = 32 is not a token id/);
 * ```
 */
export async function generate(
  params: ModelParams,
  cfg: ModelConfig,
  prompt: Tensor | readonly number[],
  opts: GenerateOptions,
): Promise<number[][]> {
  const n = opts.maxNewTokens;
  if (!Number.isInteger(n) || n < 0) throw new Error(`generate: maxNewTokens must be a non-negative integer, got ${n}`);
  checkConfig(cfg);
  checkParams(params, cfg, "generate");
  await checkPrompt(prompt, cfg.vocab, "generate");
  const readEvery = opts.readEvery ?? Math.max(n, 1);
  if (!Number.isInteger(readEvery) || readEvery < 1) {
    throw new Error(`generate: readEvery must be a positive integer, got ${readEvery}`);
  }
  const tokens = Array.isArray(prompt) ? tensor([prompt as number[]], { dtype: "i32" }) : prompt as Tensor;
  const B = tokens.shape[0];
  // The caches are preallocated for the whole run: every step has the same shapes, so the same compiled plan.
  let [logits, state] = prefill(params, tokens, cfg, { capacity: tokens.shape[1] + n });
  // One key per token (a fixed default when sampling without a key), so every step draws anew.
  const keys = splitKey(opts.key ?? randomKey(0), Math.max(n, 1));
  const rows: number[][] = Array.from({ length: B }, () => []), stopped = rows.map(() => false);
  let pending: Tensor[] = [];
  // One readback for the tokens sampled since the last; true once every row has stopped.
  const read = async (): Promise<boolean> => {
    const host = await readAll(pending);
    treeDispose(pending);
    pending = [];
    const fresh = rows.map(() => [] as number[]);
    for (const r of host) {
      for (let b = 0; b < B; b++) {
        if (stopped[b]) continue;
        const id = r[b];
        fresh[b].push(id), rows[b].push(id);
        if (id === opts.stopId) stopped[b] = true;
      }
    }
    await opts.onTokens?.(fresh);
    return opts.stopId !== undefined && stopped.every((x) => x);
  };
  for (let i = 0; i < n; i++) {
    const next = sampleToken(logits, { ...opts, key: keys[i] }).reshape([B, 1]);
    pending.push(next);
    if (i < n - 1) {
      const [l, s] = decodeStep(params, next, state, cfg);
      await realize([next, l, ...treeLeaves(s.layers)]);
      // The old caches and logits are garbage now, except tensors a mixer carried over unchanged.
      const kept = new Set(treeLeaves(s.layers));
      treeDispose([logits, ...treeLeaves(state.layers).filter((t) => !kept.has(t))]);
      [logits, state] = [l, s];
    }
    if ((pending.length === readEvery || i === n - 1) && await read()) break;
  }
  treeDispose([logits, ...pending, ...treeLeaves(state.layers)]);
  if (prompt !== tokens) tokens.dispose();
  return rows;
}
