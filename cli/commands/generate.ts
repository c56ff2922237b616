// `generate`: samples from a saved model, greedily by default, from --prompt or the data's held-out prompt.

import { decodeBytes, foldIn, generate, paramCount, randomKey } from "../../mod.ts";
import { COMMON, int, num, str } from "../args.ts";
import { blockLabel, DATA, SAMPLE } from "../options.ts";
import { makeOut, say } from "../progress.ts";
import { checkpointOf, loadCheckpoint } from "../rundir.ts";
import { dataFor, defineCommand, promptOf, sampleAndPrint, startBackend } from "../session.ts";

const { out: _out, ...common } = COMMON;
const { data, seqLen, pairs } = DATA;

const specs = {
  ...common,
  checkpoint: str(null, "the model to sample from", { meta: "FILE" }),
  run: str(null, "sample from the checkpoint of this run directory", { meta: "DIR" }),
  ...SAMPLE,
  temperature: num(0, "0 is greedy; above 0 samples (seeded by --seed)"),
  topK: int(null, "sample only among the k most likely tokens", { min: 1, defaultText: "all" }),
  data,
  seqLen,
  pairs,
};

/** The generate command. */
export const generateCommand = defineCommand({
  name: "generate",
  summary: "sample text from a saved model (--checkpoint FILE or --run DIR)",
  description: "Prints the prompt, the generated token ids and their text. Without --prompt the prompt is the\n" +
    "held-out prompt of the data the model was trained on (for toy data: up to the first recall query), so\n" +
    "the same checkpoint and seed reproduce the sample that demo, train or tune printed.",
  specs,
  async run(o, given) {
    const out = makeOut(o.quiet);
    const saved = await loadCheckpoint(checkpointOf(o));
    const source = await dataFor({ ...o, batch: 1, evalBatch: 1 }, given, saved.data);
    await startBackend(out, o.backend);
    const { config, params } = saved;
    say(out, `model: ${config.blocks.map(blockLabel).join(", ")}, ${paramCount(params)} parameters`);
    const prompt = await promptOf(source, o.prompt);
    if (o.temperature === 0) {
      await sampleAndPrint(out, saved, prompt, o.tokens);
      return;
    }
    const [ids] = await generate(params, config, prompt.ids, {
      maxNewTokens: o.tokens,
      temperature: o.temperature,
      topK: o.topK ?? undefined,
      key: foldIn(randomKey(o.seed), 4),
    });
    console.log(`  prompt: ${JSON.stringify(decodeBytes(prompt.ids))}`);
    console.log(`  ids:    ${ids.join(" ")}`);
    console.log(`  text:   ${JSON.stringify(decodeBytes(ids))}`);
  },
});
