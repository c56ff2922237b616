// `demo`: the whole Jet-Nemotron story on toy data: warmup, PostNAS, post-tune, generation, summary.

import { block, extractSubnet, totalStateBytes } from "../../mod.ts";
import { COMMON, int, num } from "../args.ts";
import { openData } from "../data.ts";
import { unwatchInterrupt, watchInterrupt } from "../loop.ts";
import { DATA, LOG, MODEL, SAMPLE, SEARCH } from "../options.ts";
import { type Ctx, describeEval, evaluate, trainModel } from "../phases.ts";
import { search, WARMUP, warmup } from "../pipeline.ts";
import { makeOut, paint, say } from "../progress.ts";
import { FILES, makeRunDir, saveCheckpoint } from "../rundir.ts";
import {
  bytes,
  defineCommand,
  promptOf,
  sampleAndPrint,
  startBackend,
  stopIfInterrupted,
  writeConfig,
  writeReport,
} from "../session.ts";
import { blockLabel } from "../options.ts";

const specs = {
  ...COMMON,
  steps: int(null, "shorthand: every training phase takes this many steps", { defaultText: "per phase" }),
  ...WARMUP,
  tuneSteps: int(100, "steps of post-training the chosen model"),
  tuneLr: num(1e-3, "peak learning rate of post-training"),
  ...MODEL,
  ...DATA,
  ...SEARCH,
  ...SAMPLE,
  ...LOG,
};

/** The demo. */
export const demo = defineCommand({
  name: "demo",
  summary: "the whole story in a few minutes: warmup, PostNAS, post-tune, generation",
  description: "Pretrains a small full-attention model on toy data (key-value recall mixed with bigram text),\n" +
    "trains a once-for-all supernet over it, runs PostNAS to choose each layer's block under a budget of\n" +
    "full-attention layers, post-trains the chosen model, samples from it, and writes a run directory\n" +
    "(config.json, checkpoint.safetensors, metrics.jsonl, search.json, report.html).",
  specs,
  async run(o) {
    if (o.steps !== null) [o.pretrainSteps, o.supernetSteps, o.tuneSteps] = [o.steps, o.steps, o.steps];
    const out = makeOut(o.quiet);
    const t0 = performance.now();
    const data = await openData(o);
    const info = await startBackend(out, o.backend);
    const dir = await makeRunDir(o.out, "demo");
    await writeConfig(dir, "demo", o);
    say(out, `data: ${data.label}`);
    say(out, `run directory: ${dir}`);
    const ctx: Ctx = { out, dir, data, seed: o.seed, logEvery: o.logEvery };
    const phase = (n: number, title: string) => say(out, `\n${paint(out, "bold", `[${n}/4] ${title}`)}`);
    watchInterrupt();

    phase(1, "warmup: pretrain a full-attention model, then a once-for-all supernet over it");
    const { supernet, baseConfig, space } = await warmup(ctx, o, null);

    phase(2, "PostNAS: choose each layer's block");
    const { choice, record } = await search(ctx, supernet, space, o);

    phase(3, "post-tune: train the chosen model");
    const sub = extractSubnet(supernet, choice);
    const before = await evaluate(ctx, sub.params, sub.config);
    say(out, `  before: ${describeEval(before)}`);
    const tuned = await trainModel(ctx, {
      label: "tune",
      stream: "tune",
      config: sub.config,
      params: sub.params,
      opt: null,
      start: 0,
      total: o.tuneSteps,
      lr: o.tuneLr,
      warmup: o.warmup,
      decaySteps: o.tuneSteps,
    });
    const model = { config: sub.config, params: tuned.params };
    const saved = { ...model, step: tuned.step, data: data.meta, opt: null };
    await stopIfInterrupted(ctx, "post-training", () => saved, " (sample from it with generate)");
    unwatchInterrupt();
    const after = await evaluate(ctx, model.params, model.config);
    say(out, `  after:  ${describeEval(after)}`);
    await saveCheckpoint(`${dir}/${FILES.checkpoint}`, saved);

    phase(4, "generation: greedy continuation of a held-out prompt");
    const sample = await sampleAndPrint(out, model, await promptOf(data, o.prompt), o.tokens);

    const stateOf = (blocks: typeof choice) => totalStateBytes(blocks, { cfg: baseConfig, context: o.context });
    const mhaState = stateOf(baseConfig.blocks.map(() => block("mha")));
    const chosenState = stateOf(choice);
    const seconds = (performance.now() - t0) / 1000;
    const summary: [string, string][] = [
      ["configuration", choice.map(blockLabel).join(", ")],
      [
        `decoding state at ${o.context} tokens`,
        `${bytes(chosenState)} vs ${bytes(mhaState)} for all-mha (${(mhaState / chosenState).toFixed(1)}x smaller)`,
      ],
      ["proxy perplexity", `${after.perplexity.toFixed(3)} (before post-tune ${before.perplexity.toFixed(3)})`],
      [
        "retrieval accuracy",
        Number.isNaN(after.accuracy) ? "n/a (no recall queries in the data)" : after.accuracy.toFixed(3),
      ],
      ["backend", `${info.name}${info.adapter ? ` (${info.adapter})` : ""}`],
      ["time", `${seconds.toFixed(0)} s`],
      ["run directory", dir],
    ];
    await writeReport(dir, {
      title: `jetfold demo: ${choice.map(blockLabel).join(", ")}`,
      summary,
      search: record,
      sample,
    });
    console.log(`\n${paint(out, "bold", "summary")}`);
    const w = Math.max(...summary.map(([k]) => k.length));
    for (const [k, v] of summary) console.log(`  ${k.padEnd(w)}  ${v}`);
    console.log(`  ${"report".padEnd(w)}  ${dir}/${FILES.report}`);
  },
});
