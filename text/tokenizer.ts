// The Tokenizer contract every text source in jetfold goes through, and the byte-level tokenizer of the toy models.

/** Options for {@linkcode Tokenizer.encode}. */
export interface EncodeOptions {
  /**
   * Add the special tokens the tokenizer's post-processor adds around a text (a BOS id, say). Default true, as in
   * Hugging Face's tokenizers; the byte tokenizer has none to add.
   */
  readonly addSpecial?: boolean;
}

/** Options for {@linkcode Tokenizer.decode}. */
export interface DecodeOptions {
  /** Leave out special tokens (`<|im_end|>`, `<s>`, ...) from the text. Default false. */
  readonly skipSpecial?: boolean;
}

/** A parsed JSON object (a tokenizer.json or a tokenizer_config.json). */
export type JsonObject = Readonly<Record<string, unknown>>;

/** The files of a tokenizer once read: a tokenizer.json's contents, and its tokenizer_config.json where there is one. */
export interface TokenizerFiles {
  /** tokenizer.json's contents (for a vocab.json + merges.txt pair, the tokenizer.json built from them). */
  readonly tokenizer: JsonObject;
  /** tokenizer_config.json's contents, where there was one. */
  readonly config?: JsonObject;
}

/** Text to token ids and back. Implementations are immutable; encode and decode are synchronous. */
export interface Tokenizer {
  /** One more than the largest id the tokenizer can produce (added tokens included), so ids lie in [0, vocabSize). */
  readonly vocabSize: number;
  /** The beginning-of-sequence id, where the tokenizer names one. */
  readonly bosId?: number;
  /** The end-of-sequence id, where the tokenizer names one (generation stops on it). */
  readonly eosId?: number;
  /** The padding id, where the tokenizer names one. */
  readonly padId?: number;
  /** Every special token by its text, e.g. `"<|endoftext|>" -> 151643`; empty for the byte tokenizer. */
  readonly specialTokens: ReadonlyMap<string, number>;
  /**
   * The Hugging Face files the tokenizer was made from, as `savePretrained` writes them back; absent for the byte
   * tokenizer, which has none.
   */
  readonly files?: TokenizerFiles;
  /** The ids of `text`. */
  encode(text: string, options?: EncodeOptions): number[];
  /** The text of `ids`; bytes that are not valid UTF-8 become U+FFFD. */
  decode(ids: readonly number[], options?: DecodeOptions): string;
}

const utf8 = new TextEncoder();

/**
 * The byte-level tokenizer of jetfold's own models (`textBatch`, the CLI's `--data` and `--prompt`): one id per UTF-8
 * byte, vocabulary 256, no special tokens. (`decodeBytes` shows byte ids for display instead, one "·" per byte that is
 * not printable ASCII.)
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { byteTokenizer } from "../mod.ts";
 * const tok = byteTokenizer();
 * assert.deepEqual(tok.encode("Hé!"), [72, 195, 169, 33]);
 * assert.equal(tok.decode([72, 195, 169, 33]), "Hé!");
 * assert.equal(tok.vocabSize, 256);
 * ```
 */
export function byteTokenizer(): Tokenizer {
  return Object.freeze({
    vocabSize: 256,
    specialTokens: new Map<string, number>(),
    encode: (text: string) => Array.from(utf8.encode(text)),
    decode: (ids: readonly number[]) => {
      const bad = ids.findIndex((id) => !Number.isInteger(id) || id < 0 || id > 255);
      if (bad >= 0) throw new RangeError(`byteTokenizer.decode: id ${ids[bad]} at position ${bad} is not a byte`);
      return new TextDecoder().decode(Uint8Array.from(ids));
    },
  });
}
