// `search`: PostNAS over a trained model (or a freshly pretrained one): supernet warmup, then the search.

import { block, extractSubnet, totalStateBytes } from "../../mod.ts";
import { bool, COMMON, int, str } from "../args.ts";
import { NATS, natsUrl } from "./worker.ts";
import { scaleOut } from "../cluster/search.ts";
import { interrupts } from "../interrupt.ts";
import { applySteps, blockLabel, DATA, EVAL, LOG, MODEL, refuseIgnored, SEARCH, stepCount } from "../options.ts";
import { type Ctx, loadEvalSet } from "../phases.ts";
import { checkHardware, HARDWARE, hardwareSearch } from "../hardware.ts";
import { planPipeline, search, WARMUP, warmup } from "../pipeline.ts";
import { writeSummary } from "../summary.ts";
import { makeOut, paint, say } from "../progress.ts";
import { loadCheckpoint, type Saved } from "../checkpoint.ts";
import { openData } from "../data.ts";
import { InputError } from "../input.ts";
import { checkBuffers, type LoadedModel, loadModel, MODEL_SOURCE, tokenizerOf } from "../model.ts";
import { checkpointOf, FILES, planRunDir } from "../rundir.ts";
import {
  bytes,
  dataFor,
  defineCommand,
  inRun,
  refuseToyOptions,
  releaseSaved,
  startBackend,
  writeReport,
} from "../session.ts";

// "273.1x smaller"; a configuration with no state at all (swa:1 keeps no past token) has no ratio.
const smaller = (all: number, chosen: number) =>
  chosen === 0 ? "no state at all" : `${(all / chosen).toFixed(1)}x smaller`;

const specs = {
  ...COMMON,
  checkpoint: str(null, "start from this model checkpoint (e.g. from train)", {
    defaultText: "pretrain one",
    meta: "FILE",
  }),
  run: str(null, "start from the checkpoint of this run directory", { meta: "DIR" }),
  ...MODEL_SOURCE,
  steps: stepCount(null, "shorthand: pretraining and supernet training take this many steps", {
    defaultText: "per phase",
  }),
  ...WARMUP,
  ...MODEL,
  ...DATA,
  ...SEARCH,
  ...HARDWARE,
  ...EVAL,
  ...LOG,
  ...NATS,
  ackWait: int(60, "with --nats: seconds a job may go unacknowledged before it goes to another worker", { min: 1 }),
  localFallback: bool("with --nats: while no worker is running, score configurations here"),
};

/** The search command. */
export const searchCommand = defineCommand({
  name: "search",
  summary: "PostNAS: train a once-for-all supernet over a model and choose each layer's block",
  description: "Starts from --checkpoint/--run (a model trained by train) or pretrains a full-attention model,\n" +
    "builds a supernet whose layers hold every candidate (attention weights inherited, MLPs frozen), trains\n" +
    "it one random path per step, and searches layer by layer under the mha budget. Writes search.json (the\n" +
    "trace), checkpoint.safetensors (the chosen model, ready for tune and generate) and report.html.\n" +
    "--model SOURCE (a Hugging Face directory or Hub repo id) starts from that model, on --data through its\n" +
    "tokenizer. Ctrl-C or SIGTERM stops at the next step or scored configuration and saves the model so far.\n" +
    "With --nats URL, each layer's configurations are scored by workers (the worker command) on other\n" +
    "processes or machines; the choice and every score equal a local search's.",
  specs,
  async prepare(o, given) {
    let base: Saved | null = null, loaded: LoadedModel | null = null;
    if (o.model !== null) {
      if (o.checkpoint !== null || o.run !== null) throw new InputError("give --model, --checkpoint or --run, not two");
      loaded = await loadModel(o.model, makeOut(o.quiet));
      base = { config: loaded.config, params: loaded.params, step: 0, data: null, opt: null };
    } else if (o.checkpoint !== null || o.run !== null) base = await loadCheckpoint(checkpointOf(o));
    // --steps is shorthand for the phases that run: pretraining (without a given model) and the supernet's.
    applySteps(o, given, base === null ? ["pretrainSteps", "supernetSteps"] : ["supernetSteps"]);
    const data = loaded === null
      ? await dataFor(o, given, base?.data ?? null)
      : await openData(o, { tokenizer: tokenizerOf(loaded, "--data"), vocab: loaded.config.vocab, model: loaded.ref });
    refuseToyOptions(given, data);
    const plan = planPipeline({ ...o, ...data.meta, evalBatch: o.evalBatch }, given, base);
    const url = natsUrl(o.nats, false);
    if (url === null) refuseIgnored(given, ["natsRetry", "ackWait", "localFallback"], "without --nats");
    if (url !== null && o.eval !== null) {
      throw new InputError("--eval is scored in this process only; give --eval or --nats, not both");
    }
    checkHardware(o, given, plan.space);
    const evalSet = o.eval === null
      ? undefined
      : await loadEvalSet(o.eval, { tokenizer: data.tokenizer, vocab: plan.baseConfig.vocab });
    const runPlan = await planRunDir(o.out, "search");

    return async () => {
      const t0 = performance.now();
      const out = makeOut(o.quiet);
      const info = await startBackend(out, o.backend);
      if (loaded !== null) checkBuffers(loaded, info, { batch: Math.max(o.batch, o.evalBatch), tokens: o.seqLen });
      interrupts.hold();
      // The server is reached before any work, so a wrong --nats fails in seconds, not after the warmup.
      const cluster = url === null ? null : await scaleOut(out, url, o);
      await inRun(runPlan, o, async (run) => {
        say(out, `data: ${data.label}`);
        say(out, `run directory: ${run.dir}`);
        const ctx: Ctx = { out, run, data, seed: o.seed, logEvery: o.logEvery, ...(evalSet ? { evalSet } : {}) };
        say(out, `\n${paint(out, "bold", "warmup")}`);
        const warm = await warmup(ctx, o, plan);
        say(out, `\n${paint(out, "bold", "PostNAS")}`);
        const searched = await search(ctx, warm, o, cluster?.scorer);
        const { record } = searched;
        const hw = o.hardwareSearch ? await hardwareSearch(ctx, warm, searched.choice, { ...o, ...data.meta }) : null;
        if (hw !== null) {
          await run.writeJson(FILES.search, { ...record, hardware: { rule: hw.rule, geometries: hw.rows } });
        }
        const choice = hw?.choice ?? searched.choice;
        const chosen = hw?.model ?? extractSubnet(warm.supernet, choice);
        const ckpt = run.file(FILES.checkpoint);
        await run.saveCheckpoint({ ...chosen, step: 0, data: data.meta, opt: null });
        releaseSaved(`${ckpt} (the chosen model) and ${run.file(FILES.search)}`);
        const cfg = warm.baseConfig;
        const stateOf = (blocks: typeof choice) => totalStateBytes(blocks, { cfg, context: o.context });
        const mhaState = stateOf(cfg.blocks.map(() => block("mha"))), chosenState = stateOf(choice);
        const summary: [string, string][] = [
          ["configuration", choice.map(blockLabel).join(", ")],
          ["score", `${record.score.toFixed(4)} (${record.objective})`],
          [
            `decoding state at ${o.context} tokens`,
            `${bytes(chosenState)} vs ${bytes(mhaState)} for all-mha (${smaller(mhaState, chosenState)})`,
          ],
          ["run directory", run.dir],
        ];
        const seconds = (performance.now() - t0) / 1000;
        const models = await writeSummary(ctx, warm, choice, {
          context: o.context,
          seconds,
          chosen,
          ...(hw === null ? {} : { hardware: hw.rows }),
        });
        const title = `jetfold search: ${choice.map(blockLabel).join(", ")}`;
        await writeReport(run, { title, summary, search: record, comparison: { summary: models, context: o.context } });
        console.log(`chosen: ${choice.map(blockLabel).join(", ")} (score ${record.score.toFixed(4)})`);
        console.log(`decoding state at ${o.context} tokens: ${summary[2][1]}`);
        console.log(`checkpoint: ${ckpt} (post-train it with: deno run -A cli.ts tune --run ${run.dir})`);
        console.log(`trace: ${run.file(FILES.search)}; teacher, all-jet and chosen: ${run.file(FILES.summary)}`);
      }).finally(() => cluster?.close());
    };
  },
});
