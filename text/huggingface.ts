// Hugging Face tokenizers (tokenizer.json, or vocab.json + merges.txt) behind jetfold's Tokenizer contract.

import type { DecodeOptions, EncodeOptions, JsonObject, Tokenizer, TokenizerFiles } from "./tokenizer.ts";

// Loaded on first use, and by a full specifier: importing mod.ts (by path or by URL) stays free of npm packages and
// needs no permissions; only loading a Hugging Face tokenizer fetches this one (pinned) package.
let library: Promise<typeof import("npm:@huggingface/tokenizers@0.2.0")> | undefined;
// deno-lint-ignore no-import-prefix -- a bare specifier would need the import map, which a URL importer does not have
const tokenizersLibrary = () => library ??= import("npm:@huggingface/tokenizers@0.2.0");

/** What {@linkcode loadTokenizer} reads: a tokenizer.json's bytes or parsed contents, or the files' location. */
export type TokenizerSource = string | URL | Uint8Array | JsonObject;

const SPECIAL_NAMES = ["bos", "eos", "pad", "unk"] as const;

// tokenizer_config.json names special tokens either as a string or as an AddedToken record.
function tokenText(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (value !== null && typeof value === "object" && typeof (value as JsonObject).content === "string") {
    return (value as JsonObject).content as string;
  }
  return undefined;
}

/** Checks the shape the library relies on, so a wrong file fails here with its name rather than deep inside it. */
export function checkTokenizerJson(json: unknown, where: string): JsonObject {
  if (json === null || typeof json !== "object" || Array.isArray(json)) {
    throw new TypeError(`${where} is not a tokenizer.json: expected a JSON object`);
  }
  const model = (json as JsonObject).model;
  if (model === null || typeof model !== "object" || typeof (model as JsonObject).type !== "string") {
    throw new TypeError(`${where} is not a tokenizer.json: it has no "model" object with a "type"`);
  }
  return json as JsonObject;
}

/**
 * A tokenizer.json for GPT-2-style byte-level BPE, built from the older pair of files: vocab.json (token -> id) and
 * merges.txt (one "a b" merge a line, ranked by order, after an optional `#version` line). Special tokens come from
 * tokenizer_config.json's `added_tokens_decoder` and its `bos_token`/`eos_token`/... entries.
 */
export function byteLevelBpeJson(vocab: JsonObject, merges: string, config: JsonObject = {}): JsonObject {
  const lines = merges.split(/\r?\n/).filter((line, i) => line.trim() !== "" && !(i === 0 && line.startsWith("#")));
  const added = new Map<number, JsonObject>();
  const decoderEntries = Object.entries((config.added_tokens_decoder ?? {}) as Record<string, JsonObject>);
  for (const [id, token] of decoderEntries) added.set(Number(id), { ...token, id: Number(id) });
  for (const name of SPECIAL_NAMES) {
    const text = tokenText(config[`${name}_token`]);
    const id = text === undefined ? undefined : vocab[text];
    if (typeof id === "number" && !added.has(id)) {
      added.set(id, {
        id,
        content: text,
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: false,
        special: true,
      });
    }
  }
  const byteLevel = { type: "ByteLevel", add_prefix_space: config.add_prefix_space === true, trim_offsets: true };
  return {
    version: "1.0",
    added_tokens: [...added.values()],
    normalizer: null,
    pre_tokenizer: { ...byteLevel, use_regex: true },
    post_processor: { ...byteLevel, use_regex: true },
    decoder: { ...byteLevel, use_regex: true },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: "",
      end_of_word_suffix: "",
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges: lines,
    },
  };
}

/** Wraps parsed tokenizer files as a jetfold {@linkcode Tokenizer}. */
export async function huggingFaceTokenizer(files: TokenizerFiles): Promise<Tokenizer> {
  const { Tokenizer: HfTokenizer } = await tokenizersLibrary();
  const config = files.config ?? {};
  // tokenizer.json leaves out the stages a tokenizer does not have; the library wants them present, as null.
  const absent = { added_tokens: [], normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null };
  const hf = new HfTokenizer({ ...absent, ...files.tokenizer }, config);
  let vocabSize = 0;
  for (const id of hf.get_vocab(true).values()) vocabSize = Math.max(vocabSize, id + 1);
  const specialTokens = new Map<string, number>();
  for (const token of (files.tokenizer.added_tokens ?? []) as JsonObject[]) {
    if (token.special === true && typeof token.content === "string") specialTokens.set(token.content, Number(token.id));
  }
  const ids: Partial<Record<`${typeof SPECIAL_NAMES[number]}Id`, number>> = {};
  for (const name of SPECIAL_NAMES) {
    const text = tokenText(config[`${name}_token`]);
    const id = text === undefined ? undefined : hf.token_to_id(text);
    if (id !== undefined) ids[`${name}Id`] = id;
  }
  return Object.freeze({
    vocabSize,
    ...(ids.bosId === undefined ? {} : { bosId: ids.bosId }),
    ...(ids.eosId === undefined ? {} : { eosId: ids.eosId }),
    ...(ids.padId === undefined ? {} : { padId: ids.padId }),
    specialTokens,
    files: Object.freeze(files.config === undefined ? { tokenizer: files.tokenizer } : { ...files }),
    encode: (text: string, options: EncodeOptions = {}) =>
      hf.encode(text, { add_special_tokens: options.addSpecial ?? true }).ids,
    decode: (tokens: readonly number[], options: DecodeOptions = {}) => {
      const bad = tokens.findIndex((id) => !Number.isInteger(id) || id < 0 || id >= vocabSize);
      if (bad >= 0) {
        throw new RangeError(
          `decode: id ${tokens[bad]} at position ${bad} is outside the vocabulary [0, ${vocabSize})`,
        );
      }
      if (tokens.length === 0) return ""; // the library refuses an empty array
      return hf.decode([...tokens], { skip_special_tokens: options.skipSpecial ?? false });
    },
  });
}
