// Toy data with real structure: a Markov "language" mixed with associative recall, or any text.

import { foldIn, type Key, randomBits, type Tensor, tensor } from "../core/mod.ts";

/** A batch of next-token data; `answers` marks (1) the positions whose target is a recalled value. */
export interface ToyBatch {
  /** Input bytes, i32 `[B, T]`. */
  readonly inputs: Tensor;
  /** Next bytes, i32 `[B, T]`. */
  readonly targets: Tensor;
  /** 1 where the target is a recalled value, else 0; f32 `[B, T]`. */
  readonly answers: Tensor;
}

/** Options of `toyBatch`. */
export interface ToyOptions {
  /** Sequences per batch. */
  readonly batch: number;
  /** Tokens per sequence (at least 32). */
  readonly seqLen: number;
  /** Key/value pairs stated at the start of each sequence and queried at the end (default 4). */
  readonly pairs?: number;
  /**
   * Recall queries at the end of each sequence (default `pairs`), each asking for a random stated key; more queries
   * leave less room for the text and give more answer tokens to learn recall from.
   */
  readonly queries?: number;
}

const WORDS = [
  "the",
  "a",
  "cat",
  "dog",
  "bird",
  "sat",
  "ran",
  "flew",
  "on",
  "under",
  "over",
  "mat",
  "log",
  "tree",
  "and",
  "then",
  "slowly",
  "quickly",
  "red",
  "small",
];
const LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const DIGITS = "0123456789";

// A fixed sparse bigram table over WORDS: each word is followed by one of three others.
const NEXT = WORDS.map((_, i) => [(i * 7 + 1) % WORDS.length, (i * 3 + 5) % WORDS.length, (i * 11 + 2) % WORDS.length]);

class Stream {
  #bits: Uint32Array;
  #i = 0;
  constructor(key: Key, n: number) {
    this.#bits = randomBits(key, n);
  }
  next(n: number): number {
    return this.#bits[this.#i++ % this.#bits.length] % n;
  }
}

function sequence(key: Key, len: number, pairs: number, queries: number): [number[], number[]] {
  const r = new Stream(key, 4 * len + 64);
  const chars: string[] = [];
  const isAnswer: number[] = [];
  const push = (s: string, answer = false) => {
    for (const ch of s) {
      chars.push(ch);
      isAnswer.push(answer ? 1 : 0);
    }
  };
  const keys: string[] = [];
  while (keys.length < pairs) {
    const k = LETTERS[r.next(26)];
    if (!keys.includes(k)) keys.push(k);
  }
  const values = keys.map(() => DIGITS[r.next(10)]);
  keys.forEach((k, i) => push(`${k}${values[i]} `));
  push("| ");
  // Filler text from the bigram chain, leaving room for the queries ("?K" + value, 3 bytes each).
  const room = len + 1 - chars.length - 3 * queries;
  let w = r.next(WORDS.length);
  const text: string[] = [];
  while (text.join(" ").length + WORDS[w].length + 1 < room) {
    text.push(WORDS[w]);
    w = NEXT[w][r.next(3)];
  }
  push(text.join(" ").padEnd(room, "."));
  for (let j = 0; j < queries; j++) {
    const i = r.next(pairs);
    push(`?${keys[i]}`);
    push(values[i], true);
  }
  const bytes = chars.slice(0, len + 1).map((c) => c.charCodeAt(0));
  return [bytes, isAnswer.slice(0, len + 1)];
}

/**
 * A deterministic batch of byte sequences: `pairs` key/value pairs ("K7 "), a bigram-chain text,
 * then queries ("?K" followed by its value). Loss can fall well below uniform from the text, and
 * the answers need recall of the pairs, which is what full attention is best at.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeBytes, randomKey, toyBatch } from "../mod.ts";
 * const { inputs, targets, answers } = toyBatch(randomKey(0), { batch: 2, seqLen: 32 });
 * assert.deepEqual([inputs.shape, inputs.dtype, answers.dtype], [[2, 32], "i32", "f32"]);
 * const x = await inputs.data(), y = await targets.data();
 * assert.deepEqual(x.slice(1, 32), y.slice(0, 31)); // the targets are the next bytes
 * assert.match(decodeBytes([...x.slice(0, 32)]), /^([A-Z]\d ){4}\| /); // four key/value pairs, then text
 * assert.equal(await answers.sum().item(), 8); // four recalled values per sequence
 * assert.deepEqual(await toyBatch(randomKey(0), { batch: 2, seqLen: 32 }).inputs.data(), x); // a pure function of the key
 * ```
 */
export function toyBatch(key: Key, opts: ToyOptions): ToyBatch {
  const { batch, seqLen, pairs = 4, queries = pairs } = opts;
  if (!Number.isInteger(batch) || batch < 1) {
    throw new Error(`toyBatch: batch must be a positive integer, got ${batch}`);
  }
  if (!Number.isInteger(seqLen) || seqLen < 32) {
    throw new Error(`toyBatch: seqLen must be an integer >= 32, got ${seqLen}`);
  }
  if (!Number.isInteger(pairs) || pairs < 1 || pairs > 10 || 6 * pairs + 8 > seqLen) {
    throw new Error(`toyBatch: pairs must be an integer in 1..10 that fits seqLen ${seqLen}, got ${pairs}`);
  }
  if (!Number.isInteger(queries) || queries < 1 || 3 * (pairs + queries) + 4 > seqLen) {
    throw new Error(
      `toyBatch: queries must be a positive integer with 3 * (pairs + queries) + 4 <= seqLen (${seqLen}), got ${queries}`,
    );
  }
  const inputs = new Int32Array(batch * seqLen), targets = new Int32Array(batch * seqLen);
  const answers = new Float32Array(batch * seqLen);
  for (let b = 0; b < batch; b++) {
    const [bytes, isAnswer] = sequence(foldIn(key, b), seqLen, pairs, queries);
    for (let t = 0; t < seqLen; t++) {
      inputs[b * seqLen + t] = bytes[t];
      targets[b * seqLen + t] = bytes[t + 1];
      answers[b * seqLen + t] = isAnswer[t + 1];
    }
  }
  const shape = [batch, seqLen];
  return {
    inputs: tensor(inputs, { shape }),
    targets: tensor(targets, { shape }),
    answers: tensor(answers, { shape }),
  };
}

/**
 * Random windows of a byte string (e.g. a UTF-8 text file) as a batch; `answers` is all zero.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeBytes, randomKey, textBatch } from "../mod.ts";
 * const text = "some text to learn from, repeated. ".repeat(20);
 * const batch = textBatch(new TextEncoder().encode(text), { key: randomKey(0), batch: 4, seqLen: 32 });
 * assert.deepEqual(batch.inputs.shape, [4, 32]);
 * const x = await batch.inputs.data();
 * for (let b = 0; b < 4; b++) assert.ok(text.includes(decodeBytes([...x.slice(32 * b, 32 * b + 32)])));
 * assert.equal(await batch.answers.sum().item(), 0);
 * ```
 */
export function textBatch(
  bytes: Uint8Array,
  opts: { readonly key: Key; readonly batch: number; readonly seqLen: number },
): ToyBatch {
  const { batch, seqLen } = opts;
  if (bytes.length < seqLen + 1) {
    throw new Error(`textBatch: the text has ${bytes.length} bytes; it needs at least seqLen + 1 = ${seqLen + 1}`);
  }
  const starts = randomBits(opts.key, batch);
  const inputs = new Int32Array(batch * seqLen), targets = new Int32Array(batch * seqLen);
  for (let b = 0; b < batch; b++) {
    const s = starts[b] % (bytes.length - seqLen);
    for (let t = 0; t < seqLen; t++) {
      inputs[b * seqLen + t] = bytes[s + t];
      targets[b * seqLen + t] = bytes[s + t + 1];
    }
  }
  const shape = [batch, seqLen];
  return {
    inputs: tensor(inputs, { shape }),
    targets: tensor(targets, { shape }),
    answers: tensor(new Float32Array(batch * seqLen), { shape }),
  };
}

/**
 * Decodes byte tokens for display, showing non-printable bytes (and those above ASCII) as "·".
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeBytes } from "../mod.ts";
 * assert.equal(decodeBytes([72, 105, 33, 10, 200]), "Hi!··");
 * ```
 */
export function decodeBytes(ids: readonly number[]): string {
  return ids.map((b) => (b >= 32 && b < 127 ? String.fromCharCode(b) : "·")).join("");
}
