// `search`: PostNAS over a trained model (or a freshly pretrained one): supernet warmup, then the search.

import { extractSubnet } from "../../mod.ts";
import { COMMON, int, str } from "../args.ts";
import { unwatchInterrupt, watchInterrupt } from "../loop.ts";
import { blockLabel, DATA, LOG, MODEL, SEARCH } from "../options.ts";
import type { Ctx } from "../phases.ts";
import { search, WARMUP, warmup } from "../pipeline.ts";
import { makeOut, paint, say } from "../progress.ts";
import { checkpointOf, FILES, loadCheckpoint, makeRunDir, saveCheckpoint } from "../rundir.ts";
import { dataFor, defineCommand, startBackend, writeConfig, writeReport } from "../session.ts";

const specs = {
  ...COMMON,
  checkpoint: str(null, "start from this model checkpoint (e.g. from train)", {
    defaultText: "pretrain one",
    meta: "FILE",
  }),
  run: str(null, "start from the checkpoint of this run directory", { meta: "DIR" }),
  steps: int(null, "shorthand: pretraining and supernet training take this many steps", { defaultText: "per phase" }),
  ...WARMUP,
  ...MODEL,
  ...DATA,
  ...SEARCH,
  ...LOG,
};

/** The search command. */
export const searchCommand = defineCommand({
  name: "search",
  summary: "PostNAS: train a once-for-all supernet over a model and choose each layer's block",
  description: "Starts from --checkpoint/--run (a model trained by train) or pretrains a full-attention model,\n" +
    "builds a supernet whose layers hold every candidate (attention weights inherited, MLPs frozen), trains\n" +
    "it one random path per step, and searches layer by layer under the mha budget. Writes search.json (the\n" +
    "trace), checkpoint.safetensors (the chosen model, ready for tune and generate) and report.html.",
  specs,
  async run(o, given) {
    if (o.steps !== null) [o.pretrainSteps, o.supernetSteps] = [o.steps, o.steps];
    const out = makeOut(o.quiet);
    const base = o.checkpoint === null && o.run === null ? null : await loadCheckpoint(checkpointOf(o));
    const data = await dataFor(o, given, base?.data ?? null);
    await startBackend(out, o.backend);
    const dir = await makeRunDir(o.out, "search");
    await writeConfig(dir, "search", o);
    say(out, `data: ${data.label}`);
    say(out, `run directory: ${dir}`);
    const ctx: Ctx = { out, dir, data, seed: o.seed, logEvery: o.logEvery };
    watchInterrupt();
    say(out, `\n${paint(out, "bold", "warmup")}`);
    const { supernet, space } = await warmup(ctx, o, base);
    unwatchInterrupt();
    say(out, `\n${paint(out, "bold", "PostNAS")}`);
    const { choice, record } = await search(ctx, supernet, space, o);
    const chosen = extractSubnet(supernet, choice);
    const ckpt = `${dir}/${FILES.checkpoint}`;
    await saveCheckpoint(ckpt, { ...chosen, step: 0, data: data.meta, opt: null });
    const summary: [string, string][] = [
      ["configuration", choice.map(blockLabel).join(", ")],
      ["score", `${record.score.toFixed(4)} (${record.objective})`],
      ["run directory", dir],
    ];
    await writeReport(dir, { title: `jetfold search: ${choice.map(blockLabel).join(", ")}`, summary, search: record });
    console.log(`chosen: ${choice.map(blockLabel).join(", ")} (score ${record.score.toFixed(4)})`);
    console.log(`checkpoint: ${ckpt} (post-train it with: deno run -A cli.ts tune --run ${dir})`);
    console.log(`trace: ${dir}/${FILES.search}`);
  },
});
