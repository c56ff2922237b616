// `tune`: post-trains a saved model (e.g. the one search chose) and reports perplexity before and after.

import { paramCount } from "../../mod.ts";
import { COMMON, int, num, str } from "../args.ts";
import { unwatchInterrupt, watchInterrupt } from "../loop.ts";
import { blockLabel, DATA, LOG, SAMPLE } from "../options.ts";
import { type Ctx, describeEval, evaluate, trainModel } from "../phases.ts";
import { makeOut, say } from "../progress.ts";
import { checkpointOf, FILES, loadCheckpoint, makeRunDir, saveCheckpoint } from "../rundir.ts";
import {
  dataFor,
  defineCommand,
  promptOf,
  sampleAndPrint,
  startBackend,
  stopIfInterrupted,
  writeConfig,
  writeReport,
} from "../session.ts";

const specs = {
  ...COMMON,
  checkpoint: str(null, "the model to post-train", { meta: "FILE" }),
  run: str(null, "post-train the checkpoint of this run directory (e.g. from search)", { meta: "DIR" }),
  steps: int(100, "training steps"),
  lr: num(1e-3, "peak learning rate (AdamW, linear warmup, cosine decay to lr/10)"),
  warmup: int(20, "learning-rate warmup steps"),
  ...DATA,
  ...SAMPLE,
  ...LOG,
};

/** The tune command. */
export const tune = defineCommand({
  name: "tune",
  summary: "post-train a saved model and compare held-out perplexity before and after",
  description: "Loads --checkpoint FILE or --run DIR, trains it on the data it was trained on (or on --data), and\n" +
    "writes a new run directory with the tuned checkpoint, metrics.jsonl and report.html.",
  specs,
  async run(o, given) {
    const out = makeOut(o.quiet);
    const base = await loadCheckpoint(checkpointOf(o));
    const data = await dataFor(o, given, base.data);
    const info = await startBackend(out, o.backend);
    const dir = await makeRunDir(o.out, "tune");
    await writeConfig(dir, "tune", o);
    const { config } = base;
    say(out, `data: ${data.label}`);
    say(out, `model: ${config.blocks.map(blockLabel).join(", ")}, ${paramCount(base.params)} parameters`);
    say(out, `run directory: ${dir}`);
    const ctx: Ctx = { out, dir, data, seed: o.seed, logEvery: o.logEvery };
    const before = await evaluate(ctx, base.params, config);
    console.log(`before: ${describeEval(before)}`);
    watchInterrupt();
    const r = await trainModel(ctx, {
      label: "tune",
      stream: "tune",
      config,
      params: base.params,
      opt: null,
      start: 0,
      total: o.steps,
      lr: o.lr,
      warmup: o.warmup,
      decaySteps: o.steps,
    });
    const saved = { config, params: r.params, step: r.step, data: data.meta, opt: null };
    await stopIfInterrupted(ctx, "post-training", () => saved, "");
    unwatchInterrupt();
    const ckpt = `${dir}/${FILES.checkpoint}`;
    await saveCheckpoint(ckpt, saved);
    const after = await evaluate(ctx, r.params, config);
    console.log(`after:  ${describeEval(after)}`);
    const sample = await sampleAndPrint(out, { config, params: r.params }, await promptOf(data, o.prompt), o.tokens);
    const summary: [string, string][] = [
      ["model", config.blocks.map(blockLabel).join(", ")],
      ["proxy perplexity", `${before.perplexity.toFixed(3)} -> ${after.perplexity.toFixed(3)}`],
      ["backend", `${info.name}${info.adapter ? ` (${info.adapter})` : ""}`],
      ["run directory", dir],
    ];
    await writeReport(dir, { title: `jetfold tune: ${config.blocks.map(blockLabel).join(", ")}`, summary, sample });
    console.log(`checkpoint: ${ckpt}`);
  },
});
