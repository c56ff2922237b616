// `generate`: samples from a saved model, greedily by default, from --prompt or the data's held-out prompt.

import {
  decodeBytes,
  foldIn,
  generate,
  type Key,
  type ModelConfig,
  type ModelParams,
  paramCount,
  randomKey,
} from "../../mod.ts";
import { bool, COMMON, InputError, int, num, str } from "../args.ts";
import { checkMemory, generateBytes } from "../limits.ts";
import { blockLabel, DATA, refuseIgnored, SAMPLE } from "../options.ts";
import { makeOut, say } from "../progress.ts";
import { loadCheckpoint } from "../checkpoint.ts";
import { checkpointOf } from "../rundir.ts";
import { codecOf } from "../data.ts";
import { checkBuffers, decodeText, encodeText, loadModel, MODEL_SOURCE, modelSummary, tokenizerOf } from "../model.ts";
import { type Out, write } from "../progress.ts";
import type { Tokenizer } from "../../mod.ts";
import { dataFor, defineCommand, promptLength, promptOf, sampleAndPrint, startBackend } from "../session.ts";

const { out: _out, ...common } = COMMON;

/** The lowest temperature that samples (0 is greedy). */
const MIN_TEMPERATURE = 0.001;
const { data, seqLen, pairs, queries } = DATA;

const specs = {
  ...common,
  checkpoint: str(null, "the model to sample from", { meta: "FILE" }),
  run: str(null, "sample from the checkpoint of this run directory", { meta: "DIR" }),
  ...MODEL_SOURCE,
  ...SAMPLE,
  stream: bool("print the text as it is generated (read every --read-every tokens), then the tokens/s"),
  readEvery: int(null, "read the generated tokens back every N tokens (each read is a device sync)", {
    min: 1,
    defaultText: "4 with --stream, else once at the end",
  }),
  temperature: num(0, "0 is greedy; from 0.001 up it samples (seeded by --seed)"),
  topK: int(null, "sample only among the k most likely tokens (needs --temperature above 0)", {
    min: 1,
    defaultText: "all",
  }),
  data,
  seqLen,
  pairs,
  queries,
};

/** The generate command. */
export const generateCommand = defineCommand({
  name: "generate",
  summary: "sample text from a saved model (--checkpoint FILE, --run DIR or --model SOURCE)",
  description: "Prints the prompt, the generated token ids and their text. Without --prompt the prompt is the\n" +
    "held-out prompt of the data the model was trained on (for toy data: up to the first recall query), so\n" +
    "the same checkpoint and seed reproduce the sample that demo, train or tune printed. --model takes a\n" +
    "Hugging Face model (a directory, or a Hub repo id found in the cache or downloaded): --prompt goes\n" +
    "through its tokenizer, generation stops at its end-of-text token, and --stream prints the text as it\n" +
    "comes and the tokens per second.",
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
    if (o.model !== null) return await prepareModel(o, given);
    refuseIgnored(given, ["stream", "readEvery"], "without --model (they stream a Hugging Face model's text)");
    if (o.prompt !== null) {
      // The data options only choose the default prompt, and at temperature 0 the seed chooses nothing.
      refuseIgnored(
        given,
        ["data", "seqLen", "pairs", "queries"],
        "with --prompt: they only choose the default prompt",
      );
      if (o.temperature === 0) {
        refuseIgnored(given, ["seed"], "with --prompt at temperature 0: greedy decoding draws nothing");
      }
    }
    const saved = await loadCheckpoint(checkpointOf(o));
    // Without --prompt the prompt comes from the data the model was trained on (so it must be there).
    const source = o.prompt === null ? await dataFor({ ...o, batch: 1, evalBatch: 1 }, given, saved.data) : null;
    if (source !== null && source.meta.source !== "toy") {
      refuseIgnored(given, ["pairs", "queries"], "on text data: they shape the toy data");
    }
    // A model fine-tuned from a --model reads and writes text through that model's tokenizer.
    const codec = saved.data?.source === "tokens" ? await codecOf(saved.data) : null;
    const tokenized = o.prompt === null || codec === null
      ? null
      : { ids: encodeText(codec.tokenizer, o.prompt, saved.config.vocab, "--prompt"), expect: null };
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
      const prompt = tokenized ?? await promptOf(source, o.prompt);
      const tokenizer = codec?.tokenizer;
      if (o.temperature === 0) {
        await sampleAndPrint(out, saved, prompt, o.tokens, tokenizer);
        return;
      }
      const [ids] = await generate(params, config, prompt.ids, {
        maxNewTokens: o.tokens,
        temperature: o.temperature,
        topK: o.topK ?? undefined,
        key: foldIn(randomKey(o.seed), 4),
      });
      const show = (t: readonly number[]) => tokenizer === undefined ? decodeBytes(t) : decodeText(tokenizer, t);
      console.log(`  prompt: ${JSON.stringify(show(prompt.ids))}`);
      console.log(`  ids:    ${ids.join(" ")}`);
      console.log(`  text:   ${JSON.stringify(show(ids))}`);
    };
  },
});

type Options = {
  model: string | null;
  checkpoint: string | null;
  run: string | null;
  prompt: string | null;
  tokens: number;
  temperature: number;
  topK: number | null;
  seed: number;
  quiet: boolean;
  stream: boolean;
  readEvery: number | null;
  backend: Parameters<typeof startBackend>[1];
};

// generate --model: the prompt through the model's tokenizer, stopping at its end-of-text token.
async function prepareModel(o: Options, given: ReadonlySet<string>) {
  if (o.checkpoint !== null || o.run !== null) throw new InputError("give --model, --checkpoint or --run, not two");
  refuseIgnored(given, ["data", "seqLen", "pairs", "queries"], "with --model: the prompt is --prompt");
  if (o.prompt === null) {
    throw new InputError("--model needs --prompt TEXT (there is no training data to take one from)");
  }
  if (o.temperature === 0) refuseIgnored(given, ["seed"], "at temperature 0: greedy decoding draws nothing");
  const out = makeOut(o.quiet);
  const m = await loadModel(o.model!, out);
  const tokenizer = tokenizerOf(m, "--prompt");
  const ids = encodeText(tokenizer, o.prompt, m.config.vocab, "--prompt");
  if (ids.length === 0) throw new InputError("--prompt gives no tokens");
  checkMemory(
    `generating --tokens ${o.tokens}`,
    generateBytes(m.config, { prompt: ids.length, tokens: o.tokens }),
    "--tokens",
  );
  return async () => {
    const info = await startBackend(out, o.backend);
    checkBuffers(m, info, { batch: 1, tokens: ids.length + o.tokens });
    say(out, `model: ${modelSummary(m)}`);
    const key = o.temperature === 0 ? undefined : foldIn(randomKey(o.seed), 4);
    await streamSample(out, { ...m, tokenizer }, ids, o, key);
  };
}

// Runs generation, printing the text as reads come (with --stream) and the rate at the end.
async function streamSample(
  out: Out,
  m: { config: ModelConfig; params: ModelParams; tokenizer: Tokenizer },
  prompt: number[],
  o: Options,
  key: Key | undefined,
): Promise<void> {
  const { tokenizer } = m;
  console.log(`  prompt: ${JSON.stringify(decodeText(tokenizer, prompt))} (${prompt.length} tokens)`);
  const readEvery = o.readEvery ?? (o.stream ? 4 : undefined);
  let shown = "", got: number[] = [], first = NaN, firstCount = 0;
  const t0 = performance.now();
  const onTokens = (rows: number[][]) => {
    if (Number.isNaN(first)) [first, firstCount] = [performance.now(), rows[0].length];
    got = got.concat(rows[0]);
    if (!o.stream) return;
    // Decode everything so far and print what is new, holding back a character still incomplete (U+FFFD).
    const text = decodeText(tokenizer, got).replace(/\uFFFD+$/, "");
    write(text.startsWith(shown) ? text.slice(shown.length) : `\n${text}`);
    shown = text;
  };
  if (o.stream) write("  text:   ");
  const [ids] = await generate(m.params, m.config, prompt, {
    maxNewTokens: o.tokens,
    temperature: o.temperature,
    topK: o.topK ?? undefined,
    key,
    readEvery,
    onTokens,
    stopId: tokenizer.eosId,
  });
  const end = performance.now(), secs = (end - t0) / 1000, later = ids.length - firstCount;
  if (o.stream) write(decodeText(tokenizer, ids).slice(shown.length) + "\n");
  console.log(`  ids:    ${ids.join(" ")}`);
  if (!o.stream) console.log(`  text:   ${JSON.stringify(decodeText(tokenizer, ids))}`);
  const stopped = ids.at(-1) === tokenizer.eosId ? " (stopped at the end-of-text token)" : "";
  // After the first read the prefill is behind: the rate a reader sees while the text streams.
  const rest = later > 0 ? `; ${(later / ((end - first) / 1000)).toFixed(2)} tokens/s after the first read` : "";
  const rate = (ids.length / secs).toFixed(2);
  say(out, `  ${ids.length} tokens in ${secs.toFixed(2)} s: ${rate} tokens/s with the prefill${rest}${stopped}`);
}
