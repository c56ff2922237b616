// The JetBlock mixer: cached decoding, causality, gradients, its dynamic conv, init, state size, training.

import { grad, normal, ops, randomKey, type Tensor, treeLeaves } from "../../mod.ts";
import { block, causalConv } from "../../nn/mod.ts";
import { dynamicConv, generatorHidden, initDynamicConv, jetBlock } from "../../nn/jet.ts";
import { assertClose, forEachBackend, inF64, values } from "../helpers.ts";
import { gpuTest, onBoth } from "../core/webgpu/gpu.ts";
import {
  checkCausal,
  checkMixerGradFD,
  checkOverfits,
  checkStateBytes,
  checkStepMatchesApply,
  hostMatmul,
  tinyConfig,
} from "./mixer_checks.ts";

const sigmoid = (a: number) => 1 / (1 + Math.exp(-a)), silu = (a: number) => a * sigmoid(a);
const softplus = (a: number) => Math.log1p(Math.exp(a));

Deno.test("jet: apply equals the JetBlock's equations written as plain float64 loops", async () => {
  await inF64(async () => {
    const cfg = tinyConfig(block("jet"), { width: 6, heads: 3 }), jet = jetBlock(cfg);
    const T = 7, D = 6, H = 3, E = 2, W = cfg.convWidth, G = generatorHidden(cfg);
    const p0 = jet.init(randomKey(1));
    // Perturbed so the generator, the norm weight and the decays all matter.
    const p = {
      ...p0,
      conv: { ...p0.conv, w2: normal(randomKey(2), p0.conv.w2.shape), b2: normal(randomKey(3), p0.conv.b2.shape) },
      norm: normal(randomKey(4), [E]),
      aLog: p0.aLog.sub(2),
    };
    const x = normal(randomKey(5), [1, T, D]);
    const got = await values(jet.apply(p, x));
    const r = await Promise.all(
      [x, p.wq, p.wk, p.wv, p.wb, p.wa, p.aLog, p.dtBias, p.conv.w1, p.conv.w2, p.conv.b2, p.norm, p.wg, p.wo].map(
        values,
      ),
    );
    const [xs, wq, wk, wv, wb, wa, aLog, dtBias, w1, w2, b2, norm, wg, wo] = r;
    const head = (a: number[], t: number, h: number) => a.slice(t * D + h * E, t * D + h * E + E);
    const unit = (a: number[]) => a.map((ai) => ai / Math.sqrt(a.reduce((s, b) => s + b * b, 0) + 1e-6));
    const [q, k, vr, gate] = [wq, wk, wv, wg].map((w) => hostMatmul(xs, w, T, D, D));
    const hid = hostMatmul(xs, w1, T, D, G).map(silu),
      kern = hostMatmul(hid, w2, T, G, D * W).map((a, i) => a + b2[i % (D * W)]);
    const v = vr.map((_, i) => {
      const t = Math.floor(i / D), c = i % D;
      let y = 0;
      for (let j = 0; j < W; j++) {
        if (t - W + 1 + j >= 0) y += kern[t * D * W + c * W + j] * vr[(t - W + 1 + j) * D + c];
      }
      return silu(y);
    });
    const beta = hostMatmul(xs, wb, T, D, H).map(sigmoid), ga = hostMatmul(xs, wa, T, D, H);
    const o = new Array(T * D).fill(0);
    for (let h = 0; h < H; h++) {
      const S = Array.from({ length: E }, () => new Array(E).fill(0));
      for (let t = 0; t < T; t++) {
        const qt = unit(head(q, t, h).map(silu)).map((a) => a / Math.sqrt(E)), kt = unit(head(k, t, h).map(silu));
        const decay = Math.exp(-Math.exp(aLog[h]) * softplus(ga[t * H + h] + dtBias[h])), b = beta[t * H + h];
        for (const row of S) for (let j = 0; j < E; j++) row[j] *= decay;
        const u = head(v, t, h).map((vj, j) => b * (vj - S.reduce((s, row, i) => s + row[j] * kt[i], 0)));
        S.forEach((row, i) => u.forEach((uj, j) => (row[j] += kt[i] * uj)));
        const ot = u.map((_, j) => S.reduce((s, row, i) => s + row[j] * qt[i], 0));
        const rms = Math.sqrt(ot.reduce((s, a) => s + a * a, 0) / E + cfg.normEps);
        ot.forEach((a, j) => (o[t * D + h * E + j] = (a / rms) * norm[j] * silu(gate[t * D + h * E + j])));
      }
    }
    assertClose(got, hostMatmul(o, wo, T, D, D), { atol: 1e-10, rtol: 1e-8 });
  });
});

forEachBackend("jet: prefill then one step per token reproduces apply, with and without a block conv", async () => {
  const cfg = tinyConfig(block("jet")), withConv = tinyConfig(block("jet", { conv: true }));
  // Prompts shorter than the conv window exercise the zero-padded conv cache; 34 tokens span two chunks.
  await checkStepMatchesApply(cfg, { prompt: 2, total: 6 });
  await checkStepMatchesApply(withConv, { prompt: 1, total: 5, conv: true });
  await checkStepMatchesApply(withConv, { prompt: 34, total: 37, conv: true, seed: 4 });
});

forEachBackend("jet: changing inputs after position t never changes outputs at or before t", async () => {
  await checkCausal(tinyConfig(block("jet")), { T: 7 });
});

Deno.test("jet: the vjp with respect to the input and every param matches finite differences", async () => {
  await checkMixerGradFD(tinyConfig(block("jet"), { width: 4 }), { T: 5 });
});

forEachBackend("the dynamic conv with a zero last layer is the static conv of its bias kernel", async () => {
  const B = 2, T = 6, C = 5, W = 4, past = normal(randomKey(3), [B, W - 1, C]);
  const p = { ...initDynamicConv(randomKey(0), { inSize: 7, channels: C, width: W, hidden: 8 }) };
  const x = normal(randomKey(1), [B, T, C]), gen = normal(randomKey(2), [B, T, 7]);
  // At init the kernel is the identity: the conv passes its input through.
  assertClose(await values(dynamicConv(p, x, gen)), await values(x), { atol: 1e-7 });
  const b2 = normal(randomKey(4), [C, W]);
  const staticLike = { ...p, b2 };
  assertClose(await values(dynamicConv(staticLike, x, gen)), await values(causalConv(x, b2)), { atol: 1e-6 });
  assertClose(await values(dynamicConv(staticLike, x, gen, { past })), await values(causalConv(x, b2, { past })), {
    atol: 1e-6,
  });
  // Once w2 is nonzero the kernels depend on the generator input.
  const dynamic = { ...staticLike, w2: normal(randomKey(5), p.w2.shape) };
  const a = await values(dynamicConv(dynamic, x, gen)), b = await values(dynamicConv(dynamic, x, gen.mul(-1)));
  if (a.every((v, i) => Math.abs(v - b[i]) < 1e-3)) throw new Error("kernels did not change with the generator input");
});

forEachBackend("jet: init is deterministic and puts the decay parameters in the Mamba2 / GDN ranges", async () => {
  const jet = jetBlock(tinyConfig(block("jet"), { width: 256, heads: 128 }));
  const p = jet.init(randomKey(9)), again = jet.init(randomKey(9));
  const [la, lb] = [treeLeaves(p), treeLeaves(again)];
  for (let i = 0; i < la.length; i++) assertClose(await values(lb[i]), await values(la[i]), { atol: 0, rtol: 0 });
  const A = await values(p.aLog.exp()), dt = await values(ops.softplus(p.dtBias));
  if (!A.every((a) => a >= 1 - 1e-5 && a < 16)) throw new Error(`exp(aLog) outside [1, 16): ${A}`);
  if (!dt.every((d) => d >= 1e-3 * (1 - 1e-4) && d <= 1e-1 * (1 + 1e-4))) {
    throw new Error(`softplus(dtBias) outside: ${dt}`);
  }
  // 128 draws from each range should spread over it, not bunch at one end.
  const spread = (v: number[], lo: number, hi: number) => Math.min(...v) < lo && Math.max(...v) > hi;
  if (!spread(A, 4, 12) || !spread(dt, 0.005, 0.02)) throw new Error(`decays bunch up: A ${A}, dt ${dt}`);
});

Deno.test("jet: stateBytes counts the prefill cache and does not grow with the context", () => {
  checkStateBytes(tinyConfig(block("jet")));
});

forEachBackend("a one-layer jet model overfits a fixed batch", async () => {
  await checkOverfits("jet");
});

gpuTest("jet: output and gradients agree between WebGPU and the CPU", async () => {
  const cfg = tinyConfig(block("jet")), jet = jetBlock(cfg);
  const p0 = jet.init(randomKey(1));
  const p = { ...p0, conv: { ...p0.conv, w2: normal(randomKey(2), p0.conv.w2.shape, { std: 0.2 }) } };
  const x = normal(randomKey(3), [2, 6, cfg.width]), r = normal(randomKey(4), [2, 6, cfg.width]);
  const f = (q: typeof p, xi: Tensor) => jet.apply(q, xi).mul(r).sum();
  const { gpu, cpu } = await onBoth(() => {
    const [gp, gx] = grad(f, { argnums: [0, 1] })(p, x);
    return [jet.apply(p, x), ...treeLeaves(gp), gx];
  });
  // f32 on both sides with different summation orders: ~1e-4 relative.
  gpu.forEach((g, i) => assertClose(g, cpu[i], { rtol: 2e-3, atol: 2e-5, msg: `output ${i}` }));
});
