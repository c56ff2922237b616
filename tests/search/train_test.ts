// Supernet training: a step changes only its path's trainable tensors, and the loss falls.

import { randomKey, treeLeaves } from "../../mod.ts";
import { block, lossFn, modelConfig } from "../../nn/mod.ts";
import { extractSubnet, initSupernet, supernetTrainer, toyBatch } from "../../search/mod.ts";
import { forEachBackend, values } from "../helpers.ts";

const cfg = modelConfig({ vocab: 256, width: 16, heads: 2, ffnHidden: 24, blocks: [block("mha"), block("mha")] });
const space = [[block("mha"), block("jet", { conv: true })], [block("swa", { window: 4 }), block("linear")]];

forEachBackend("a supernet step changes the path's mixers and norms only; MLPs and other candidates stay", async () => {
  const sn = initSupernet(randomKey(1), cfg, space);
  const trainer = supernetTrainer({ lr: 1e-2 });
  const batch = toyBatch(randomKey(2), { batch: 2, seqLen: 40 });
  const path = [space[0][1], space[1][0]];
  const before = sn.params;
  const { supernet } = await trainer.step(sn, trainer.init(sn), { ...batch, path });
  const after = supernet.params;
  const same = (a: unknown, b: unknown) => treeLeaves(a).every((t, i) => t === treeLeaves(b)[i]);
  if (!same(before.layers[0].mixers.attention, after.layers[0].mixers.attention)) {
    throw new Error("off-path attention changed");
  }
  if (!same(before.layers[1].mixers.linear, after.layers[1].mixers.linear)) throw new Error("off-path linear changed");
  for (const i of [0, 1]) {
    if (!same(before.layers[i].ffn, after.layers[i].ffn)) throw new Error(`layer ${i}'s frozen MLP changed`);
  }
  if (same(before.layers[0].mixers.jet, after.layers[0].mixers.jet)) {
    throw new Error("the on-path jet mixer did not change");
  }
  if (same(before.layers[1].mixers.attention, after.layers[1].mixers.attention)) {
    throw new Error("the on-path swa mixer did not change");
  }
  if (before.layers[0].conv === after.layers[0].conv) throw new Error("the on-path conv did not change");
});

forEachBackend("training random paths lowers the loss of every path", async () => {
  let sn = initSupernet(randomKey(3), cfg, space);
  const trainer = supernetTrainer({ lr: 3e-3 });
  let opt = trainer.init(sn);
  const batch = toyBatch(randomKey(4), { batch: 4, seqLen: 40 });
  const paths = space[0].flatMap((a) => space[1].map((b) => [a, b]));
  const lossOf = async (p: typeof paths[0]) => {
    const sub = extractSubnet(sn, p);
    return (await values(lossFn(sub.params, batch, sub.config)))[0];
  };
  const first = await Promise.all(paths.map(lossOf));
  for (let i = 0; i < 40; i++) {
    ({ supernet: sn, opt } = await trainer.step(sn, opt, { ...batch, key: randomKey(100 + i) }));
  }
  const last = await Promise.all(paths.map(lossOf));
  last.forEach((l, i) => {
    if (!(l < first[i] - 0.3)) throw new Error(`path ${i}: loss ${first[i]} -> ${l}`);
  });
});
