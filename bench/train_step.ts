// Training-step benchmark: the 2-layer transformer of the peer comparison, written with jetfold ops.
// Usage: deno run -A bench/train_step.ts [backends=webgpu,wasm,cpu] [steps=10]
// Model: 2 layers, d=128, 4 heads, T=64, batch 8, vocab 256, SwiGLU 512, Adam (as in ../shared/peers/jaxjs).

import * as jf from "../mod.ts";
const { ops } = jf;
type T = jf.Tensor;

const V = 256, D = 128, H = 4, HD = D / H, S = 64, B = 8, HID = 4 * D, L = 2;

interface Layer {
  ln1: T;
  wq: T;
  wk: T;
  wv: T;
  wo: T;
  ln2: T;
  w1: T;
  w3: T;
  w2: T;
}
interface Params {
  tok: T;
  pos: T;
  layers: Layer[];
  lnf: T;
  head: T;
}

function init(seed: number): Params {
  const keys = jf.splitKey(jf.randomKey(seed), 4 + 9 * L);
  const w = (k: number, shape: number[], fanIn: number) => jf.normal(keys[k], shape, { std: 1 / Math.sqrt(fanIn) });
  return {
    tok: w(0, [V, D], 1),
    pos: w(1, [S, D], 1),
    layers: Array.from({ length: L }, (_, l) => ({
      ln1: jf.ones([D]),
      wq: w(4 + 9 * l, [D, D], D),
      wk: w(5 + 9 * l, [D, D], D),
      wv: w(6 + 9 * l, [D, D], D),
      wo: w(7 + 9 * l, [D, D], D),
      ln2: jf.ones([D]),
      w1: w(8 + 9 * l, [D, HID], D),
      w3: w(9 + 9 * l, [D, HID], D),
      w2: w(10 + 9 * l, [HID, D], HID),
    })),
    lnf: jf.ones([D]),
    head: w(2, [D, V], D),
  };
}

const causal = ops.tril(jf.full([S, S], 1)).gt(0);

function block(h: T, p: Layer): T {
  const a = ops.rmsNorm(h, { weight: p.ln1, eps: 1e-5 });
  const heads = (x: T) => x.reshape([B, S, H, HD]).permute([0, 2, 1, 3]);
  const q = heads(a.matmul(p.wq)), k = heads(a.matmul(p.wk)), v = heads(a.matmul(p.wv));
  const scores = causal.where(q.matmul(k.transpose()).mul(1 / Math.sqrt(HD)), -1e9);
  const att = ops.softmax(scores).matmul(v).permute([0, 2, 1, 3]).reshape([B * S, D]);
  h = h.add(att.matmul(p.wo));
  const a2 = ops.rmsNorm(h, { weight: p.ln2, eps: 1e-5 });
  return h.add(ops.silu(a2.matmul(p.w1)).mul(a2.matmul(p.w3)).matmul(p.w2));
}

function loss(p: Params, x: T, y: T): T {
  let h = p.tok.gather(x).reshape([B, S, D]).add(p.pos).reshape([B * S, D]);
  for (const lp of p.layers) h = block(h, lp);
  const logits = ops.rmsNorm(h, { weight: p.lnf, eps: 1e-5 }).matmul(p.head);
  return ops.crossEntropy(logits, y);
}

const LR = 1e-3, B1 = 0.9, B2 = 0.999, EPS = 1e-8;

function adam(p: Params, g: Params, m: Params, v: Params, t: number): [Params, Params, Params] {
  const m2 = jf.treeMap((mi, gi) => mi.mul(B1).add(gi.mul(1 - B1)), m, g);
  const v2 = jf.treeMap((vi, gi) => vi.mul(B2).add(gi.square().mul(1 - B2)), v, g);
  const c1 = 1 / (1 - B1 ** t), c2 = 1 / (1 - B2 ** t);
  const p2 = jf.treeMap((pi, mi, vi) => pi.sub(mi.mul(c1 * LR).div(vi.mul(c2).sqrt().add(EPS))), p, m2, v2);
  return [p2, m2, v2];
}

/** Result of one training-step measurement. */
export interface StepResult {
  backend: string;
  adapter: string;
  firstMs: number;
  msPerStep: number;
  tokensPerSec: number;
  loss: number;
  dispatchesPerStep: number;
}

/** Trains the benchmark model for `steps` steady steps (after two warm-up steps) on one backend. */
export async function trainStep(backend: jf.BackendName, steps: number): Promise<StepResult> {
  const info = await jf.setBackend(backend);
  let p = init(0);
  let m = jf.treeMap((x) => jf.zeros(x.shape), p), v = m;
  const bits = jf.randint(jf.randomKey(7), [B * (S + 1)], { maxval: V });
  const all = await bits.data();
  const xs = jf.tensor(Int32Array.from({ length: B * S }, (_, i) => all[Math.floor(i / S) * (S + 1) + (i % S)]), {
    shape: [B, S],
  });
  const ys = jf.tensor(Int32Array.from({ length: B * S }, (_, i) => all[Math.floor(i / S) * (S + 1) + (i % S) + 1]));
  const vg = jf.valueAndGrad(loss);
  const step = async (t: number, read: boolean) => {
    const [l, g] = vg(p, xs, ys);
    [p, m, v] = adam(p, g, m, v, t);
    await jf.realize([...jf.treeLeaves([p, m, v]), l]);
    return read ? await l.item() : 0;
  };
  const t0 = performance.now();
  await step(1, true);
  const t1 = performance.now();
  await step(2, true);
  const t2 = performance.now();
  jf.resetStats();
  // Steady state: the loss is read only at the end, as a training loop would, so the time covers
  // all the device work of every step.
  for (let t = 3; t < steps + 2; t++) await step(t, false);
  const last = await step(steps + 2, true);
  const per = (performance.now() - t2) / steps;
  return {
    backend: info.name,
    adapter: info.adapter ?? "-",
    firstMs: t1 - t0,
    msPerStep: per,
    tokensPerSec: (B * S) / per * 1000,
    loss: last,
    dispatchesPerStep: jf.stats().dispatches / steps,
  };
}

if (import.meta.main) {
  const backends = (Deno.args[0] ?? "webgpu,wasm,cpu").split(",") as jf.BackendName[];
  for (const b of backends) {
    const r = await trainStep(b, Number(Deno.args[1] ?? 10));
    console.log(
      `${r.backend.padEnd(6)} ${r.adapter.padEnd(34)} first step ${r.firstMs.toFixed(0)} ms, ` +
        `${r.msPerStep.toFixed(1)} ms/step, ${r.tokensPerSec.toFixed(0)} tokens/s, ` +
        `${r.dispatchesPerStep} dispatches/step, loss ${r.loss.toFixed(3)}`,
    );
  }
}
