// End to end: gradients of a 2-layer MLP loss over a record of params, and gradient descent that learns.

import {
  grad,
  normal,
  ops,
  randint,
  randomKey,
  realize,
  setBackend,
  splitKey,
  type Tensor,
  treeFlatten,
  treeLeaves,
  treeMap,
  treeUnflatten,
  valueAndGrad,
} from "../../mod.ts";
import { assertClose, checkGradFD, useF64, values } from "../helpers.ts";

interface Dense {
  readonly w: Tensor;
  readonly b: Tensor;
}
interface Mlp {
  readonly hidden: Dense;
  readonly out: Dense;
}

function initMlp(seed: number, sizes: { inp: number; hid: number; out: number }): Mlp {
  const [k1, k2, k3, k4] = splitKey(randomKey(seed), 4);
  return {
    hidden: { w: normal(k1, [sizes.inp, sizes.hid], { std: 0.7 }), b: normal(k2, [sizes.hid], { std: 0.1 }) },
    out: { w: normal(k3, [sizes.hid, sizes.out], { std: 0.7 }), b: normal(k4, [sizes.out], { std: 0.1 }) },
  };
}

function forward(p: Mlp, x: Tensor, act: (h: Tensor) => Tensor): Tensor {
  return act(x.matmul(p.hidden.w).add(p.hidden.b)).matmul(p.out.w).add(p.out.b);
}

const ceLoss = (p: Mlp, x: Tensor, t: Tensor) => ops.crossEntropy(forward(p, x, ops.gelu), t);
const mseLoss = (p: Mlp, x: Tensor, y: Tensor) => forward(p, x, (h) => h.tanh()).sub(y).square().mean();

/** Checks the whole params gradient, and each leaf on its own, against finite differences. */
async function checkTreeGrad(loss: (p: Mlp) => Tensor, params: Mlp, msg: string): Promise<void> {
  const [leaves, def] = treeFlatten(params);
  const flat = (...ls: Tensor[]) => loss(treeUnflatten<Mlp>(def, ls));
  await checkGradFD(flat, leaves, { msg: `${msg} (all params)` });
  // Each leaf alone, through the record-valued gradient (so its structure is used, not rebuilt).
  const g = grad(loss)(params);
  const gLeaves = treeLeaves(g);
  if (gLeaves.length !== leaves.length) throw new Error(`${msg}: gradient has ${gLeaves.length} leaves`);
  for (let i = 0; i < leaves.length; i++) {
    if (gLeaves[i].shape.join() !== leaves[i].shape.join()) throw new Error(`${msg}: leaf ${i} shape differs`);
    const only = (l: Tensor) => flat(...leaves.map((x, j) => (j === i ? l : x)));
    await checkGradFD(only, [leaves[i]], { msg: `${msg} (leaf ${i})`, seed: 10 + i });
    const viaStructure = grad(only)(leaves[i]);
    assertClose(await values(gLeaves[i]), await values(viaStructure), { atol: 1e-12, rtol: 1e-12 });
  }
}

Deno.test("grad of a 2-layer gelu MLP cross-entropy loss over a record of params matches finite differences", async () => {
  useF64();
  const params = initMlp(1, { inp: 4, hid: 6, out: 3 });
  const [kx, kt] = splitKey(randomKey(2));
  const x = normal(kx, [5, 4]), t = randint(kt, [5], { maxval: 3 });
  const g = grad(ceLoss)(params, x, t);
  if (Object.keys(g).sort().join() !== "hidden,out" || Object.keys(g.hidden).sort().join() !== "b,w") {
    throw new Error("the gradient must have the params' record structure");
  }
  await checkTreeGrad((p) => ceLoss(p, x, t), params, "gelu + crossEntropy");
});

Deno.test("grad of a 2-layer tanh MLP mean-squared-error loss matches finite differences", async () => {
  useF64();
  const params = initMlp(3, { inp: 3, hid: 5, out: 2 });
  const [kx, ky] = splitKey(randomKey(4));
  const x = normal(kx, [6, 3]), y = normal(ky, [6, 2]);
  await checkTreeGrad((p) => mseLoss(p, x, y), params, "tanh + MSE");
});

Deno.test("plain gradient descent on the f32 CPU backend reduces an MLP's cross-entropy loss", async () => {
  await setBackend("cpu");
  let params = initMlp(5, { inp: 4, hid: 16, out: 3 });
  const [kx, kt] = splitKey(randomKey(6));
  const x = normal(kx, [24, 4]), t = randint(kt, [24], { maxval: 3 });
  const step = valueAndGrad(ceLoss);
  const losses: number[] = [];
  for (let i = 0; i < 40; i++) {
    const [loss, g] = step(params, x, t);
    params = treeMap((p, d) => p.sub(d.mul(0.5)), params, g);
    await realize([loss, ...treeLeaves(params)]); // keeps each step's graph from growing into the next
    losses.push((await values(loss))[0]);
  }
  const [first, last] = [losses[0], losses[losses.length - 1]];
  if (!(losses[1] < first)) throw new Error(`the first step did not reduce the loss: ${losses.slice(0, 2)}`);
  if (!(last < 0.5 * first)) throw new Error(`loss went from ${first} to ${last}, less than halved in 40 steps`);
  // The final loss is the loss of the final params, recomputed from scratch.
  const final = (await values(ceLoss(params, x, t)))[0];
  if (!(final <= last)) throw new Error(`recomputed final loss ${final} is above the last step's ${last}`);
});
