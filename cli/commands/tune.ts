// `tune`: post-trains a saved model (e.g. the one search chose) and reports perplexity before and after.

import { paramCount } from "../../mod.ts";
import { COMMON, num, str } from "../args.ts";
import { interrupts } from "../interrupt.ts";
import { checkMemory, evalBytes, generateBytes, trainBytes } from "../limits.ts";
import { blockLabel, DATA, LOG, SAMPLE, stepCount } from "../options.ts";
import { type Ctx, describeEval, evaluate, trainModel } from "../phases.ts";
import { makeOut, say } from "../progress.ts";
import { loadCheckpoint } from "../checkpoint.ts";
import { checkpointOf, FILES, planRunDir } from "../rundir.ts";
import { openData } from "../data.ts";
import { InputError } from "../input.ts";
import { checkBuffers, type LoadedModel, loadModel, MODEL_SOURCE, tokenizerOf } from "../model.ts";
import {
  dataFor,
  defineCommand,
  inRun,
  promptLength,
  promptOf,
  refuseToyOptions,
  releaseSaved,
  sampleAndPrint,
  startBackend,
  stopIfInterrupted,
  writeReport,
} from "../session.ts";

const specs = {
  ...COMMON,
  checkpoint: str(null, "the model to post-train", { meta: "FILE" }),
  run: str(null, "post-train the checkpoint of this run directory (e.g. from search)", { meta: "DIR" }),
  ...MODEL_SOURCE,
  steps: stepCount(100, "training steps"),
  lr: num(1e-3, "peak learning rate (AdamW, linear warmup, cosine decay to lr/10)"),
  warmup: stepCount(20, "learning-rate warmup steps"),
  ...DATA,
  ...SAMPLE,
  ...LOG,
};

/** The tune command. */
export const tune = defineCommand({
  name: "tune",
  summary: "post-train a saved model and compare held-out perplexity before and after",
  description: "Loads --checkpoint FILE or --run DIR, trains it on the data it was trained on (or on --data), and\n" +
    "(for --model SOURCE, a Hugging Face directory or Hub repo id: on --data through its tokenizer)\n" +
    "writes a new run directory with the tuned checkpoint, metrics.jsonl and report.html. Ctrl-C or SIGTERM\n" +
    "finishes the current step and saves the model so far as the checkpoint.",
  specs,
  async prepare(o, given) {
    let base, data, loaded: LoadedModel | null = null;
    if (o.model !== null) {
      if (o.checkpoint !== null || o.run !== null) throw new InputError("give --model, --checkpoint or --run, not two");
      const m = loaded = await loadModel(o.model, makeOut(o.quiet));
      const codec = { tokenizer: tokenizerOf(m, "--data"), vocab: m.config.vocab, model: m.ref };
      base = { config: m.config, params: m.params, data: null };
      data = await openData(o, codec);
    } else {
      base = await loadCheckpoint(checkpointOf(o));
      data = await dataFor(o, given, base.data);
    }
    refuseToyOptions(given, data);
    const plan = await planRunDir(o.out, "tune");
    const { config } = base;
    const { batch, seqLen } = data.meta;
    checkMemory(
      `a training step (--batch ${batch} x --seq-len ${seqLen})`,
      trainBytes(config, { batch, seqLen }),
      "--batch or --seq-len",
    );
    checkMemory(
      `evaluation (--eval-batch ${o.evalBatch} x --seq-len ${seqLen})`,
      evalBytes(config, { batch: o.evalBatch, seqLen }),
      "--eval-batch",
    );
    const prompt = promptLength(o.prompt, seqLen);
    checkMemory(`generating --tokens ${o.tokens}`, generateBytes(config, { prompt, tokens: o.tokens }), "--tokens");

    return async () => {
      const out = makeOut(o.quiet);
      const info = await startBackend(out, o.backend);
      if (loaded !== null) checkBuffers(loaded, info, { batch: Math.max(batch, o.evalBatch), tokens: seqLen });
      interrupts.hold();
      await inRun(plan, o, async (run) => {
        say(out, `data: ${data.label}`);
        say(out, `model: ${config.blocks.map(blockLabel).join(", ")}, ${paramCount(base.params)} parameters`);
        say(out, `run directory: ${run.dir}`);
        const ctx: Ctx = { out, run, data, seed: o.seed, logEvery: o.logEvery };
        const before = await evaluate(ctx, base.params, config);
        console.log(`before: ${describeEval(before)}`);
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
        const ckpt = run.file(FILES.checkpoint);
        await run.saveCheckpoint(saved);
        releaseSaved(ckpt);
        const after = await evaluate(ctx, r.params, config);
        console.log(`after:  ${describeEval(after)}`);
        const sample = await sampleAndPrint(
          out,
          { config, params: r.params },
          await promptOf(data, o.prompt),
          o.tokens,
          data.tokenizer,
        );
        const summary: [string, string][] = [
          ["model", config.blocks.map(blockLabel).join(", ")],
          ["proxy perplexity", `${before.perplexity.toFixed(3)} -> ${after.perplexity.toFixed(3)}`],
          ["backend", `${info.name}${info.adapter ? ` (${info.adapter})` : ""}`],
          ["run directory", run.dir],
        ];
        await writeReport(run, { title: `jetfold tune: ${config.blocks.map(blockLabel).join(", ")}`, summary, sample });
        console.log(`checkpoint: ${ckpt}`);
      });
    };
  },
});
