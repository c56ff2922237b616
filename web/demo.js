// The demo page's pipeline, without the page: pretrain a full-attention model on toy data, train a
// supernet over it, let PostNAS choose each layer's block, post-tune the choice, sample from it.
// It reports through callbacks, and runs the same under Deno (the tests compare the two).

import {
  adamw,
  block,
  decodeBytes,
  evaluateModel,
  extractSubnet,
  foldIn,
  generate,
  initModel,
  initSupernet,
  lossFn,
  makeTrainStep,
  maxCount,
  modelConfig,
  paramCount,
  pathObjective,
  postnas,
  randomKey,
  setBackend,
  supernetTrainer,
  totalStateBytes,
  toyBatch,
  warmupCosine,
} from "jetfold";

/** The options a run takes, and the page's defaults (about two minutes on a software adapter). */
export const DEFAULTS = Object.freeze({
  backend: "auto",
  seed: 0,
  pretrain: 200,
  supernet: 120,
  tune: 60,
  width: 32,
  layers: 3,
  seqLen: 48,
  batch: 8,
  window: 16,
  tokens: 24,
});

/** The phases, in order, as the page names them. */
export const PHASES = Object.freeze(["pretrain", "supernet", "search", "tune", "sample"]);

const QUERY = "?".charCodeAt(0);

// Batch i of a stream is a pure function of the seed, the stream and i: a run is reproducible.
function toyData(o) {
  const key = foldIn(randomKey(o.seed), 1001), shape = { batch: o.batch, seqLen: o.seqLen, pairs: 4 };
  let heldOut = null;
  return {
    batch: (stream, i) => toyBatch(foldIn(foldIn(key, stream), i), shape),
    heldOut: () => (heldOut ??= [toyBatch(foldIn(key, 0x7fff0001), { ...shape, batch: 16 })]),
    // A held-out sequence up to its first recall query, and the answer it asks for.
    async prompt() {
      const b = toyBatch(foldIn(key, 0x7fff0002), { ...shape, batch: 1 });
      const [inputs, targets] = [Array.from(await b.inputs.data()), Array.from(await b.targets.data())];
      const q = inputs.indexOf(QUERY);
      return { ids: inputs.slice(0, q + 2), expect: targets[q + 1] };
    },
  };
}

const label = (b) => (b.attn === "swa" ? `swa:${b.window}` : b.attn);
const schedule = (peak, steps) => warmupCosine({ peak, warmupSteps: Math.min(20, steps), totalSteps: steps });

/**
 * Runs the pipeline with options `o` (see DEFAULTS); `on` receives progress: `backend(info)`,
 * `phase(name, total)`, `step(phase, i, loss)`, `visit(visit, evaluation, labels)`,
 * `evaluation(name, ev)`, `sample(sample)`, and `tick()`, awaited between steps (to let a page
 * draw; it may throw to stop the run). Returns every number the run produced.
 */
export async function runDemo(options = {}, on = {}) {
  const o = { ...DEFAULTS, ...options };
  const t0 = performance.now();
  const tick = on.tick ?? (() => Promise.resolve());
  const info = await setBackend(o.backend);
  on.backend?.(info);
  const data = toyData(o);
  const keys = { init: foldIn(randomKey(o.seed), 1), supernet: foldIn(randomKey(o.seed), 2) };
  const paths = foldIn(randomKey(o.seed), 3);
  const losses = { pretrain: [], supernet: [], tune: [] };
  const record = async (phase, i, loss) => {
    const value = await loss.item();
    losses[phase].push(value);
    on.step?.(phase, i, value);
    await tick();
  };

  // 1. A full-attention base model.
  const base = modelConfig({
    vocab: 256,
    width: o.width,
    heads: 2,
    kvHeads: 1,
    blocks: repeat(block("mha"), o.layers),
  });
  const train = async (phase, cfg, params, steps, stream, peak) => {
    on.phase?.(phase, steps);
    const opt = adamw({ lr: schedule(peak, steps), clipNorm: 1 });
    const step = makeTrainStep((p, b) => lossFn(p, b, cfg), opt);
    let state = { params, opt: opt.init(params), step: 0 };
    for (let i = 0; i < steps; i++) {
      const [next, loss] = await step(state, data.batch(stream, i));
      state = next;
      await record(phase, i, loss);
    }
    return state.params;
  };
  const pretrained = await train("pretrain", base, initModel(keys.init, base), o.pretrain, 1, 3e-3);
  const parameters = paramCount(pretrained);

  // 2. A once-for-all supernet over it: every layer holds mha, swa and jet; MLPs frozen.
  const candidates = [block("mha"), block("swa", { window: o.window }), block("jet")];
  const space = base.blocks.map(() => candidates);
  on.phase?.("supernet", o.supernet);
  let sn = initSupernet(keys.supernet, base, space, { from: pretrained });
  const trainer = supernetTrainer({ lr: schedule(3e-3, o.supernet), clipNorm: 1 });
  let snOpt = trainer.init(sn);
  for (let i = 0; i < o.supernet; i++) {
    const r = await trainer.step(sn, snOpt, { ...data.batch(2, i), key: foldIn(paths, i) });
    [sn, snOpt] = [r.supernet, r.opt];
    await record("supernet", i, r.loss);
  }

  // 3. PostNAS: beam search, at most one mha layer, score = held-out loss - recall accuracy.
  const labels = candidates.map(label);
  const objective = pathObjective(sn, data.heldOut(), { accuracy: 1 });
  on.phase?.("search", candidates.length + (o.layers - 1) * 2 * candidates.length);
  const visits = [];
  const found = await postnas(space, objective, {
    strategy: "beam",
    beamWidth: 2,
    baseline: space.map(() => candidates[2]),
    feasible: maxCount((b) => b.attn === "mha", 1),
    onVisit: (v) => {
      const ev = objective.evaluation(v.config);
      visits.push({ layer: v.layer, candidate: v.candidate, score: v.score, feasible: v.feasible, ...ev });
      on.visit?.(v, ev, labels);
    },
  });
  const choice = found.choice.map(label);

  // 4. Post-tune the chosen hybrid.
  const sub = extractSubnet(sn, found.choice);
  const before = await evaluateModel(sub.params, sub.config, data.heldOut());
  on.evaluation?.("before", before);
  const tuned = await train("tune", sub.config, sub.params, o.tune, 3, 1e-3);
  const after = await evaluateModel(tuned, sub.config, data.heldOut());
  on.evaluation?.("after", after);

  // 5. Greedy continuation of a held-out prompt that ends in a recall query.
  on.phase?.("sample", o.tokens);
  const prompt = await data.prompt();
  const [ids] = await generate(tuned, sub.config, prompt.ids, { maxNewTokens: o.tokens });
  const sample = {
    prompt: decodeBytes(prompt.ids),
    ids,
    text: decodeBytes(ids),
    expect: String.fromCharCode(prompt.expect),
    recalled: ids[0] === prompt.expect,
  };
  on.sample?.(sample);
  const stateAt = (config) => totalStateBytes(config, { cfg: sub.config, context: 4096 });
  return {
    backend: { name: info.name, adapter: info.adapter },
    parameters,
    losses,
    visits,
    choice,
    score: found.score,
    before,
    after,
    sample,
    stateBytes: { hybrid: stateAt(found.choice), allMha: stateAt(repeat(candidates[0], o.layers)) },
    seconds: (performance.now() - t0) / 1000,
  };
}

function repeat(spec, n) {
  return Array.from({ length: n }, () => spec);
}
