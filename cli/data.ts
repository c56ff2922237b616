// Training data for the CLI: seeded toy batches or a UTF-8 text file, a held-out split, prompts.

import {
  foldIn,
  type Key,
  loadTokenizer,
  ops,
  randint,
  randomKey,
  type Tensor,
  tensor,
  textBatch,
  type Tokenizer,
  type ToyBatch,
  toyBatch,
} from "../mod.ts";
import { InputError, readBytes } from "./input.ts";
import { DATA_LIMIT } from "./limits.ts";
import { encodeText } from "./model.ts";

/** What a checkpoint records about its data, enough to rebuild the same batches in the same order. */
export type DataMeta =
  | {
    source: "toy";
    seed: number;
    seqLen: number;
    batch: number;
    pairs: number;
    /** Recall queries per sequence; absent when it is `pairs` (the default, and every run before the option). */
    queries?: number;
  }
  | { source: "text"; file: string; bytes: number; fnv1a: string; seed: number; seqLen: number; batch: number }
  | {
    source: "tokens";
    file: string;
    bytes: number;
    fnv1a: string;
    seed: number;
    seqLen: number;
    batch: number;
    /** The `--model` whose tokenizer read the file. */
    model: string;
    /** The model's embedding rows, which every id must be below. */
    vocab: number;
  };

/** Batches by (stream, index), held-out batches for the proxies, and a held-out prompt. */
export interface DataSource {
  readonly meta: DataMeta;
  /** One line describing the data. */
  readonly label: string;
  /** Training batch `i` of stream `stream` (pretrain, supernet, tune...): a pure function of seed and position. */
  batch(stream: number, i: number): ToyBatch;
  /** Held-out batches (toy: sequences no training stream draws; text: the file's last tenth). */
  heldOut(): ToyBatch[];
  /** A held-out prompt; for toy data it ends at the first recall query, `expect` being the answer. */
  prompt(): Promise<{ ids: number[]; expect: number | null }>;
  /** The tokenizer the text went through (`--model`'s); absent for byte tokens. */
  readonly tokenizer?: Tokenizer;
}

/** What `--data` goes through for a `--model`: its tokenizer, its embedding rows, and the model's name. */
export interface TextCodec {
  readonly tokenizer: Tokenizer;
  readonly vocab: number;
  readonly model: string;
}

/** Options that choose the data. */
export interface DataOptions {
  readonly data: string | null;
  readonly seed: number;
  readonly seqLen: number;
  readonly batch: number;
  readonly pairs: number;
  /** Toy data: recall queries per sequence; null for as many as `pairs`. */
  readonly queries: number | null;
  readonly evalBatch: number;
}

/** Streams of training batches: one per phase, so phases never share batches. */
export const STREAM = { train: 0, pretrain: 1, supernet: 2, tune: 3 } as const;

const HELD_OUT = 0x7fff0001, PROMPT = 0x7fff0002;
const QUERY = "?".charCodeAt(0);

/** The data key of a seed (distinct from the keys used for init and path sampling). */
function dataKey(seed: number): Key {
  return foldIn(randomKey(seed), 1001);
}

/** 32-bit FNV-1a of bytes, as 8 hex digits: a cheap check that a resumed run reads the same file. */
export function fnv1a(bytes: Uint8Array): string {
  let h = 0x811c9dc5;
  for (const b of bytes) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h.toString(16).padStart(8, "0");
}

function toySource(o: DataOptions): DataSource {
  const key = dataKey(o.seed), { seqLen, pairs } = o, queries = o.queries ?? pairs;
  if (seqLen < 32) throw new InputError(`--seq-len must be at least 32 for the toy data, got ${seqLen}`);
  if (pairs < 1 || pairs > 10 || 6 * pairs + 8 > seqLen) {
    throw new InputError(`--pairs must be in 1..10 with 6 * pairs + 8 <= seq-len (${seqLen}), got ${pairs}`);
  }
  if (queries < 1 || 3 * (pairs + queries) + 4 > seqLen) {
    throw new InputError(
      `--queries must be at least 1 with 3 * (pairs + queries) + 4 <= seq-len (${seqLen}), got ${queries}`,
    );
  }
  const shape = { seqLen, pairs, queries };
  let held: ToyBatch[] | null = null;
  return {
    meta: { source: "toy", seed: o.seed, seqLen, batch: o.batch, pairs, ...(queries === pairs ? {} : { queries }) },
    label: `toy bytes: ${pairs} key-value pairs, bigram text, then ${queries} recall queries ` +
      `(${seqLen} tokens per sequence)`,
    batch: (stream, i) => toyBatch(foldIn(foldIn(key, stream), i), { batch: o.batch, ...shape }),
    heldOut: () => (held ??= [toyBatch(foldIn(key, HELD_OUT), { batch: o.evalBatch, ...shape })]),
    async prompt() {
      const b = toyBatch(foldIn(key, PROMPT), { batch: 1, ...shape });
      const [inputs, targets] = [Array.from(await b.inputs.data()), Array.from(await b.targets.data())];
      const q = inputs.indexOf(QUERY);
      return { ids: inputs.slice(0, q + 2), expect: targets[q + 1] };
    },
  };
}

function textSource(o: DataOptions, file: string, bytes: Uint8Array): DataSource {
  const { seqLen } = o, need = 2 * (seqLen + 1);
  if (bytes.length < need) {
    throw new InputError(
      `--data ${file}: ${bytes.length} bytes is too short; seq-len ${seqLen} needs at least ${need}`,
    );
  }
  const cut = bytes.length - Math.max(seqLen + 1, Math.floor(bytes.length / 10));
  const train = bytes.subarray(0, cut), held = bytes.subarray(cut);
  const key = dataKey(o.seed);
  let heldBatches: ToyBatch[] | null = null;
  return {
    meta: { source: "text", file, bytes: bytes.length, fnv1a: fnv1a(bytes), seed: o.seed, seqLen, batch: o.batch },
    label: `text ${file}: ${train.length} bytes to train on, ${held.length} held out (byte tokens)`,
    batch: (stream, i) => textBatch(train, { key: foldIn(foldIn(key, stream), i), batch: o.batch, seqLen }),
    heldOut: () => (heldBatches ??= [textBatch(held, { key: foldIn(key, HELD_OUT), batch: o.evalBatch, seqLen })]),
    prompt: () => Promise.resolve({ ids: Array.from(held.subarray(0, Math.min(32, seqLen))), expect: null }),
  };
}

// Batch of token ids [n]: `batch` windows of seqLen + 1 at seeded starts, gathered on the device.
function tokenBatch(ids: Tensor, key: Key, batch: number, seqLen: number): ToyBatch {
  const starts = randint(key, [batch, 1], { maxval: ids.shape[0] - seqLen });
  const at = starts.add(ops.arange(0, seqLen, { dtype: "i32" }).reshape([1, seqLen]));
  return { inputs: ids.gather(at), targets: ids.gather(at.add(1)), answers: ops.zeros([batch, seqLen]) };
}

function tokenSource(o: DataOptions, file: string, bytes: Uint8Array, codec: TextCodec): DataSource {
  const text = new TextDecoder().decode(bytes), { seqLen } = o;
  const all = encodeText(codec.tokenizer, text, codec.vocab, `--data ${file}`), need = 2 * (seqLen + 1);
  if (all.length < need) {
    throw new InputError(`--data ${file}: ${all.length} tokens is too few; seq-len ${seqLen} needs at least ${need}`);
  }
  const cut = all.length - Math.max(seqLen + 1, Math.floor(all.length / 10));
  const train = tensor(Int32Array.from(all.slice(0, cut)), { dtype: "i32" });
  const held = tensor(Int32Array.from(all.slice(cut)), { dtype: "i32" });
  const key = dataKey(o.seed);
  let heldBatches: ToyBatch[] | null = null;
  return {
    meta: {
      source: "tokens",
      file,
      bytes: bytes.length,
      fnv1a: fnv1a(bytes),
      seed: o.seed,
      seqLen,
      batch: o.batch,
      model: codec.model,
      vocab: codec.vocab,
    },
    label: `text ${file}: ${cut} tokens to train on, ${all.length - cut} held out (${codec.model}'s tokenizer)`,
    batch: (stream, i) => tokenBatch(train, foldIn(foldIn(key, stream), i), o.batch, seqLen),
    heldOut: () => (heldBatches ??= [tokenBatch(held, foldIn(key, HELD_OUT), o.evalBatch, seqLen)]),
    prompt: () => Promise.resolve({ ids: all.slice(cut, cut + Math.min(32, seqLen)), expect: null }),
    tokenizer: codec.tokenizer,
  };
}

/**
 * Opens the data the options name: a UTF-8 text file with `data` (as bytes, or through `codec`'s tokenizer for a
 * `--model`), else the toy generator (which a `--model` cannot read).
 */
export async function openData(o: DataOptions, codec?: TextCodec): Promise<DataSource> {
  if (o.data === null && codec !== undefined) {
    throw new InputError(
      `--model ${codec.model} needs --data FILE to train on (the toy data is bytes, for jetfold's own models)`,
    );
  }
  if (o.data === null) return toySource(o);
  const bytes = await readBytes(o.data, "--data", DATA_LIMIT);
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new InputError(`--data ${o.data}: not UTF-8 text`);
  }
  return codec === undefined ? textSource(o, o.data, bytes) : tokenSource(o, o.data, bytes, codec);
}

/** The tokenizer a checkpoint's data went through (its `--model`'s), for a command that reopens or samples it. */
export async function codecOf(meta: DataMeta & { source: "tokens" }): Promise<TextCodec> {
  try {
    return { tokenizer: await loadTokenizer(meta.model), vocab: meta.vocab, model: meta.model };
  } catch (e) {
    throw new InputError(
      `the tokenizer of --model ${meta.model}, which the run's data went through: ${(e as Error).message}`,
    );
  }
}

/** Checks what a checkpoint says about its data (a `jetfold.data` record); throws naming the field. */
export function checkDataMeta(value: unknown): DataMeta {
  const m = value as Record<string, unknown>;
  const fail = (what: string) => {
    throw new Error(`jetfold.data: ${what}, got ${JSON.stringify(value)}`);
  };
  if (typeof m !== "object" || m === null) fail("expected an object");
  const whole = (k: string, min: number) => {
    if (!Number.isSafeInteger(m[k]) || (m[k] as number) < min) fail(`${k} must be an integer >= ${min}`);
  };
  whole("seed", 0);
  whole("seqLen", 2);
  whole("batch", 1);
  if (m.source === "toy") {
    whole("pairs", 1);
    if (m.queries !== undefined) whole("queries", 1);
  } else if (m.source === "text" || m.source === "tokens") {
    if (typeof m.file !== "string" || m.file === "" || m.file.includes("\0")) fail("file must be a path");
    whole("bytes", 0);
    if (typeof m.fnv1a !== "string" || !/^[0-9a-f]{8}$/.test(m.fnv1a)) fail("fnv1a must be 8 hex digits");
    if (m.source === "tokens") {
      if (typeof m.model !== "string" || m.model === "" || m.model.includes("\0")) fail("model must be a source");
      whole("vocab", 1);
    }
  } else fail('source must be "toy", "text" or "tokens"');
  const text = ["source", "seed", "seqLen", "batch", "file", "bytes", "fnv1a"];
  const known = m.source === "toy"
    ? ["source", "seed", "seqLen", "batch", "pairs", "queries"]
    : m.source === "text"
    ? text
    : [...text, "model", "vocab"];
  const extra = Object.keys(m).find((k) => !known.includes(k));
  if (extra !== undefined) fail(`unknown field "${extra}" (${m.source} data has ${known.join(", ")})`);
  return m as DataMeta;
}

/** Reopens the data a checkpoint was trained on, checking that a text file has not changed. */
export async function reopenData(meta: DataMeta, evalBatch: number): Promise<DataSource> {
  const pairs = meta.source === "toy" ? meta.pairs : 4;
  const queries = meta.source === "toy" ? meta.queries ?? null : null;
  const codec = meta.source === "tokens" ? await codecOf(meta) : undefined;
  const data = meta.source === "toy" ? null : meta.file;
  const source = await openData({ ...meta, data, pairs, queries, evalBatch }, codec);
  if (meta.source !== "toy" && source.meta.source !== "toy" && source.meta.fnv1a !== meta.fnv1a) {
    throw new InputError(`--data ${meta.file}: the file changed since the run started (checksum differs)`);
  }
  return source;
}
