// `demo`: the whole Jet-Nemotron story on toy data: warmup, PostNAS, post-tune, generation, summary.

import { extractSubnet, totalStateBytes } from "../../mod.ts";
import { bool, COMMON, int, num } from "../args.ts";
import { openData } from "../data.ts";
import { interrupts } from "../interrupt.ts";
import { checkMemory, generateBytes, trainBytes } from "../limits.ts";
import { applySteps, blockLabel, DATA, EVAL, LOG, MODEL, SAMPLE, SEARCH, stepCount } from "../options.ts";
import {
  type Ctx,
  describeAnswers,
  describeEval,
  evaluate,
  evaluateEvalSet,
  loadEvalSet,
  trainModel,
} from "../phases.ts";
import { checkHardware, HARDWARE, hardwareSearch } from "../hardware.ts";
import { planPipeline, search, WARMUP, warmup } from "../pipeline.ts";
import { allJetSummary, writeSummary } from "../summary.ts";
import { makeOut, paint, say } from "../progress.ts";
import { FILES, planRunDir } from "../rundir.ts";
import {
  bytes,
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

// "273.1x smaller"; a configuration with no state at all (swa:1 keeps no past token) has no ratio.
const smaller = (all: number, chosen: number) =>
  chosen === 0 ? "no state at all" : `${(all / chosen).toFixed(1)}x smaller`;

// The demo's own defaults, chosen so that its few minutes show the story (README, "The demo"): 3 layers, so one
// full-attention layer is a third of the state; 8 recall queries per sequence, twice the answers `train`'s default
// data has, with which the teacher learns recall within its 600 steps; at most one swa layer, as the paper budgets
// its few swa layers, so the rest are JetBlocks and the hardware-aware step, on by default, has them to reshape.
const DEMO_QUERIES = 8;

// The demo's queries when none are given: DEMO_QUERIES, or fewer where a short --seq-len has no room for them (the
// toy data needs 3 bytes per pair and per query and 4 more).
const queriesFor = (o: { seqLen: number; pairs: number }) =>
  Math.max(1, Math.min(DEMO_QUERIES, Math.floor((o.seqLen - 4) / 3) - o.pairs));

const specs = {
  ...COMMON,
  steps: stepCount(null, "shorthand: every training phase takes this many steps", { defaultText: "per phase" }),
  ...WARMUP,
  lr: num(5e-3, "peak learning rate of pretraining"),
  tuneSteps: stepCount(100, "steps of post-training the chosen model"),
  tuneLr: num(1e-3, "peak learning rate of post-training"),
  ...MODEL,
  layers: int(3, "number of layers", { min: 1, max: 1024 }),
  ...DATA,
  queries: int(null, "toy data: recall queries per sequence (more: less text, more answers to learn from)", {
    min: 1,
    defaultText: `${DEMO_QUERIES}, or as many as --seq-len leaves room for`,
  }),
  ...SEARCH,
  maxSwa: int(1, "budget: at most this many sliding-window (swa) layers", { min: 0 }),
  ...HARDWARE,
  hardwareSearch: bool(
    "skip the hardware-aware step after the search (JetBlock geometries of the chosen placement's decoding state,\n" +
      "each trained briefly; the fastest within --hardware-tolerance of the best loss is kept)",
    { on: true },
  ),
  ...EVAL,
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
    "(config.json, checkpoint.safetensors, metrics.jsonl, search.json, report.html). Ctrl-C or SIGTERM\n" +
    "stops at the next step or scored configuration and saves the model so far as the checkpoint.",
  specs,
  async prepare(o, given) {
    applySteps(o, given, ["pretrainSteps", "supernetSteps", "tuneSteps", "hardwareSteps"]);
    if (o.data === null && o.queries === null) o.queries = queriesFor(o);
    const data = await openData(o);
    refuseToyOptions(given, data);
    const plan = planPipeline(o, given, null);
    checkHardware(o, given, plan.space);
    // The chosen model has the base model's sizes and at most the supernet's mixers.
    checkMemory(
      `post-training (--batch ${o.batch} x --seq-len ${o.seqLen})`,
      trainBytes(plan.baseConfig, o),
      "--batch, --seq-len or the model's sizes",
    );
    const prompt = promptLength(o.prompt, o.seqLen);
    checkMemory(
      `generating --tokens ${o.tokens}`,
      generateBytes(plan.baseConfig, { prompt, tokens: o.tokens }),
      "--tokens",
    );
    const evalSet = o.eval === null ? undefined : await loadEvalSet(o.eval, { vocab: plan.baseConfig.vocab });
    const runPlan = await planRunDir(o.out, "demo");

    return async () => {
      const t0 = performance.now();
      const out = makeOut(o.quiet);
      const info = await startBackend(out, o.backend);
      interrupts.hold();
      await inRun(runPlan, o, async (run) => {
        say(out, `data: ${data.label}`);
        say(out, `run directory: ${run.dir}`);
        const ctx: Ctx = { out, run, data, seed: o.seed, logEvery: o.logEvery, ...(evalSet ? { evalSet } : {}) };
        const phase = (n: number, title: string) => say(out, `\n${paint(out, "bold", `[${n}/4] ${title}`)}`);

        phase(1, "warmup: pretrain a full-attention model, then a once-for-all supernet over it");
        const warm = await warmup(ctx, o, plan);
        const baseConfig = warm.baseConfig;

        phase(2, "PostNAS: choose each layer's block");
        const searched = await search(ctx, warm, o);
        const hw = o.hardwareSearch ? await hardwareSearch(ctx, warm, searched.choice, { ...o, ...data.meta }) : null;
        const record = hw === null
          ? searched.record
          : { ...searched.record, hardware: { rule: hw.rule, geometries: hw.rows } };
        if (hw !== null) await run.writeJson(FILES.search, record);
        const choice = hw?.choice ?? searched.choice;

        phase(3, "post-tune: train the chosen model");
        // Scored now: post-training the chosen path disposes the supernet tensors it shares with the others.
        const allJet = await allJetSummary(ctx, warm, o.context);
        const sub = hw?.model ?? extractSubnet(warm.supernet, choice);
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
          // With --distill, the post-tune learns from the same teacher, MLPs frozen as in the supernet.
          ...(warm.distill === null ? {} : { distill: warm.distill, freezeMlp: true }),
        });
        const model = { config: sub.config, params: tuned.params };
        const saved = { ...model, step: tuned.step, data: data.meta, opt: null };
        await stopIfInterrupted(ctx, "post-training", () => saved, " (sample from it with generate)");
        const ckpt = run.file(FILES.checkpoint);
        await run.saveCheckpoint(saved);
        releaseSaved(`${ckpt} (the post-trained model) and ${run.file(FILES.search)}`);
        const after = await evaluate(ctx, model.params, model.config);
        say(out, `  after:  ${describeEval(after)}`);
        const answers = await evaluateEvalSet(ctx, model.params, model.config);
        if (answers !== null) say(out, `  after:  ${describeAnswers(answers, evalSet!.answers.length)}`);

        phase(4, "generation: greedy continuation of a held-out prompt");
        const sample = await sampleAndPrint(out, model, await promptOf(data, o.prompt), o.tokens);

        const stateOf = (blocks: typeof choice) => totalStateBytes(blocks, { cfg: baseConfig, context: o.context });
        const mhaState = stateOf(baseConfig.blocks);
        const chosenState = stateOf(choice);
        const seconds = (performance.now() - t0) / 1000;
        const summary: [string, string][] = [
          ["configuration", choice.map(blockLabel).join(", ")],
          [
            `decoding state at ${o.context} tokens`,
            `${bytes(chosenState)} vs ${bytes(mhaState)} for all-mha (${smaller(mhaState, chosenState)})`,
          ],
          ["proxy perplexity", `${after.perplexity.toFixed(3)} (before post-tune ${before.perplexity.toFixed(3)})`],
          [
            "retrieval accuracy",
            Number.isNaN(after.accuracy) ? "n/a (no recall queries in the data)" : after.accuracy.toFixed(3),
          ],
          ...(answers === null
            ? []
            : [["--eval", describeAnswers(answers, evalSet!.answers.length)] as [string, string]]),
          ["backend", `${info.name}${info.adapter ? ` (${info.adapter})` : ""}`],
          ["time", `${seconds.toFixed(0)} s`],
          ["run directory", run.dir],
        ];
        const models = await writeSummary(ctx, warm, choice, {
          context: o.context,
          seconds,
          chosen: model,
          allJet,
          ...(hw === null ? {} : { hardware: hw.rows }),
        });
        await writeReport(run, {
          title: `jetfold demo: ${choice.map(blockLabel).join(", ")}`,
          summary,
          search: record,
          sample,
          comparison: { summary: models, context: o.context },
        });
        console.log(`\n${paint(out, "bold", "summary")}`);
        const w = Math.max(...summary.map(([k]) => k.length));
        for (const [k, v] of summary) console.log(`  ${k.padEnd(w)}  ${v}`);
        console.log(`  ${"report".padEnd(w)}  ${run.file(FILES.report)}`);
      });
    };
  },
});
