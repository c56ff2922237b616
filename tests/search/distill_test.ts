// Distillation: the MSE and KL terms and their gradients against float64 closed forms and finite differences, a
// student equal to its teacher, and the supernet trainer learning from a frozen teacher.

import {
  grad,
  randint,
  randomKey,
  type Tensor,
  tensor,
  treeFlatten,
  treeLeaves,
  treeUnflatten,
  valueAndGrad,
} from "../../mod.ts";
import { block, initModel, modelConfig, type ModelParams } from "../../nn/mod.ts";
import { distillLoss, extractSubnet, initSupernet, klDivergence, layerMse, supernetTrainer } from "../../search/mod.ts";
import { assertClose, assertThrowsMsg, checkGradFD, inF64, randomValues, values } from "../helpers.ts";

const shape = [2, 3, 5];
const n = 2 * 3 * 5;
const t = (seed: number) => tensor(new Float64Array(randomValues(n, seed)), { shape });

Deno.test("layerMse and its gradient match the closed forms in float64", () =>
  inF64(async () => {
    const s = [t(1), t(2)], r = [t(3), t(4)];
    const [sv, rv] = [await Promise.all(s.map(values)), await Promise.all(r.map(values))];
    // Mean over 2 layers of the mean over n elements of (s - r)^2; d/ds = 2 (s - r) / (2 n).
    let want = 0;
    for (let l = 0; l < 2; l++) for (let i = 0; i < n; i++) want += (sv[l][i] - rv[l][i]) ** 2 / (2 * n);
    assertClose(await values(layerMse(s, r)), [want], { atol: 1e-12, rtol: 1e-12 });
    const g: Tensor[] = grad((a: Tensor, b: Tensor) => layerMse([a, b], r), { argnums: [0, 1] })(s[0], s[1]);
    for (let l = 0; l < 2; l++) {
      const closed = sv[l].map((v, i) => (2 * (v - rv[l][i])) / (2 * n));
      assertClose(await values(g[l]), closed, { atol: 1e-12, rtol: 1e-10, msg: `layer ${l}` });
    }
  }));

Deno.test("klDivergence and its gradient match the closed forms in float64", () =>
  inF64(async () => {
    const teacher = t(5).mul(3), student = t(6).mul(3);
    const [tv, sv] = [await values(teacher), await values(student)];
    // Per position (6 of them, 5 logits each): sum p_t (log p_t - log p_s); d/ds = (softmax(s) - p_t) / 6.
    const V = 5, P = n / V;
    let want = 0;
    const closed: number[] = [];
    for (let p = 0; p < P; p++) {
      const lse = (xs: number[]) => Math.log(xs.reduce((a, x) => a + Math.exp(x), 0));
      const [rowT, rowS] = [tv.slice(p * V, p * V + V), sv.slice(p * V, p * V + V)];
      const [zT, zS] = [lse(rowT), lse(rowS)];
      for (let v = 0; v < V; v++) {
        const [lt, ls] = [rowT[v] - zT, rowS[v] - zS];
        want += (Math.exp(lt) * (lt - ls)) / P;
        closed.push((Math.exp(ls) - Math.exp(lt)) / P);
      }
    }
    assertClose(await values(klDivergence(teacher, student)), [want], { atol: 1e-12, rtol: 1e-12 });
    const g = grad((s: Tensor) => klDivergence(teacher, s))(student);
    assertClose(await values(g), closed, { atol: 1e-12, rtol: 1e-10 });
    // KL is never negative, and 0 only at the teacher's own distribution.
    assertClose(await values(klDivergence(teacher, teacher)), [0], { atol: 1e-12 });
    if (!(want > 0)) throw new Error(`KL of different distributions is ${want}`);
  }));

// Random tokens: toyBatch needs longer sequences than these tests want.
const tokens = (seed: number, batch: number, seqLen: number) => {
  const [inputs, targets] = [0, 1].map((i) => randint(randomKey(100 * seed + i), [batch, seqLen], { maxval: 256 }));
  return { inputs, targets };
};

const cfg = modelConfig({ vocab: 256, width: 8, heads: 2, ffnHidden: 12, blocks: [block("mha"), block("jet")] });

Deno.test("distillLoss of a whole model matches finite differences in float64, for each term and a mix", () =>
  inF64(async () => {
    const teacher = { config: cfg, params: initModel(randomKey(1), cfg) };
    const params = initModel(randomKey(2), cfg);
    const batch = tokens(3, 1, 12);
    const [leaves, def] = treeFlatten(params);
    const rebuild = (xs: Tensor[]) => treeUnflatten<ModelParams>(def, xs);
    for (const weights of [{ mse: 1 }, { kl: 1 }, { ce: 1 }, { mse: 1, kl: 0.3, ce: 0.5 }]) {
      const f = (...xs: Tensor[]) => distillLoss(rebuild(xs), batch, cfg, { teacher, weights });
      await checkGradFD(f, leaves, { atol: 1e-7, rtol: 1e-5, msg: JSON.stringify(weights) });
    }
  }));

Deno.test("with MSE distillation a student equal to its teacher has loss 0 and zero gradients", async () => {
  const params = initModel(randomKey(4), cfg);
  const teacher = { config: cfg, params };
  const batch = tokens(5, 2, 16);
  const [loss, grads] = valueAndGrad((p: ModelParams) => distillLoss(p, batch, cfg, { teacher, weights: { mse: 1 } }))(
    params,
  );
  if ((await loss.item()) !== 0) throw new Error(`loss ${await loss.item()}`);
  for (const [i, g] of treeLeaves(grads).entries()) {
    const v = await values(g);
    if (v.some((x) => x !== 0)) throw new Error(`gradient leaf ${i} is not zero: max ${Math.max(...v.map(Math.abs))}`);
  }
  // A different student has a positive loss: the test above can fail.
  const other = distillLoss(initModel(randomKey(6), cfg), batch, cfg, { teacher, weights: { mse: 1 } });
  if (!((await other.item()) > 0)) throw new Error("a different student has loss 0");
});

Deno.test("distillLoss refuses weights that name no term, a negative weight, and layer counts that differ", async () => {
  const params = initModel(randomKey(7), cfg);
  const teacher = { config: cfg, params };
  const batch = tokens(8, 1, 8);
  await assertThrowsMsg(() => distillLoss(params, batch, cfg, { teacher, weights: {} }), "at least one");
  await assertThrowsMsg(() => distillLoss(params, batch, cfg, { teacher, weights: { kl: -1 } }), "kl weight", ">= 0");
  const one = modelConfig({ ...cfg, blocks: [block("mha")] });
  const small = { config: one, params: initModel(randomKey(9), one) };
  await assertThrowsMsg(
    () => distillLoss(params, batch, cfg, { teacher: small, weights: { mse: 1 } }),
    "2 layers and the teacher 1",
  );
});

Deno.test("the supernet trainer distills: the teacher's tensors survive and the path's MSE falls", async () => {
  const base = modelConfig({ vocab: 256, width: 16, heads: 2, ffnHidden: 24, blocks: [block("mha"), block("mha")] });
  const teacher = { config: base, params: initModel(randomKey(10), base) };
  const space = [[block("mha"), block("jet")], [block("mha"), block("jet")]];
  let sn = initSupernet(randomKey(11), base, space, { from: teacher.params });
  const distill = { teacher, weights: { mse: 1 } };
  const trainer = supernetTrainer({ lr: 3e-3, distill });
  let opt = trainer.init(sn);
  const batch = tokens(12, 2, 24);
  const path = [block("jet"), block("mha")];
  const mseOf = (s: typeof sn) => {
    const sub = extractSubnet(s, path);
    return distillLoss(sub.params, batch, sub.config, distill).item();
  };
  const first = await mseOf(sn);
  for (let i = 0; i < 15; i++) ({ supernet: sn, opt } = await trainer.step(sn, opt, { ...batch, path }));
  const last = await mseOf(sn);
  if (!(last < first * 0.7)) throw new Error(`MSE ${first} -> ${last}`);
  // The teacher is readable (not disposed) and unchanged, while the path's attention weights did change.
  const fresh = initModel(randomKey(10), base);
  const [a, b] = [await values(teacher.params.blocks[1].mixer.wq), await values(fresh.blocks[1].mixer.wq)];
  assertClose(a, b, { atol: 0 });
  if (sn.params.layers[1].mixers.attention === teacher.params.blocks[1].mixer) throw new Error("layer 1 never trained");
});
