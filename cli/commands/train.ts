// `train`: trains one model (any block list) on toy data or a text file; Ctrl-C saves, --resume continues.

import { block, initModel, paramCount } from "../../mod.ts";
import { COMMON, flagOf, InputError, int, num, readConfig, readJsonFile, str } from "../args.ts";
import { openData, reopenData } from "../data.ts";
import { Interrupted, unwatchInterrupt, watchInterrupt } from "../loop.ts";
import { blockLabel, configFrom, DATA, LOG, MODEL, parseBlocks, SAMPLE } from "../options.ts";
import { type Ctx, describeEval, evaluate, keyFor, trainModel } from "../phases.ts";
import { makeOut, say } from "../progress.ts";
import { FILES, loadCheckpoint, makeRunDir, saveCheckpoint, type Saved } from "../rundir.ts";
import { defineCommand, promptOf, sampleAndPrint, startBackend, writeConfig, writeReport } from "../session.ts";

const specs = {
  ...COMMON,
  steps: int(500, "train until this many steps are done (with --resume: the new total)", {
    min: 1,
    defaultText: "500; with --resume the run's planned total",
  }),
  resume: str(null, "continue the run in this directory from its checkpoint: same data order, optimizer state", {
    meta: "DIR",
  }),
  blocks: str(null, "the layers, e.g. mha,swa:32,jet,linear+conv+gated", { defaultText: "layers x mha", meta: "LIST" }),
  ...MODEL,
  lr: num(3e-3, "peak learning rate (AdamW, linear warmup, cosine decay to lr/10)"),
  warmup: int(20, "learning-rate warmup steps"),
  decaySteps: int(null, "step at which the cosine decay reaches lr/10", { min: 1, defaultText: "steps" }),
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
    "out). The run directory gets config.json, metrics.jsonl, report.html and checkpoint.safetensors with the\n" +
    "params, the optimizer state, the step and the data it reads, so `train --resume DIR` continues exactly\n" +
    "where it stopped (same batches in the same order, same optimizer moments).",
  specs,
  async run(o, given) {
    const out = makeOut(o.quiet);
    const saved = o.resume === null ? null : await resumeRun(o.resume, o, given);
    const [start, opt] = saved ? [saved.step, saved.opt] : [0, null];
    let dir = o.resume ?? "";
    const data = saved?.data ? await reopenData(saved.data, o.evalBatch) : await openData(o);
    const config = saved?.config ??
      configFrom(
        o,
        o.blocks === null ? Array.from({ length: o.layers }, () => block("mha")) : parseBlocks(o.blocks, o.window),
      );
    const info = await startBackend(out, o.backend);
    const params = saved?.params ?? initModel(keyFor(o.seed, "init"), config);
    o.decaySteps ??= o.steps;
    if (o.resume === null) dir = await makeRunDir(o.out, "train");
    await writeConfig(dir, "train", o);
    say(out, `data: ${data.label}`);
    say(
      out,
      `model: ${config.blocks.map(blockLabel).join(", ")}, width ${config.width}, ${paramCount(params)} parameters`,
    );
    say(out, `run directory: ${dir}${start > 0 ? ` (resuming at step ${start})` : ""}`);
    if (start >= o.steps) {
      console.log(`already at step ${start} of ${o.steps}; nothing to train (raise --steps to continue)`);
      return;
    }
    const ctx: Ctx = { out, dir: dir, data, seed: o.seed, logEvery: o.logEvery };
    watchInterrupt();
    const r = await trainModel(ctx, {
      label: "train",
      stream: "train",
      config,
      params,
      opt,
      start,
      total: o.steps,
      lr: o.lr,
      warmup: o.warmup,
      decaySteps: o.decaySteps,
    });
    const ckpt = `${dir}/${FILES.checkpoint}`;
    await saveCheckpoint(ckpt, { config, params: r.params, opt: r.opt, step: r.step, data: data.meta });
    unwatchInterrupt();
    if (r.interrupted) {
      console.log(
        `interrupted at step ${r.step} of ${o.steps}; saved ${ckpt} (params, optimizer state, data position)`,
      );
      console.log(`continue with: deno run -A cli.ts train --resume ${dir}`);
      throw new Interrupted();
    }
    const ev = await evaluate(ctx, r.params, config);
    const last = r.losses.at(-1)?.[1];
    console.log(`step ${r.step}: training loss ${last?.toFixed(4) ?? "-"}, ${describeEval(ev)}`);
    const sample = await sampleAndPrint(out, { config, params: r.params }, await promptOf(data, o.prompt), o.tokens);
    const summary: [string, string][] = [
      ["model", config.blocks.map(blockLabel).join(", ")],
      ["steps", String(r.step)],
      ["held-out", describeEval(ev)],
      ["backend", `${info.name}${info.adapter ? ` (${info.adapter})` : ""}`],
      ["run directory", dir],
    ];
    await writeReport(dir, { title: `jetfold train: ${config.blocks.map(blockLabel).join(", ")}`, summary, sample });
    console.log(`checkpoint: ${ckpt}`);
    console.log(`report: ${dir}/${FILES.report}`);
  },
});

// Fills `o` from the run's config.json (explicit RESUMABLE flags win) and loads its full checkpoint.
async function resumeRun(dir: string, o: Record<string, unknown>, given: ReadonlySet<string>): Promise<Saved> {
  const changed = [...given].filter((k) => !RESUMABLE.has(k));
  if (changed.length > 0) {
    throw new InputError(`--resume continues a run as configured; ${changed.map(flagOf).join(", ")} cannot change`);
  }
  const path = `${dir}/${FILES.config}`;
  const command = ((await readJsonFile(path, "--resume")) as { command?: unknown } | null)?.command;
  if (command !== "train") {
    throw new InputError(`--resume ${dir}: not a train run (its config.json says command ${JSON.stringify(command)})`);
  }
  const fixed = await readConfig(path, specs).catch((e) => {
    throw new InputError((e as Error).message.replace(/^--config/, "--resume"));
  });
  for (const [k, v] of Object.entries(fixed)) if (!given.has(k)) o[k] = v;
  const saved = await loadCheckpoint(`${dir}/${FILES.checkpoint}`);
  if (saved.opt === null || saved.data === null) {
    throw new InputError(`--resume ${dir}: the checkpoint has no optimizer state or data position; it cannot resume`);
  }
  return saved;
}
