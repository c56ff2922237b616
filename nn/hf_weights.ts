// Hugging Face weight files: safetensors of F32, BF16 or F16, one file or shards named by an index, read as f32.

import { fmt, sizeOf } from "../core/shape.ts";
import {
  checkCoverage,
  checkMetadata,
  checksums,
  checksumTable,
  checkTensorSum,
  verifyChecksums,
} from "./checkpoint_checks.ts";
import { bf16ToF32, f16ToF32, f32ToBf16 } from "./half.ts";

/** A tensor's header entry: where it lives and how it is stored. */
export interface WeightEntry {
  /** The tensor's name. */
  readonly name: string;
  /** The format's dtype code: F32, BF16 or F16. */
  readonly code: string;
  /** Its shape. */
  readonly shape: readonly number[];
  /** The file it is in (relative to the model directory). */
  readonly file: string;
  /** Reads its bytes from the file (and checks them against the file's checksum, where it has one). */
  read(): Promise<Uint8Array>;
}

const WIDTHS: Readonly<Record<string, number>> = { F32: 4, BF16: 2, F16: 2 };
const META = "__metadata__";
// No real header comes near this; a corrupt length would otherwise ask for gigabytes before parsing fails.
const MAX_HEADER = 100 * 2 ** 20;

interface Located {
  readonly name: string;
  readonly code: string;
  readonly shape: readonly number[];
  readonly begin: number;
  readonly end: number;
}

// The parsed header of one file: its metadata and where each tensor's bytes lie in the data section.
function parseHeader(
  text: Uint8Array,
  dataLength: number,
  at: string,
): { metadata: Record<string, string>; entries: Located[] } {
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(text));
  } catch (e) {
    throw new Error(`${at}: the header is not valid UTF-8 JSON (${(e as Error).message})`, { cause: e });
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    throw new Error(`${at}: the header must be a JSON object`);
  }
  let metadata: Record<string, string> = {};
  const entries: Located[] = [];
  for (const [name, info] of Object.entries(header)) {
    if (name === META) {
      metadata = checkMetadata(info, `${at}: ${META}`);
      continue;
    }
    const { dtype, shape, data_offsets: offsets } = Object(info) as Record<string, unknown>;
    if (typeof dtype !== "string" || !Object.hasOwn(WIDTHS, dtype)) {
      throw new Error(`${at}: tensor "${name}" has dtype ${JSON.stringify(dtype)} (supported: F32, BF16, F16)`);
    }
    const count = (d: unknown): d is number => Number.isSafeInteger(d) && (d as number) >= 0;
    if (!Array.isArray(shape) || !shape.every(count)) throw new Error(`${at}: tensor "${name}" has a bad shape`);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(count) || offsets[0] > offsets[1]) {
      throw new Error(`${at}: tensor "${name}" has bad data_offsets ${JSON.stringify(offsets)}`);
    }
    const [begin, end] = offsets as number[];
    if (end > dataLength) throw new Error(`${at}: truncated: tensor "${name}" ends past the data`);
    if (end - begin !== sizeOf(shape) * WIDTHS[dtype]) {
      throw new Error(`${at}: tensor "${name}" of shape ${fmt(shape)} ${dtype} does not fit ${end - begin} bytes`);
    }
    entries.push({ name, code: dtype, shape, begin, end });
  }
  checkCoverage(entries, dataLength, at);
  return { metadata, entries };
}

/**
 * The entries of one safetensors file's bytes, held in memory, checked as the reference reader does (and
 * checksums, where saved).
 */
export function weightEntries(bytes: Uint8Array, file: string, where: string): (WeightEntry & { bytes: Uint8Array })[] {
  const at = `${where}: ${file}`;
  if (bytes.length < 8) throw new Error(`${at}: truncated: ${bytes.length} bytes is shorter than the header length`);
  const n = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(bytes.length - 8)) throw new Error(`${at}: truncated: the header says ${n} bytes`);
  const start = 8 + Number(n);
  const { metadata, entries } = parseHeader(bytes.subarray(8, start), bytes.length - start, at);
  const held = entries.map((e) => ({ ...e, file, bytes: bytes.subarray(start + e.begin, start + e.end) }));
  verifyChecksums(metadata, held, at); // only files jetfold wrote have them
  return held.map(({ name, code, shape, bytes }) => ({
    name,
    code,
    shape,
    file,
    bytes,
    read: () => Promise.resolve(bytes),
  }));
}

async function readExactly(f: Deno.FsFile, out: Uint8Array, at: string): Promise<void> {
  for (let done = 0; done < out.length;) {
    const n = await f.read(out.subarray(done));
    if (n === null) throw new Error(`${at}: truncated: the file ended while a tensor was read`);
    done += n;
  }
}

// One file's entries by its header alone: each tensor's bytes are read from disk when asked for, so a model
// loads with one tensor's bytes in memory at a time rather than a copy of every file.
async function fileEntries(dir: string, file: string, what: string, where: string): Promise<WeightEntry[]> {
  const path = `${dir}/${file}`, at = `${where}: ${file}`;
  let size: number, head: Uint8Array;
  try {
    size = (await Deno.stat(path)).size;
    using f = await Deno.open(path, { read: true });
    if (size < 8) throw new Error(`${at}: truncated: ${size} bytes is shorter than the header length`);
    const length = new Uint8Array(8);
    await readExactly(f, length, at);
    const n = new DataView(length.buffer).getBigUint64(0, true);
    if (n > BigInt(size - 8)) throw new Error(`${at}: truncated: the header says ${n} bytes`);
    if (n > BigInt(MAX_HEADER)) throw new Error(`${at}: the header says ${n} bytes, more than ${MAX_HEADER}`);
    head = new Uint8Array(Number(n));
    await readExactly(f, head, at);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new Error(`${where}: ${what} ${file} is missing from ${dir}`);
    if ((e as Error).message.startsWith(at)) throw e;
    throw new Error(`${where}: could not read ${path}: ${(e as Error).message}`, { cause: e });
  }
  const start = 8 + head.length;
  const { metadata, entries } = parseHeader(head, size - start, at);
  // The header's checksum needs no tensor bytes (it covers names, dtypes and shapes); each tensor's is checked
  // when its bytes are read.
  const sums = checksumTable(metadata, entries, at);
  return entries.map((e) => ({
    name: e.name,
    code: e.code,
    shape: e.shape,
    file,
    async read() {
      const out = new Uint8Array(e.end - e.begin);
      using f = await Deno.open(path, { read: true });
      await f.seek(start + e.begin, Deno.SeekMode.Start);
      await readExactly(f, out, at);
      if (sums !== null) checkTensorSum(sums, e.name, out, at);
      return out;
    },
  }));
}

const LITTLE_ENDIAN = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

/** The values of an entry's bytes as f32, converted exactly (little-endian, as the format stores them). */
export function entryValues(e: { readonly code: string; readonly bytes: Uint8Array }): Float32Array {
  const width = WIDTHS[e.code], n = e.bytes.length / width;
  // Straight views where the host is little-endian and the bytes aligned (a fresh read always is).
  const aligned = LITTLE_ENDIAN && e.bytes.byteOffset % width === 0;
  if (e.code === "F32") {
    if (aligned) return new Float32Array(e.bytes.buffer, e.bytes.byteOffset, n).slice();
    const out = new Float32Array(n), view = new DataView(e.bytes.buffer, e.bytes.byteOffset, e.bytes.length);
    for (let i = 0; i < n; i++) out[i] = view.getFloat32(4 * i, true);
    return out;
  }
  let bits: Uint16Array;
  if (aligned) bits = new Uint16Array(e.bytes.buffer, e.bytes.byteOffset, n);
  else {
    bits = new Uint16Array(n);
    const view = new DataView(e.bytes.buffer, e.bytes.byteOffset, e.bytes.length);
    for (let i = 0; i < n; i++) bits[i] = view.getUint16(2 * i, true);
  }
  return e.code === "BF16" ? bf16ToF32(bits) : f16ToF32(bits);
}

async function readBytes(dir: string, file: string, what: string, where: string): Promise<Uint8Array> {
  try {
    return await Deno.readFile(`${dir}/${file}`);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new Error(`${where}: ${what} ${file} is missing from ${dir}`);
    throw new Error(`${where}: could not read ${dir}/${file}: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * Every weight of a model directory: `model.safetensors`, or the shards that
 * `model.safetensors.index.json` names (each must hold exactly the tensors the index gives it). Only the
 * headers are read here; each entry's `read()` reads its tensor's bytes.
 */
export async function readWeights(dir: string, where: string): Promise<Map<string, WeightEntry>> {
  const has = async (f: string) => await Deno.stat(`${dir}/${f}`).then(() => true, () => false);
  const index = "model.safetensors.index.json";
  let files: string[], mapped: Record<string, unknown> | null = null;
  if (await has(index)) {
    const text = new TextDecoder().decode(await readBytes(dir, index, "the index", where));
    let parsed: { weight_map?: unknown };
    try {
      parsed = JSON.parse(text);
    } catch (e) {
      throw new Error(`${where}: ${index} is not JSON (${(e as Error).message})`, { cause: e });
    }
    const map = parsed.weight_map;
    if (typeof map !== "object" || map === null || Array.isArray(map)) {
      throw new Error(`${where}: ${index} has no weight_map object`);
    }
    mapped = map as Record<string, unknown>;
    files = [...new Set(Object.values(mapped).map(String))].sort();
  } else if (await has("model.safetensors")) files = ["model.safetensors"];
  else throw new Error(`${where}: ${dir} has neither model.safetensors nor ${index}`);
  const found = new Map<string, WeightEntry>();
  for (const file of files) {
    for (const e of await fileEntries(dir, file, mapped ? "the shard" : "the weights file", where)) {
      if (found.has(e.name)) {
        throw new Error(`${where}: tensor "${e.name}" is in both ${found.get(e.name)!.file} and ${file}`);
      }
      found.set(e.name, e);
    }
  }
  if (mapped !== null) {
    for (const [name, file] of Object.entries(mapped)) {
      if (found.get(name)?.file !== file) {
        throw new Error(`${where}: ${index} puts "${name}" in ${file}, which lacks it`);
      }
    }
    const stray = [...found.keys()].find((name) => !(name in mapped!));
    if (stray !== undefined) throw new Error(`${where}: tensor "${stray}" is in a shard but not in ${index}`);
  }
  return found;
}

/** A tensor to write: its name, shape and f32 values. */
export interface WeightOut {
  /** The tensor's name. */
  readonly name: string;
  /** Its shape. */
  readonly shape: readonly number[];
  /** Its values. */
  readonly values: Float32Array;
}

function storedBytes(values: Float32Array, code: "F32" | "BF16"): Uint8Array {
  const out = new Uint8Array(values.length * WIDTHS[code]), view = new DataView(out.buffer);
  if (code === "F32") values.forEach((v, i) => view.setFloat32(4 * i, v, true));
  else f32ToBf16(values).forEach((b, i) => view.setUint16(2 * i, b, true));
  return out;
}

// One safetensors file: the header (with `format: "pt"`, which transformers requires, and checksums), then the data,
// as chunks written one after another: the whole file is never assembled in memory beside the tensors' bytes.
async function fileChunks(tensors: readonly WeightOut[], code: "F32" | "BF16"): Promise<Uint8Array[]> {
  const stored = tensors.map((t) => ({ name: t.name, code, shape: t.shape, bytes: storedBytes(t.values, code) }));
  const metadata = { format: "pt", ...await checksums({ format: "pt" }, stored) };
  const header: Record<string, unknown> = { [META]: metadata };
  let offset = 0;
  for (const t of stored) {
    header[t.name] = { dtype: code, shape: t.shape, data_offsets: [offset, offset + t.bytes.length] };
    offset += t.bytes.length;
  }
  const text = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(text.length / 8) * 8;
  const head = new Uint8Array(8 + padded);
  new DataView(head.buffer).setBigUint64(0, BigInt(padded), true);
  head.set(text, 8);
  head.fill(0x20, 8 + text.length, 8 + padded);
  return [head, ...stored.map((t) => t.bytes)];
}

async function writeAtomically(path: string, chunks: readonly Uint8Array[], where: string): Promise<void> {
  const tmp = `${path}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  try {
    {
      using f = await Deno.open(tmp, { write: true, createNew: true });
      for (const chunk of chunks) {
        for (let done = 0; done < chunk.length;) done += await f.write(chunk.subarray(done));
      }
    }
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw new Error(`${where}: could not write ${path}: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * Writes weights as transformers saves them: `model.safetensors`, or, when they exceed
 * `maxShardBytes`, shards `model-0000i-of-0000n.safetensors` and `model.safetensors.index.json`.
 */
export async function writeWeights(
  dir: string,
  tensors: readonly WeightOut[],
  opts: { readonly code: "F32" | "BF16"; readonly maxShardBytes: number; readonly where: string },
): Promise<void> {
  const { code, where } = opts, size = (t: WeightOut) => t.values.length * WIDTHS[code];
  const shards: WeightOut[][] = [[]];
  let held = 0;
  for (const t of tensors) {
    if (held > 0 && held + size(t) > opts.maxShardBytes) shards.push([]), held = 0;
    shards[shards.length - 1].push(t), held += size(t);
  }
  // The other layout's index or file, left by an earlier save, would otherwise be read instead.
  const drop = (file: string) => Deno.remove(`${dir}/${file}`).catch(() => {});
  if (shards.length === 1) {
    await writeAtomically(`${dir}/model.safetensors`, await fileChunks(tensors, code), where);
    return drop("model.safetensors.index.json");
  }
  const n = shards.length, pad = (i: number) => String(i).padStart(5, "0");
  const weightMap: Record<string, string> = {};
  for (const [i, shard] of shards.entries()) {
    const file = `model-${pad(i + 1)}-of-${pad(n)}.safetensors`;
    await writeAtomically(`${dir}/${file}`, await fileChunks(shard, code), where);
    for (const t of shard) weightMap[t.name] = file;
  }
  const total = tensors.reduce((acc, t) => acc + size(t), 0);
  const index = JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2) + "\n";
  await writeAtomically(`${dir}/model.safetensors.index.json`, [new TextEncoder().encode(index)], where);
  await drop("model.safetensors");
}
