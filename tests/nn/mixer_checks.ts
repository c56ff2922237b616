// Checks every token mixer should pass: cached decoding equals apply, causality, vjp, state size, overfitting.

import {
  grad,
  normal,
  randint,
  randomKey,
  readAll,
  type Tensor,
  treeFlatten,
  treeLeaves,
  treeMap,
  treeUnflatten,
} from "../../mod.ts";
import {
  block,
  type BlockSpec,
  causalConv,
  initModel,
  lossFn,
  mixer,
  type MixerKind,
  type MixerParams,
  modelConfig,
} from "../../nn/mod.ts";
import type { ModelConfig } from "../../nn/spec.ts";
import { assertClose, checkGradFD, inF64, values } from "../helpers.ts";

// Every check below tests the mixer of a config's only block, bound through `mixer` as models bind it.
const layerMixer = (cfg: ModelConfig) => mixer(cfg, cfg.blocks[0]);

/**
 * Fresh params with every leaf nudged by N(0, 0.2^2): zero-initialized parts (a dynamic conv's
 * generator output layer, which makes the conv the identity) would otherwise hide their mistakes.
 */
export function perturbedParams(cfg: ModelConfig, seed: number): MixerParams {
  const [leaves, def] = treeFlatten(layerMixer(cfg).init(randomKey(seed)));
  return treeUnflatten(def, leaves.map((l, i) => l.add(normal(randomKey(seed + 100 + i), l.shape, { std: 0.2 }))));
}

/** A small config whose only block is `spec`. */
export function tinyConfig(spec: BlockSpec, sizes: { width?: number; heads?: number } = {}): ModelConfig {
  return modelConfig({ vocab: 16, width: sizes.width ?? 8, heads: sizes.heads ?? 2, ffnHidden: 16, blocks: [spec] });
}

/**
 * Prefill on the first `prompt` tokens and then one `step` per token reproduce `apply` on the whole
 * sequence. With a conv kernel, the mixer input is `causalConv(x, conv)` as in a block with `conv`,
 * and each step convolves its token with the previous inputs (zeros before the start).
 */
export async function checkStepMatchesApply(
  cfg: ModelConfig,
  opts: { prompt: number; total: number; conv?: boolean; seed?: number; atol?: number },
): Promise<void> {
  const { prompt: P, total: T, seed = 1, atol = 3e-5 } = opts;
  const m = layerMixer(cfg), D = cfg.width, W = cfg.convWidth, B = 2;
  const p = perturbedParams(cfg, seed);
  const x = normal(randomKey(seed + 1), [B, T, D]);
  const w = opts.conv ? normal(randomKey(seed + 2), [D, W], { std: 0.6 }) : null;
  const input = (t0: number, t1: number) => {
    const xs = x.slice([0, t0, 0], [B, t1, D]);
    if (w === null) return xs;
    const past = x.pad([[0, 0], [W - 1, 0], [0, 0]]).slice([0, t0, 0], [B, t0 + W - 1, D]);
    return causalConv(xs, w, { past });
  };
  const full = await values(m.apply(p, input(0, T))); // [B, T, D]
  const at = (t0: number, t1: number) =>
    Array.from({ length: B }, (_, b) => full.slice((b * T + t0) * D, (b * T + t1) * D)).flat();
  let [out, cache] = m.prefill(p, input(0, P));
  assertClose(await values(out), at(0, P), { atol, rtol: 1e-4, msg: "prefill" });
  for (let t = P; t < T; t++) {
    [out, cache] = m.step(p, input(t, t + 1), { cache, pos: t });
    await readAll([out, ...treeLeaves(cache)]); // realize the cache so the next step starts from data
    assertClose(await values(out), at(t, t + 1), { atol, rtol: 1e-4, msg: `step at ${t}` });
  }
}

/** Changing the inputs after position t never changes the outputs at or before t. */
export async function checkCausal(cfg: ModelConfig, opts: { T: number; seed?: number }): Promise<void> {
  const { T, seed = 3 } = opts;
  const m = layerMixer(cfg), D = cfg.width;
  const p = perturbedParams(cfg, seed);
  const x = normal(randomKey(seed + 1), [1, T, D]), other = normal(randomKey(seed + 2), [1, T, D]).mul(3);
  const base = await values(m.apply(p, x));
  for (let t = 0; t < T - 1; t++) {
    const changed = x.slice([0, 0, 0], [1, t + 1, D]).pad([[0, 0], [0, T - t - 1], [0, 0]])
      .add(other.slice([0, t + 1, 0]).pad([[0, 0], [t + 1, 0], [0, 0]]));
    const y = await values(m.apply(p, changed));
    assertClose(y.slice(0, (t + 1) * D), base.slice(0, (t + 1) * D), { atol: 1e-6, rtol: 1e-6, msg: `t=${t}` });
    const moved = y.slice((t + 1) * D).some((v, i) => Math.abs(v - base[(t + 1) * D + i]) > 1e-4);
    if (!moved) throw new Error(`changing inputs after ${t} changed no later output: the test would prove nothing`);
  }
}

/**
 * The vjp of `apply` with respect to the input and every (perturbed) param matches finite
 * differences (float64).
 */
export async function checkMixerGradFD(cfg: ModelConfig, opts: { T: number; seed?: number }): Promise<void> {
  const { T, seed = 5 } = opts;
  const m = layerMixer(cfg);
  await inF64(async () => {
    const [leaves, def] = treeFlatten(perturbedParams(cfg, seed));
    const x = normal(randomKey(seed + 1), [2, T, cfg.width]);
    const r = normal(randomKey(seed + 2), [2, T, cfg.width]);
    const f = (xi: Tensor, ...ls: Tensor[]) => m.apply(treeUnflatten(def, ls), xi).mul(r).sum();
    await checkGradFD(f, [x, ...leaves], { atol: 1e-7, rtol: 1e-5, msg: cfg.blocks[0].attn });
  });
}

/** `stateBytes` does not grow with the context and counts exactly the bytes of the cache `prefill` returns. */
export function checkStateBytes(cfg: ModelConfig): void {
  const m = layerMixer(cfg);
  const p = m.init(randomKey(7));
  const sizes = [1, 2, 9, 40].map((T) => {
    const [, cache] = m.prefill(p, normal(randomKey(T), [1, T, cfg.width]));
    return treeLeaves(cache).reduce((n, t) => n + t.size * 4, 0);
  });
  const claimed = [1, 2, 9, 40, 1e6].map((T) => m.stateBytes(T));
  if (new Set([...sizes, ...claimed]).size !== 1) {
    throw new Error(`cache bytes ${sizes} and stateBytes ${claimed} should all be equal`);
  }
}

/** A one-layer model of `kind` fits a fixed small batch: plain Adam, the loss falls by at least half. */
export async function checkOverfits(kind: MixerKind, opts: { steps?: number; lr?: number } = {}): Promise<void> {
  const { steps = 40, lr = 0.03 } = opts;
  const cfg = modelConfig({ vocab: 16, width: 16, heads: 2, blocks: [block(kind)] });
  let params = initModel(randomKey(21), cfg);
  const inputs = randint(randomKey(22), [4, 10], { maxval: 16 }),
    targets = randint(randomKey(23), [4, 10], { maxval: 16 });
  const loss = (q: typeof params) => lossFn(q, { inputs, targets }, cfg);
  let m = treeMap((w: Tensor) => w.mul(0), params), v = m;
  const first = (await values(loss(params)))[0];
  for (let i = 1; i <= steps; i++) {
    const g = grad(loss)(params);
    m = treeMap((a: Tensor, d: Tensor) => a.mul(0.9).add(d.mul(0.1)), m, g);
    v = treeMap((a: Tensor, d: Tensor) => a.mul(0.999).add(d.square().mul(0.001)), v, g);
    const c1 = 1 - 0.9 ** i, c2 = 1 - 0.999 ** i;
    params = treeMap(
      (w: Tensor, a: Tensor, b: Tensor) => w.sub(a.div(c1).div(b.div(c2).sqrt().add(1e-8)).mul(lr)),
      params,
      m,
      v,
    );
    await readAll([...treeLeaves(params), ...treeLeaves(m), ...treeLeaves(v)]);
  }
  const last = (await values(loss(params)))[0];
  if (!(last < first / 2)) throw new Error(`${kind}: loss went from ${first} to ${last}, not below half`);
}

/** x [T, D] row-major times w [D, N], in plain float64 loops. */
export function hostMatmul(x: number[], w: number[], T: number, D: number, N: number): number[] {
  const out = new Array(T * N).fill(0);
  for (let t = 0; t < T; t++) {
    for (let d = 0; d < D; d++) for (let n = 0; n < N; n++) out[t * N + n] += x[t * D + d] * w[d * N + n];
  }
  return out;
}
