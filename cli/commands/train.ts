// `train`: trains one model (any block list) on toy data or a text file; a signal saves, --resume continues.

import { block, type BlockSpec, initModel, paramCount } from "../../mod.ts";
import { COMMON, CONFIG_LIMIT, flagOf, InputError, num, readConfig, str, type Values } from "../args.ts";
import { readJsonFile } from "../input.ts";
import { openData, reopenData } from "../data.ts";
import { checkBuffers, type LoadedModel, loadModel, MODEL_SOURCE, modelSummary, tokenizerOf } from "../model.ts";
import { Interrupted, interrupts } from "../interrupt.ts";
import { checkMemory, evalBytes, generateBytes, trainBytes } from "../limits.ts";
import { blockLabel, configFrom, DATA, LOG, MODEL, parseBlocks, refuseIgnored, SAMPLE, stepCount } from "../options.ts";
import { type Ctx, describeEval, evaluate, keyFor, trainModel } from "../phases.ts";
import { makeOut, say } from "../progress.ts";
import { loadCheckpoint, type Saved } from "../checkpoint.ts";
import { FILES, planRunDir, reopenRun, type RunDir } from "../rundir.ts";
import {
  configRecord,
  defineCommand,
  inRun,
  promptLength,
  promptOf,
  refuseToyOptions,
  releaseSaved,
  sampleAndPrint,
  startBackend,
  within,
  writeReport,
} from "../session.ts";

const specs = {
  ...COMMON,
  steps: stepCount(500, "train until this many steps are done (with --resume: the new total)", {
    min: 1,
    defaultText: "500; with --resume the run's planned total",
  }),
  resume: str(null, "continue the run in this directory from its checkpoint: same data order, optimizer state", {
    meta: "DIR",
  }),
  blocks: str(null, "the layers, e.g. mha,swa:32,jet,linear+conv+gated", { defaultText: "layers x mha", meta: "LIST" }),
  ...MODEL,
  ...MODEL_SOURCE,
  lr: num(3e-3, "peak learning rate (AdamW, linear warmup, cosine decay to lr/10)"),
  warmup: stepCount(20, "learning-rate warmup steps"),
  decaySteps: stepCount(null, "step at which the cosine decay reaches lr/10", { min: 1, defaultText: "steps" }),
  ...DATA,
  ...SAMPLE,
  ...LOG,
};

// What may change when resuming; everything else is fixed by the run's config.json.
const RESUMABLE = new Set(["resume", "steps", "backend", "quiet", "logEvery", "tokens", "prompt", "evalBatch"]);

/** The train command. */
export const train = defineCommand({
  name: "train",
  summary: "train a model of any block list; Ctrl-C saves a checkpoint, --resume continues it",
  description: "Trains a model with AdamW on toy data or --data FILE (UTF-8 text as bytes, the last tenth held\n" +
    "out), or fine-tunes --model SOURCE (a Hugging Face directory or Hub repo id) on --data through its\n" +
    "tokenizer. The run directory gets config.json, metrics.jsonl, report.html and checkpoint.safetensors with the\n" +
    "params, the optimizer state, the step and the data it reads, so `train --resume DIR` continues exactly\n" +
    "where it stopped (same batches in the same order, same optimizer moments). Ctrl-C or SIGTERM finishes\n" +
    "the current step and saves that checkpoint.",
  specs,
  async prepare(o, given) {
    // A resumed run takes its options (quiet and log-every included) from its config.json first.
    const saved = o.resume === null ? null : await readRun(o.resume, o, given);
    const base = saved === null && o.model !== null ? await pretrained(o, given) : null;
    const config = saved?.config ?? base?.config ?? fresh(o, given);
    const codec = base === null
      ? undefined
      : { tokenizer: tokenizerOf(base, "--data"), vocab: config.vocab, model: base.ref };
    const data = saved?.data ? await reopenData(saved.data, o.evalBatch) : await openData(o, codec);
    refuseToyOptions(given, data);
    const plan = o.resume === null ? await planRunDir(o.out, "train") : null;
    o.decaySteps ??= o.steps;
    const { batch, seqLen } = data.meta;
    const sizes = "the model's sizes";
    checkMemory(
      `a training step (--batch ${batch} x --seq-len ${seqLen})`,
      trainBytes(config, { batch, seqLen }),
      `--batch, --seq-len or ${sizes}`,
    );
    checkMemory(
      `evaluation (--eval-batch ${o.evalBatch} x --seq-len ${seqLen})`,
      evalBytes(config, { batch: o.evalBatch, seqLen }),
      `--eval-batch or ${sizes}`,
    );
    const prompt = promptLength(o.prompt, seqLen);
    checkMemory(`generating --tokens ${o.tokens}`, generateBytes(config, { prompt, tokens: o.tokens }), "--tokens");
    const start = saved?.step ?? 0;

    return async () => {
      const out = makeOut(o.quiet);
      const info = await startBackend(out, o.backend);
      if (base !== null) checkBuffers(base, info, { batch: Math.max(batch, o.evalBatch), tokens: seqLen });
      const params = saved?.params ?? base?.params ?? initModel(keyFor(o.seed, "init"), config);
      if (start >= o.steps) {
        console.log(`already at step ${start} of ${o.steps}; nothing to train (raise --steps to continue)`);
        return;
      }
      interrupts.hold();
      const body = async (run: RunDir) => {
        say(out, `data: ${data.label}`);
        say(
          out,
          base !== null
            ? `model: ${modelSummary(base)}`
            : `model: ${config.blocks.map(blockLabel).join(", ")}, width ${config.width}, ${
              paramCount(params)
            } parameters`,
        );
        say(out, `run directory: ${run.dir}${start > 0 ? ` (resuming at step ${start})` : ""}`);
        const ctx: Ctx = { out, run, data, seed: o.seed, logEvery: o.logEvery };
        const r = await trainModel(ctx, {
          label: "train",
          stream: "train",
          config,
          params,
          opt: saved?.opt ?? null,
          start,
          total: o.steps,
          lr: o.lr,
          warmup: o.warmup,
          decaySteps: o.decaySteps!,
        });
        const ckpt = run.file(FILES.checkpoint);
        await run.saveCheckpoint({ config, params: r.params, opt: r.opt, step: r.step, data: data.meta });
        if (r.interrupted) {
          console.log(
            `interrupted at step ${r.step} of ${o.steps}; saved ${ckpt} (params, optimizer state, data position)`,
          );
          console.log(`continue with: deno run -A cli.ts train --resume ${run.dir}`);
          throw new Interrupted();
        }
        releaseSaved(`${ckpt} at step ${r.step}`);
        const ev = await evaluate(ctx, r.params, config);
        const last = r.losses.at(-1)?.[1];
        console.log(`step ${r.step}: training loss ${last?.toFixed(4) ?? "-"}, ${describeEval(ev)}`);
        const model = { config, params: r.params };
        const sample = await sampleAndPrint(out, model, await promptOf(data, o.prompt), o.tokens, data.tokenizer);
        const summary: [string, string][] = [
          ["model", config.blocks.map(blockLabel).join(", ")],
          ["steps", String(r.step)],
          ["held-out", describeEval(ev)],
          ["backend", `${info.name}${info.adapter ? ` (${info.adapter})` : ""}`],
          ["run directory", run.dir],
        ];
        const title = `jetfold train: ${config.blocks.map(blockLabel).join(", ")}`;
        await writeReport(run, { title, summary, sample });
        console.log(`checkpoint: ${ckpt}`);
        console.log(`report: ${run.file(FILES.report)}`);
      };
      if (plan !== null) await inRun(plan, o, body);
      else await within(await reopenRun(o.resume!, start, configRecord("train", o)), body);
    };
  },
});

// The model to fine-tune, from --model: its sizes and layers are fixed, so the options that set them are refused.
function pretrained(o: Values<typeof specs>, given: ReadonlySet<string>): Promise<LoadedModel> {
  const sizes = ["blocks", "width", "heads", "kvHeads", "ffnHidden", "layers", "window"];
  refuseIgnored(given, sizes, `with --model: ${o.model} fixes the model`);
  return loadModel(o.model!, makeOut(o.quiet));
}

// The model of a new run: --blocks, or --layers x mha; the two must agree, and --window must be used.
function fresh(o: Values<typeof specs>, given: ReadonlySet<string>) {
  let blocks: BlockSpec[], usesWindow = false;
  const layers = o.layers;
  if (o.blocks === null) {
    blocks = Array.from({ length: layers }, () => block("mha"));
  } else {
    ({ blocks, usesWindow } = parseBlocks(o.blocks, o.window));
    if (given.has("layers") && layers !== blocks.length) {
      throw new InputError(
        `--layers ${layers} disagrees with --blocks, which lists ${blocks.length}; give one of them`,
      );
    }
    o.layers = blocks.length; // config.json records the layers built
  }
  if (!usesWindow) {
    const why = o.blocks === null
      ? "without --blocks (every layer is mha)"
      : "here: no swa layer in --blocks takes its size from it (swa:N sets its own)";
    refuseIgnored(given, ["window"], why);
  }
  return configFrom(o, blocks);
}

// Fills `o` from the run's config.json (explicit RESUMABLE flags win) and loads its full checkpoint.
async function readRun(dir: string, o: Values<typeof specs>, given: ReadonlySet<string>): Promise<Saved> {
  const changed = [...given].filter((k) => !RESUMABLE.has(k));
  if (changed.length > 0) {
    throw new InputError(`--resume continues a run as configured; ${changed.map(flagOf).join(", ")} cannot change`);
  }
  const path = `${dir}/${FILES.config}`;
  const command = ((await readJsonFile(path, "--resume", CONFIG_LIMIT)) as { command?: unknown } | null)?.command;
  if (command !== "train") {
    throw new InputError(`--resume ${dir}: not a train run (its config.json says command ${JSON.stringify(command)})`);
  }
  const fixed = await readConfig(path, specs).catch((e) => {
    throw new InputError((e as Error).message.replace(/^--config/, "--resume"));
  });
  for (const [k, v] of Object.entries(fixed)) if (!given.has(k)) (o as Record<string, unknown>)[k] = v;
  const ckpt = `${dir}/${FILES.checkpoint}`;
  try {
    await Deno.stat(ckpt);
  } catch {
    throw new InputError(
      `--resume ${dir}: the run has no checkpoint yet (it stopped before saving one); start it anew`,
    );
  }
  const saved = await loadCheckpoint(ckpt);
  if (saved.opt === null || saved.data === null) {
    throw new InputError(`--resume ${dir}: the checkpoint has no optimizer state or data position; it cannot resume`);
  }
  return saved;
}
