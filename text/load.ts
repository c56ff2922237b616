// loadTokenizer: finds and reads a tokenizer's files (a directory, a file, bytes, parsed JSON or a Hub repo id).

import { basename, dirname, fileUrlPath, join } from "../hub/paths.ts";
import { hubFile, type HubOptions, isRepoId } from "../hub/hub.ts";
import { byteLevelBpeJson, checkTokenizerJson, huggingFaceTokenizer, type TokenizerSource } from "./huggingface.ts";
import type { JsonObject, Tokenizer } from "./tokenizer.ts";

/** Options for {@linkcode loadTokenizer}. */
export interface LoadTokenizerOptions {
  /**
   * The tokenizer_config.json contents (special token names: `bos_token`, `eos_token`, ...). By default it is read
   * from beside the tokenizer's files where it exists there.
   */
  readonly config?: JsonObject;
  /** Where and how a Hub repo id is fetched: cache directory, endpoint, revision, progress (see `hubFile`). */
  readonly hub?: HubOptions;
}

async function readJson(path: string): Promise<JsonObject> {
  const text = await Deno.readTextFile(path);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new SyntaxError(`${path} is not valid JSON: ${(e as Error).message}`);
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

async function readConfig(dir: string, given: JsonObject | undefined): Promise<JsonObject | undefined> {
  if (given !== undefined) return given;
  const path = join(dir, "tokenizer_config.json");
  return (await exists(path)) ? await readJson(path) : undefined;
}

// A directory holds tokenizer.json, or the byte-level BPE pair vocab.json + merges.txt.
async function fromDirectory(dir: string, given: JsonObject | undefined): Promise<Tokenizer> {
  const config = await readConfig(dir, given);
  const json = join(dir, "tokenizer.json");
  if (await exists(json)) {
    return huggingFaceTokenizer({ tokenizer: checkTokenizerJson(await readJson(json), json), config });
  }
  const vocab = join(dir, "vocab.json"), merges = join(dir, "merges.txt");
  if ((await exists(vocab)) && (await exists(merges))) {
    const tokenizer = byteLevelBpeJson(await readJson(vocab), await Deno.readTextFile(merges), config);
    return huggingFaceTokenizer({ tokenizer, config });
  }
  throw new Deno.errors.NotFound(`${dir} holds no tokenizer: expected tokenizer.json, or vocab.json and merges.txt`);
}

async function fromPath(path: string, given: JsonObject | undefined): Promise<Tokenizer> {
  if ((await Deno.stat(path)).isDirectory) return fromDirectory(path, given);
  // vocab.json or merges.txt name their pair; any other file is a tokenizer.json under some name.
  if (basename(path) === "vocab.json" || basename(path) === "merges.txt") return fromDirectory(dirname(path), given);
  const config = await readConfig(dirname(path), given);
  return huggingFaceTokenizer({ tokenizer: checkTokenizerJson(await readJson(path), path), config });
}

// A repo's tokenizer.json, or its vocab.json + merges.txt, with tokenizer_config.json where the repo has one.
async function fromHub(repo: string, options: LoadTokenizerOptions): Promise<Tokenizer> {
  const missing: string[] = [];
  const optional = (file: string) =>
    hubFile(repo, file, options.hub).catch((e) => {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
      missing.push(e.message);
      return undefined;
    });
  const config = options.config ??
    await optional("tokenizer_config.json").then((p) => p === undefined ? undefined : readJson(p));
  const json = await optional("tokenizer.json");
  if (json !== undefined) return fromPath(json, config ?? {});
  const vocab = await optional("vocab.json");
  if (vocab === undefined) {
    throw new Deno.errors.NotFound(`${repo} has neither tokenizer.json nor vocab.json: ${missing.at(-2)}`);
  }
  await hubFile(repo, "merges.txt", options.hub);
  return fromDirectory(dirname(vocab), config ?? {});
}

/**
 * Loads a Hugging Face tokenizer: `source` is a directory (tokenizer.json, or vocab.json + merges.txt, with
 * tokenizer_config.json beside them for the special tokens), the path or `file:` URL of one of those files, a
 * tokenizer.json's bytes or parsed contents, or a Hub repo id `org/name[@revision]` (when no local path of that name
 * exists), fetched through the Hugging Face cache as `hubFile` does. Encoding follows the file's normalizer,
 * pre-tokenizer, model and post-processor (BPE, WordPiece, Unigram), by `@huggingface/tokenizers`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadTokenizer } from "../mod.ts";
 * // A byte-level BPE with one merge, "h" + "i" -> "hi", and an end-of-text token.
 * const tok = await loadTokenizer({
 *   added_tokens: [{ id: 3, content: "<eos>", special: true, lstrip: false, rstrip: false, normalized: false, single_word: false }],
 *   pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, use_regex: true },
 *   decoder: { type: "ByteLevel" },
 *   model: { type: "BPE", vocab: { h: 0, i: 1, hi: 2 }, merges: ["h i"] },
 * }, { config: { eos_token: "<eos>" } });
 * assert.deepEqual(tok.encode("hih<eos>"), [2, 0, 3]);
 * assert.equal(tok.decode([2, 0, 3]), "hih<eos>");
 * assert.equal(tok.eosId, 3);
 * assert.equal(tok.vocabSize, 4);
 * ```
 */
export async function loadTokenizer(source: TokenizerSource, options: LoadTokenizerOptions = {}): Promise<Tokenizer> {
  if (source instanceof Uint8Array) {
    let json: unknown;
    try {
      json = JSON.parse(new TextDecoder().decode(source));
    } catch (e) {
      throw new SyntaxError(`loadTokenizer: the bytes are not a tokenizer.json: ${(e as Error).message}`);
    }
    return huggingFaceTokenizer({
      tokenizer: checkTokenizerJson(json, "loadTokenizer's bytes"),
      config: options.config,
    });
  }
  if (source instanceof URL) {
    if (source.protocol !== "file:") throw new TypeError(`loadTokenizer: ${source.href} is not a file: URL`);
    return fromPath(fileUrlPath(source), options.config);
  }
  if (typeof source === "string") {
    if (await exists(source)) return fromPath(source, options.config);
    // Only org/name counts: a bare name is far more often a mistyped local file than one of the hub's legacy repos.
    if (isRepoId(source) && source.split("@")[0].includes("/")) {
      return fromHub(source, options).catch((e) => {
        const message = `loadTokenizer: there is no file or directory ${source}, and as a Hub repo id: ${e.message}`;
        throw e instanceof Deno.errors.NotFound ? new Deno.errors.NotFound(message, { cause: e }) : e;
      });
    }
    throw new Deno.errors.NotFound(`loadTokenizer: ${source} is neither a file, a directory nor a Hub repo id`);
  }
  return huggingFaceTokenizer({
    tokenizer: checkTokenizerJson(source, "loadTokenizer's object"),
    config: options.config,
  });
}
