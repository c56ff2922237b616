// Training data for the CLI: seeded toy batches or a UTF-8 text file, a held-out split, prompts.

import { foldIn, type Key, randomKey, textBatch, type ToyBatch, toyBatch } from "../mod.ts";
import { InputError, readBytes } from "./input.ts";
import { DATA_LIMIT } from "./limits.ts";

/** What a checkpoint records about its data, enough to rebuild the same batches in the same order. */
export type DataMeta =
  | { source: "toy"; seed: number; seqLen: number; batch: number; pairs: number }
  | { source: "text"; file: string; bytes: number; fnv1a: string; seed: number; seqLen: number; batch: number };

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
}

/** Options that choose the data. */
export interface DataOptions {
  readonly data: string | null;
  readonly seed: number;
  readonly seqLen: number;
  readonly batch: number;
  readonly pairs: number;
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
  const key = dataKey(o.seed), { seqLen, pairs } = o;
  if (seqLen < 32) throw new InputError(`--seq-len must be at least 32 for the toy data, got ${seqLen}`);
  if (pairs < 1 || pairs > 10 || 6 * pairs + 8 > seqLen) {
    throw new InputError(`--pairs must be in 1..10 with 6 * pairs + 8 <= seq-len (${seqLen}), got ${pairs}`);
  }
  let held: ToyBatch[] | null = null;
  return {
    meta: { source: "toy", seed: o.seed, seqLen, batch: o.batch, pairs },
    label: `toy bytes: ${pairs} key-value pairs, bigram text, then recall queries (${seqLen} tokens per sequence)`,
    batch: (stream, i) => toyBatch(foldIn(foldIn(key, stream), i), { batch: o.batch, seqLen, pairs }),
    heldOut: () => (held ??= [toyBatch(foldIn(key, HELD_OUT), { batch: o.evalBatch, seqLen, pairs })]),
    async prompt() {
      const b = toyBatch(foldIn(key, PROMPT), { batch: 1, seqLen, pairs });
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

/** Opens the data the options name: a UTF-8 text file with `data`, else the toy generator. */
export async function openData(o: DataOptions): Promise<DataSource> {
  if (o.data === null) return toySource(o);
  const bytes = await readBytes(o.data, "--data", DATA_LIMIT);
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new InputError(`--data ${o.data}: not UTF-8 text`);
  }
  return textSource(o, o.data, bytes);
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
  if (m.source === "toy") whole("pairs", 1);
  else if (m.source === "text") {
    if (typeof m.file !== "string" || m.file === "" || m.file.includes("\0")) fail("file must be a path");
    whole("bytes", 0);
    if (typeof m.fnv1a !== "string" || !/^[0-9a-f]{8}$/.test(m.fnv1a)) fail("fnv1a must be 8 hex digits");
  } else fail('source must be "toy" or "text"');
  const known = m.source === "toy" ? ["source", "seed", "seqLen", "batch", "pairs"] : [
    "source",
    "seed",
    "seqLen",
    "batch",
    "file",
    "bytes",
    "fnv1a",
  ];
  const extra = Object.keys(m).find((k) => !known.includes(k));
  if (extra !== undefined) fail(`unknown field "${extra}" (${m.source} data has ${known.join(", ")})`);
  return m as DataMeta;
}

/** Reopens the data a checkpoint was trained on, checking that a text file has not changed. */
export async function reopenData(meta: DataMeta, evalBatch: number): Promise<DataSource> {
  const pairs = meta.source === "toy" ? meta.pairs : 4;
  const source = await openData({ ...meta, data: meta.source === "text" ? meta.file : null, pairs, evalBatch });
  if (meta.source === "text" && source.meta.source === "text" && source.meta.fnv1a !== meta.fnv1a) {
    throw new InputError(`--data ${meta.file}: the file changed since the run started (checksum differs)`);
  }
  return source;
}
