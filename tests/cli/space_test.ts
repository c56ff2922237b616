// The search spaces of demo and search: the paper space keeps the base model's conv before the mixer, the seed
// space searches it; a given model's layers must agree on it.

import { block, extractSubnet, initModel, initSupernet, modelConfig, randomKey } from "../../mod.ts";
import { InputError } from "../../cli/args.ts";
import { blockLabel } from "../../cli/options.ts";
import { fitSpace, makeSpace, type SearchOptions } from "../../cli/space.ts";
import { assert } from "./helpers.ts";

const O: SearchOptions = {
  space: null,
  strategy: null,
  beamWidth: 2,
  maxMha: 1,
  maxSwa: null,
  accuracyWeight: 1,
  window: 8,
};
const labels = (s: { candidates: readonly Parameters<typeof blockLabel>[0][] }) => s.candidates.map(blockLabel).join();

Deno.test("the paper space takes the conv of a base built with one, for every candidate and the baseline", () => {
  assert(labels(makeSpace(O)) === "mha,swa:8,jet", labels(makeSpace(O)));
  const conv = makeSpace(O, { conv: true });
  assert(labels(conv) === "mha+conv,swa:8+conv,jet+conv", labels(conv));
  assert(conv.baseline === conv.candidates[2], "the baseline is the conv jet");
  // The seed space searches conv itself, whatever the base.
  const seed = makeSpace({ ...O, space: "seed" }, { conv: true });
  assert(seed.candidates.filter((c) => c.conv).length === 4 && seed.candidates.length === 8, labels(seed));
});

Deno.test("a given model's conv carries into the paper space; layers that differ in it are refused", () => {
  const cfg = (blocks: Parameters<typeof modelConfig>[0]["blocks"]) =>
    modelConfig({ vocab: 16, width: 8, heads: 2, blocks });
  const withConv = fitSpace(makeSpace(O), cfg([block("mha", { conv: true }), block("jet", { conv: true })]));
  assert(labels(withConv) === "mha+conv,swa:8+conv,jet+conv", labels(withConv));
  const without = fitSpace(makeSpace(O, { conv: true }), cfg([block("mha"), block("mha")]));
  assert(labels(without) === "mha,swa:8,jet", labels(without));
  let message = "";
  try {
    fitSpace(makeSpace(O), cfg([block("mha", { conv: true }), block("mha")]));
  } catch (e) {
    assert(e instanceof InputError, String(e));
    message = (e as Error).message;
  }
  assert(
    message === "the given model's layers differ in conv before the mixer (layer 1), so no one search space fits it",
    message,
  );
  const seed = fitSpace(makeSpace({ ...O, space: "seed" }), cfg([block("mha", { conv: true }), block("mha")]));
  assert(seed.candidates.some((c) => c.conv) && seed.candidates.some((c) => !c.conv), labels(seed));
});

Deno.test("a supernet over a conv base inherits each layer's conv for every candidate", () => {
  const cfg = modelConfig({ vocab: 16, width: 8, heads: 2, blocks: [block("mha", { conv: true })] });
  const model = initModel(randomKey(1), cfg);
  const sn = initSupernet(randomKey(2), cfg, [makeSpace(O, { conv: true }).candidates], { from: model });
  assert(sn.params.layers[0].conv === model.blocks[0].conv, "the conv is the base model's tensor");
  for (const c of makeSpace(O, { conv: true }).candidates) {
    assert(extractSubnet(sn, [c]).params.blocks[0].conv === model.blocks[0].conv, `${blockLabel(c)} has its own conv`);
  }
});
