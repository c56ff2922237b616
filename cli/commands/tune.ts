// `tune`: post-trains a saved model (e.g. the one search chose) and reports perplexity before and after.

import { type DistillWeights, type ModelConfig, paramCount } from "../../mod.ts";
import { COMMON, num, str } from "../args.ts";
import { interrupts } from "../interrupt.ts";
import { checkMemory, evalBytes, generateBytes, trainBytes } from "../limits.ts";
import {
  blockLabel,
  DATA,
  DISTILL,
  distillLabel,
  EVAL,
  LOG,
  needsTeacher,
  parseDistill,
  plainTraining,
  refuseIgnored,
  SAMPLE,
  stepCount,
} from "../options.ts";
import {
  type Ctx,
  describeAnswers,
  describeEval,
  evaluate,
  evaluateEvalSet,
  loadEvalSet,
  trainModel,
} from "../phases.ts";
import { makeOut, say } from "../progress.ts";
import { loadCheckpoint, type Saved } from "../checkpoint.ts";
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
  ...DISTILL,
  teacher: str(
    null,
    "with --distill mse or kl: the frozen teacher, a checkpoint file, a run directory (e.g. the model\n" +
      "the search started from), or a Hugging Face directory or Hub repo id",
    { meta: "PATH" },
  ),
  finetuneSteps: stepCount(0, "after distilling: steps of plain next-token training of every weight"),
  ...DATA,
  ...EVAL,
  ...SAMPLE,
  ...LOG,
};

// A teacher is a jetfold checkpoint file, a run directory (its checkpoint), or a Hugging Face model: a directory
// with config.json and no jetfold checkpoint, or a Hub repo id ("org/name[@revision]") that is not a local path.
async function loadTeacher(path: string, quiet: boolean): Promise<Pick<Saved, "config" | "params">> {
  const stat = await Deno.stat(path).catch(() => null);
  const has = (file: string) => Deno.stat(`${path}/${file}`).then((s) => s.isFile, () => false);
  const hubId = stat === null && /^[\w.-]+\/[\w.-]+(@[\w./-]+)?$/.test(path) && !path.startsWith(".");
  if (hubId || (stat?.isDirectory && !(await has(FILES.checkpoint)) && (await has("config.json")))) {
    const m = await loadModel(path, makeOut(quiet));
    return { config: m.config, params: m.params };
  }
  return await loadCheckpoint(stat?.isDirectory ? checkpointOf({ checkpoint: null, run: path }) : path);
}

function checkTeacher(teacher: ModelConfig, student: ModelConfig, weights: DistillWeights): void {
  if (teacher.vocab !== student.vocab) {
    throw new InputError(`--teacher has a vocabulary of ${teacher.vocab} tokens, the model ${student.vocab}`);
  }
  if ((weights.mse ?? 0) > 0 && teacher.blocks.length !== student.blocks.length) {
    throw new InputError(
      `--distill mse compares layer outputs, but --teacher has ${teacher.blocks.length} layers and the model ` +
        `${student.blocks.length}`,
    );
  }
  if ((weights.mse ?? 0) > 0 && teacher.width !== student.width) {
    throw new InputError(
      `--distill mse compares layer outputs, but --teacher's width is ${teacher.width}, the model's ${student.width}`,
    );
  }
}

/** The tune command. */
export const tune = defineCommand({
  name: "tune",
  summary: "post-train a saved model and compare held-out perplexity before and after",
  description: "Loads --checkpoint FILE or --run DIR, trains it on the data it was trained on (or on --data), and\n" +
    "(for --model SOURCE, a Hugging Face directory or Hub repo id: on --data through its tokenizer)\n" +
    "writes a new run directory with the tuned checkpoint, metrics.jsonl and report.html. With --distill mse or kl\n" +
    "it learns from --teacher (MLPs frozen), then takes --finetune-steps of plain training. Ctrl-C or SIGTERM\n" +
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
    const { config } = base;
    const weights = parseDistill(o.distill ?? "ce");
    let teacher: Pick<Saved, "config" | "params"> | null = null;
    if (needsTeacher(weights)) {
      if (o.teacher === null) {
        throw new InputError(
          `--distill ${o.distill} learns from a teacher: give --teacher FILE or DIR (e.g. the model the search started from)`,
        );
      }
      teacher = await loadTeacher(o.teacher, o.quiet);
      checkTeacher(teacher.config, config, weights);
    } else {
      refuseIgnored(given, ["teacher"], `with --distill ${o.distill}: no term learns from a teacher`);
    }
    if (plainTraining(weights)) {
      refuseIgnored(
        given,
        ["finetuneSteps"],
        "with plain next-token training (--distill ce): --steps trains every weight",
      );
    }
    const evalSet = o.eval === null
      ? undefined
      : await loadEvalSet(o.eval, { tokenizer: data.tokenizer, vocab: config.vocab });
    const plan = await planRunDir(o.out, "tune");
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
        const ctx: Ctx = { out, run, data, seed: o.seed, logEvery: o.logEvery, ...(evalSet ? { evalSet } : {}) };
        const before = await evaluate(ctx, base.params, config);
        console.log(`before: ${describeEval(before)}`);
        const answersBefore = await evaluateEvalSet(ctx, base.params, config);
        if (answersBefore !== null) console.log(`before: ${describeAnswers(answersBefore, evalSet!.answers.length)}`);
        const distill = plainTraining(weights)
          ? null
          : { teacher: teacher ?? { config, params: base.params }, weights };
        if (distill !== null) say(out, `distilling: ${distillLabel(weights)}, MLPs frozen`);
        let r = await trainModel(ctx, {
          label: distill === null ? "tune" : "distill",
          stream: "tune",
          config,
          params: base.params,
          opt: null,
          start: 0,
          total: o.steps,
          lr: o.lr,
          warmup: o.warmup,
          decaySteps: o.steps,
          ...(distill === null ? {} : { distill, freezeMlp: true }),
        });
        if (distill !== null && o.finetuneSteps > 0 && !interrupts.requested) {
          // The fine-tune continues the tune stream where distillation stopped, with a fresh optimizer for every weight.
          r = await trainModel(ctx, {
            label: "finetune",
            stream: "tune",
            config,
            params: r.params,
            opt: null,
            start: r.step,
            total: r.step + o.finetuneSteps,
            lr: o.lr,
            warmup: o.warmup,
            decaySteps: o.finetuneSteps,
          });
        }
        const saved = { config, params: r.params, step: r.step, data: data.meta, opt: null };
        await stopIfInterrupted(ctx, "post-training", () => saved, "");
        const ckpt = run.file(FILES.checkpoint);
        await run.saveCheckpoint(saved);
        releaseSaved(ckpt);
        const after = await evaluate(ctx, r.params, config);
        console.log(`after:  ${describeEval(after)}`);
        const answersAfter = await evaluateEvalSet(ctx, r.params, config);
        if (answersAfter !== null) console.log(`after:  ${describeAnswers(answersAfter, evalSet!.answers.length)}`);
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
          [
            "training",
            distill === null
              ? `${o.steps} steps, next-token loss`
              : `${o.steps} steps distilling (${
                distillLabel(weights)
              }, MLPs frozen), then ${o.finetuneSteps} of full fine-tuning`,
          ],
          ...(answersBefore === null || answersAfter === null ? [] : [[
            "--eval",
            `answer loss ${answersBefore.loss.toFixed(3)} -> ${answersAfter.loss.toFixed(3)}, exact match ` +
            `${answersBefore.accuracy.toFixed(3)} -> ${answersAfter.accuracy.toFixed(3)}`,
          ] as [string, string]]),
          ["backend", `${info.name}${info.adapter ? ` (${info.adapter})` : ""}`],
          ["run directory", run.dir],
        ];
        await writeReport(run, { title: `jetfold tune: ${config.blocks.map(blockLabel).join(", ")}`, summary, sample });
        console.log(`checkpoint: ${ckpt}`);
      });
    };
  },
});
