// Shared layers: FFNs, the causal conv and the whole model loss against references and finite differences.

import { normal, randint, randomKey, type Tensor, tensor } from "../../mod.ts";
import {
  applyFfn,
  block,
  causalConv,
  initFfn,
  initModel,
  lossFn,
  modelConfig,
  type ModelParams,
} from "../../nn/mod.ts";
import { assertClose, assertThrowsMsg, checkGradFD, useF64, values } from "../helpers.ts";

useF64();

const cfg = modelConfig({ vocab: 9, width: 6, heads: 3, ffnHidden: 5, blocks: [block("mha")] });

Deno.test("swiglu and gated FFNs match their formulas in float64 loops", async () => {
  const p = initFfn(randomKey(1), cfg);
  const x = normal(randomKey(2), [1, 3, 6]);
  const [xs, w1, w3, w2] = await Promise.all([x, p.w1, p.w3, p.w2].map(values));
  const silu = (v: number) => v / (1 + Math.exp(-v));
  const gelu = (v: number) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
  for (const [kind, act] of [["swiglu", silu], ["gated", gelu]] as const) {
    const want: number[] = [];
    for (let t = 0; t < 3; t++) {
      const h = Array.from({ length: 5 }, (_, j) => {
        let a = 0, b = 0;
        for (let d = 0; d < 6; d++) [a, b] = [a + xs[t * 6 + d] * w1[d * 5 + j], b + xs[t * 6 + d] * w3[d * 5 + j]];
        return act(a) * b;
      });
      for (let o = 0; o < 6; o++) want.push(h.reduce((s, v, j) => s + v * w2[j * 6 + o], 0));
    }
    assertClose(await values(applyFfn(p, x, kind)), want, { rtol: 1e-10, atol: 1e-12, msg: kind });
  }
});

Deno.test("the causal conv equals its sum over past taps, with zeros or a given past before the start", async () => {
  const x = normal(randomKey(3), [2, 5, 3]), w = normal(randomKey(4), [3, 4]), past = normal(randomKey(5), [2, 3, 3]);
  const [xs, ws, ps] = await Promise.all([x, w, past].map(values));
  for (const withPast of [false, true]) {
    const want: number[] = [];
    for (let b = 0; b < 2; b++) {
      for (let t = 0; t < 5; t++) {
        for (let c = 0; c < 3; c++) {
          let s = 0;
          for (let j = 0; j < 4; j++) {
            const src = t - 3 + j;
            const v = src >= 0 ? xs[(b * 5 + src) * 3 + c] : withPast ? ps[(b * 3 + (3 + src)) * 3 + c] : 0;
            s += ws[c * 4 + j] * v;
          }
          want.push(s);
        }
      }
    }
    const got = await values(causalConv(x, w, withPast ? { past } : {}));
    assertClose(got, want, { rtol: 1e-12, atol: 1e-12, msg: `past=${withPast}` });
  }
  await assertThrowsMsg(
    () => causalConv(x, normal(randomKey(6), [4, 4])),
    "causalConv: expected x [B, T, C] and w [C, K]",
  );
});

Deno.test("FFN and conv vjps match finite differences", async () => {
  const p = initFfn(randomKey(7), cfg);
  const x = normal(randomKey(8), [1, 3, 6]);
  for (const kind of ["swiglu", "gated"] as const) {
    await checkGradFD((w1, w3, w2, xi) => applyFfn({ w1, w3, w2 }, xi, kind).sin().sum(), [p.w1, p.w3, p.w2, x], {
      msg: kind,
    });
  }
  await checkGradFD((xi, w) => causalConv(xi, w).square().sum(), [x, normal(randomKey(9), [6, 4])], { msg: "conv" });
});

Deno.test("the gradient of a whole hybrid model's loss matches finite differences", async () => {
  const hybrid = modelConfig({
    vocab: 7,
    width: 4,
    heads: 2,
    kvHeads: 1,
    ffnHidden: 6,
    blocks: [
      block("mha", { conv: true }),
      block("jet", { ffn: "gated" }),
      block("swa", { window: 2 }),
      block("linear"),
    ],
  });
  const params = initModel(randomKey(10), hybrid);
  const batch = {
    inputs: randint(randomKey(11), [1, 5], { maxval: 7 }),
    targets: randint(randomKey(12), [1, 5], { maxval: 7 }),
  };
  // Perturb the embeddings and the first block's conv and attention query: the gradient flows
  // through every later layer to reach them.
  const f = (embed: Tensor, conv: Tensor, wq: Tensor) => {
    const b0 = params.blocks[0];
    const p: ModelParams = {
      ...params,
      embed,
      blocks: [{ ...b0, conv, mixer: { ...b0.mixer, wq } }, ...params.blocks.slice(1)],
    };
    return lossFn(p, batch, hybrid);
  };
  await checkGradFD(f, [params.embed, params.blocks[0].conv!, params.blocks[0].mixer.wq], { rtol: 1e-6, atol: 1e-8 });
  // Token ids outside the vocabulary are rejected by the embedding lookup.
  await assertThrowsMsg(
    () =>
      lossFn(params, { inputs: tensor([[9]], { dtype: "i32" }), targets: tensor([[1]], { dtype: "i32" }) }, hybrid)
        .data(),
    "gather: index 9 is out of range",
  );
});
