// The linear attention mixer: the recurrence in plain float64, cached decoding, causality, vjp, training.

import { normal, randomKey } from "../../mod.ts";
import { block } from "../../nn/mod.ts";
import { linearAttention } from "../../nn/linear_attention.ts";
import { assertClose, forEachBackend, inF64, values } from "../helpers.ts";
import {
  checkCausal,
  checkMixerGradFD,
  checkOverfits,
  checkStateBytes,
  checkStepMatchesApply,
  hostMatmul,
  tinyConfig,
} from "./mixer_checks.ts";

const phi = (x: number) => (x > 0 ? x + 1 : Math.exp(x));

Deno.test("linear attention equals its recurrence o_t = phi(q)^T S_t / (phi(q)^T z_t + eps) in float64 loops", async () => {
  await inF64(async () => {
    const linear = linearAttention(tinyConfig(block("linear"), { width: 6, heads: 3 }));
    const T = 5, D = 6, H = 3, E = 2;
    const p = linear.init(randomKey(1));
    const x = normal(randomKey(2), [1, T, D]);
    const got = await values(linear.apply(p, x));
    const [xs, wq, wk, wv, wo] = await Promise.all([x, p.wq, p.wk, p.wv, p.wo].map(values));
    const [q, k, v] = [wq, wk, wv].map((w) => hostMatmul(xs, w, T, D, D));
    const o = new Array(T * D).fill(0);
    for (let h = 0; h < H; h++) {
      const S = Array.from({ length: E }, () => new Array(E).fill(0)), z = new Array(E).fill(0);
      for (let t = 0; t < T; t++) {
        const at = (a: number[], i: number) => a[t * D + h * E + i];
        for (let i = 0; i < E; i++) {
          z[i] += phi(at(k, i));
          for (let j = 0; j < E; j++) S[i][j] += phi(at(k, i)) * at(v, j);
        }
        const den = z.reduce((s, zi, i) => s + phi(at(q, i)) * zi, 0) + 1e-6;
        for (let j = 0; j < E; j++) o[t * D + h * E + j] = S.reduce((s, row, i) => s + phi(at(q, i)) * row[j], 0) / den;
      }
    }
    assertClose(got, hostMatmul(o, wo, T, D, D), { atol: 1e-12, rtol: 1e-10 });
  });
});

forEachBackend("linear: prefill then one step per token reproduces apply, with and without a block conv", async () => {
  await checkStepMatchesApply(tinyConfig(block("linear")), { prompt: 2, total: 6 });
  await checkStepMatchesApply(tinyConfig(block("linear", { conv: true })), { prompt: 1, total: 5, conv: true });
  await checkStepMatchesApply(tinyConfig(block("linear", { conv: true })), {
    prompt: 9,
    total: 12,
    conv: true,
    seed: 4,
  });
});

forEachBackend("linear: changing inputs after position t never changes outputs at or before t", async () => {
  await checkCausal(tinyConfig(block("linear")), { T: 7 });
});

Deno.test("linear: the vjp with respect to the input and every param matches finite differences", async () => {
  await checkMixerGradFD(tinyConfig(block("linear"), { width: 4 }), { T: 5 });
});

Deno.test("linear: stateBytes counts the prefill cache and does not grow with the context", () => {
  checkStateBytes(tinyConfig(block("linear")));
});

forEachBackend("a one-layer linear attention model overfits a fixed batch", async () => {
  await checkOverfits("linear");
});
