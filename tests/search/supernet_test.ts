// The supernet: paths equal their extracted subnets, inheritance from a trained model, objectives.

import { randomKey, tensor, treeLeaves } from "../../mod.ts";
import { block, type BlockSpec, forward, initModel, modelConfig, type ModelParams } from "../../nn/mod.ts";
import {
  evaluateModel,
  extractSubnet,
  forwardPath,
  initSupernet,
  maxCount,
  mergeSubnet,
  paramCount,
  pathObjective,
  postnas,
  samplePath,
  stableKey,
  toyBatch,
} from "../../search/mod.ts";
import { assertClose, assertThrowsMsg, forEachBackend, values } from "../helpers.ts";

const cfg = modelConfig({
  vocab: 256,
  width: 16,
  heads: 2,
  ffnHidden: 24,
  blocks: [block("mha"), block("mha"), block("mha")],
});
const paperSpace: BlockSpec[][] = [0, 1, 2].map(() => [block("mha"), block("swa", { window: 8 }), block("jet")]);
const seedSpace: BlockSpec[][] = [0, 1, 2].map(() =>
  (["mha", "linear"] as const).flatMap((attn) =>
    (["swiglu", "gated"] as const).flatMap((ffn) => [false, true].map((conv) => block(attn, { ffn, conv })))
  )
);

forEachBackend(
  "a path's forward equals the forward of a model assembled by hand from the supernet's tensors",
  async () => {
    const sn = initSupernet(randomKey(1), cfg, seedSpace);
    const tokens = tensor([[72, 101, 108, 108, 111, 33]], { dtype: "i32" });
    for (let s = 0; s < 6; s++) {
      const path = samplePath(randomKey(100 + s), seedSpace);
      const slot = (b: BlockSpec) => (b.attn === "mha" || b.attn === "swa" ? "attention" : b.attn);
      const params: ModelParams = {
        embed: sn.params.embed,
        normf: sn.params.normf,
        blocks: path.map((b, i) => {
          const l = sn.params.layers[i];
          const p = { norm1: l.norm1, norm2: l.norm2, ffn: l.ffn, mixer: l.mixers[slot(b)]! };
          return b.conv ? { ...p, conv: l.conv } : p;
        }),
      };
      const want = await values(forward(params, tokens, modelConfig({ ...cfg, blocks: path })));
      assertClose(await values(forwardPath(sn, tokens, path)), want, { rtol: 0, atol: 0, msg: stableKey(path) });
    }
  },
);

Deno.test("extracting then merging a subnet gives back the same tensors", () => {
  const sn = initSupernet(randomKey(2), cfg, paperSpace);
  const path = [block("jet"), block("mha"), block("swa", { window: 8 })];
  const merged = mergeSubnet(sn, path, extractSubnet(sn, path).params);
  const a = treeLeaves(sn.params), b = treeLeaves(merged.params);
  if (a.length !== b.length || a.some((t, i) => t !== b[i])) throw new Error("merge changed the supernet's tensors");
});

Deno.test("a supernet built from a trained model inherits its embeddings, norms, MLPs and attention", () => {
  const trained = initModel(randomKey(3), cfg);
  const sn = initSupernet(randomKey(4), cfg, paperSpace, { from: trained });
  if (sn.params.embed !== trained.embed) throw new Error("embeddings not inherited");
  sn.params.layers.forEach((l, i) => {
    if (l.ffn !== trained.blocks[i].ffn || l.norm1 !== trained.blocks[i].norm1) {
      throw new Error(`layer ${i}: shared parts not inherited`);
    }
    if (l.mixers.attention !== trained.blocks[i].mixer) throw new Error(`layer ${i}: attention not inherited`);
    if (l.mixers.jet === undefined) throw new Error(`layer ${i}: no jet candidate`);
  });
  // Every candidate mixer exists once per slot: mha and swa share the attention weights.
  const one = initSupernet(randomKey(5), cfg, paperSpace);
  const attention = paramCount(one.params.layers[0].mixers.attention);
  if (attention !== 4 * 16 * 16) throw new Error(`attention has ${attention} params`);
});

forEachBackend("evaluateModel's accuracy counts exact predictions at answer positions only", async () => {
  const params = initModel(randomKey(6), cfg);
  const batch = toyBatch(randomKey(7), { batch: 2, seqLen: 40, pairs: 3 });
  const ev = await evaluateModel(params, cfg, [batch]);
  const logits = await values(forward(params, batch.inputs, cfg));
  const targets = await values(batch.targets), answers = await values(batch.answers);
  let hits = 0, total = 0, nll = 0;
  for (let i = 0; i < targets.length; i++) {
    const row = logits.slice(i * 256, i * 256 + 256), m = Math.max(...row);
    const lse = m + Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0));
    nll += lse - row[targets[i]];
    if (answers[i]) {
      total++;
      if (row.indexOf(m) === targets[i]) hits++;
    }
  }
  assertClose([ev.loss, ev.accuracy], [nll / targets.length, hits / total], { rtol: 1e-5, atol: 1e-6 });
  if (total !== 6) throw new Error(`expected 3 answers per sequence, found ${total}`);
});

forEachBackend(
  "the seed's greedy search and the paper's budgeted beam search run through the same postnas",
  async () => {
    const held = [toyBatch(randomKey(8), { batch: 2, seqLen: 40 })];
    const seedNet = initSupernet(randomKey(9), cfg, seedSpace);
    const greedy = await postnas(seedSpace, pathObjective(seedNet, held), {
      strategy: "greedy",
      baseline: seedSpace.map((c) => c[0]),
    });
    if (greedy.trace.length !== seedSpace.reduce((n, c) => n + c.length, 0)) {
      throw new Error(`greedy visited ${greedy.trace.length}`);
    }
    const paperNet = initSupernet(randomKey(10), cfg, paperSpace);
    const objective = pathObjective(paperNet, held, { accuracy: 1 });
    const feasible = maxCount((b: BlockSpec) => b.attn === "mha", 1);
    const beam = await postnas(paperSpace, objective, {
      strategy: "beam",
      beamWidth: 2,
      baseline: paperSpace.map(() => block("jet")),
      feasible,
    });
    if (!feasible(beam.choice)) throw new Error(`infeasible choice ${stableKey(beam.choice)}`);
    if (objective.metrics.size !== beam.trace.filter((v) => !v.cached).length) {
      throw new Error("metrics and trace disagree");
    }
    await assertThrowsMsg(
      () => extractSubnet(paperNet, [block("linear"), block("mha"), block("mha")]),
      "layer 0 has no linear candidate",
    );
  },
);

forEachBackend("decodeLatency measures a positive time per token and pathObjective can weigh it", async () => {
  const { decodeLatency } = await import("../../search/mod.ts");
  const small = modelConfig({ vocab: 256, width: 16, heads: 2, ffnHidden: 24, blocks: [block("jet"), block("mha")] });
  const ms = await decodeLatency(initModel(randomKey(11), small), small, { context: 12, tokens: 3 });
  if (!(ms > 0 && Number.isFinite(ms))) throw new Error(`latency ${ms}`);
  const sn = initSupernet(randomKey(12), cfg, paperSpace);
  const held = [toyBatch(randomKey(13), { batch: 2, seqLen: 40 })];
  const plain = pathObjective(sn, held), timed = pathObjective(sn, held, { latencyMs: { weight: 1, context: 8 } });
  const path = [block("jet"), block("mha"), block("swa", { window: 8 })];
  const [a, b] = [await plain(path), await timed(path)];
  if (!(b > a)) throw new Error(`a latency term should add a positive cost: ${a} vs ${b}`);
  await assertThrowsMsg(
    () => decodeLatency(initModel(randomKey(11), small), small, { context: 0 }),
    "context must be a positive integer",
  );
});

Deno.test("JetBlocks of different geometries in one layer get a slot each, with their own shapes", async () => {
  const cfg = modelConfig({ vocab: 16, width: 8, heads: 2, blocks: [block("mha")] });
  const wide = block("jet", { heads: 1, keyDim: 4, valueDim: 6 }), narrow = block("jet", { heads: 4, keyDim: 3 });
  const space = [[block("jet"), wide, narrow, block("mha", { headDim: 2 })]];
  const sn = initSupernet(randomKey(7), cfg, space);
  const slots = Object.keys(sn.params.layers[0].mixers).sort();
  const want = ["attention:headDim=2", "jet", "jet:heads=1,keyDim=4,valueDim=6", "jet:heads=4,keyDim=3"];
  if (slots.join(" ") !== want.join(" ")) throw new Error(`slots ${slots}`);
  const tokens = tensor([[1, 2, 3]], { dtype: "i32" });
  for (const [spec, wq] of [[wide, [8, 4]], [narrow, [8, 12]], [block("jet"), [8, 8]]] as const) {
    const { params } = extractSubnet(sn, [spec]);
    const shape = (params.blocks[0].mixer as { readonly wq: { readonly shape: readonly number[] } }).wq.shape;
    if (shape.join() !== wq.join()) throw new Error(`${JSON.stringify(spec)}: wq [${shape}], want [${wq}]`);
    const logits = await values(forwardPath(sn, tokens, [spec]));
    if (!logits.every(Number.isFinite)) throw new Error("non-finite logits");
  }
  // A model whose jet layers have a geometry inherits them into the candidates of the same geometry.
  const jetCfg = modelConfig({ ...cfg, blocks: [wide] });
  const trained = initModel(randomKey(8), jetCfg);
  const inherited = initSupernet(randomKey(9), jetCfg, [[wide, block("mha")]], { from: trained });
  if (extractSubnet(inherited, [wide]).params.blocks[0].mixer !== trained.blocks[0].mixer) {
    throw new Error("the trained jet mixer was not inherited");
  }
});
