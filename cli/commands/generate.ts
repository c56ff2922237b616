// `generate`: samples from a saved model, greedily by default, from --prompt or the data's held-out prompt.

import { decodeBytes, foldIn, generate, paramCount, randomKey } from "../../mod.ts";
import { COMMON, InputError, int, num, str } from "../args.ts";
import { checkMemory, generateBytes } from "../limits.ts";
import { blockLabel, DATA, refuseIgnored, SAMPLE } from "../options.ts";
import { makeOut, say } from "../progress.ts";
import { loadCheckpoint } from "../checkpoint.ts";
import { checkpointOf } from "../rundir.ts";
import { dataFor, defineCommand, promptLength, promptOf, sampleAndPrint, startBackend } from "../session.ts";

const { out: _out, ...common } = COMMON;

/** The lowest temperature that samples (0 is greedy). */
const MIN_TEMPERATURE = 0.001;
const { data, seqLen, pairs } = DATA;

const specs = {
  ...common,
  checkpoint: str(null, "the model to sample from", { meta: "FILE" }),
  run: str(null, "sample from the checkpoint of this run directory", { meta: "DIR" }),
  ...SAMPLE,
  temperature: num(0, "0 is greedy; from 0.001 up it samples (seeded by --seed)"),
  topK: int(null, "sample only among the k most likely tokens (needs --temperature above 0)", {
    min: 1,
    defaultText: "all",
  }),
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
  async prepare(o, given) {
    if (o.temperature > 0 && o.temperature < MIN_TEMPERATURE) {
      // Logits over so small a temperature overflow f32, and the sample is garbage, not near-greedy.
      throw new InputError(
        `--temperature must be 0 (greedy) or at least ${MIN_TEMPERATURE}, got ${o.temperature}; use 0 for greedy`,
      );
    }
    if (o.temperature === 0 && given.has("topK")) {
      throw new InputError("--top-k needs --temperature above 0: at temperature 0 generation is greedy (top-1)");
    }
    if (o.prompt !== null) {
      // The data options only choose the default prompt, and at temperature 0 the seed chooses nothing.
      refuseIgnored(given, ["data", "seqLen", "pairs"], "with --prompt: they only choose the default prompt");
      if (o.temperature === 0) {
        refuseIgnored(given, ["seed"], "with --prompt at temperature 0: greedy decoding draws nothing");
      }
    }
    const saved = await loadCheckpoint(checkpointOf(o));
    // Without --prompt the prompt comes from the data the model was trained on (so it must be there).
    const source = o.prompt === null ? await dataFor({ ...o, batch: 1, evalBatch: 1 }, given, saved.data) : null;
    if (source?.meta.source === "text") refuseIgnored(given, ["pairs"], "on text data: it shapes the toy data");
    const prompt = promptLength(o.prompt, source?.meta.seqLen ?? 0);
    checkMemory(
      `generating --tokens ${o.tokens}`,
      generateBytes(saved.config, { prompt, tokens: o.tokens }),
      "--tokens",
    );

    return async () => {
      const out = makeOut(o.quiet);
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
    };
  },
});
