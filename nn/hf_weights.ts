// Hugging Face weight files: safetensors of F32, BF16 or F16, one file or shards named by an index, read as f32.

import { fmt, sizeOf } from "../core/shape.ts";
import { checkCoverage, checkMetadata, checksums, verifyChecksums } from "./checkpoint_checks.ts";
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
  /** Its bytes (a view into the file's bytes). */
  readonly bytes: Uint8Array;
}

const WIDTHS: Readonly<Record<string, number>> = { F32: 4, BF16: 2, F16: 2 };
const META = "__metadata__";

/** The entries of one safetensors file's bytes, checked as the reference reader does (and checksums, where saved). */
export function weightEntries(bytes: Uint8Array, file: string, where: string): WeightEntry[] {
  const at = `${where}: ${file}`;
  if (bytes.length < 8) throw new Error(`${at}: truncated: ${bytes.length} bytes is shorter than the header length`);
  const n = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(bytes.length - 8)) throw new Error(`${at}: truncated: the header says ${n} bytes`);
  const start = 8 + Number(n), dataLength = bytes.length - start;
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, start)));
  } catch (e) {
    throw new Error(`${at}: the header is not valid UTF-8 JSON (${(e as Error).message})`, { cause: e });
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    throw new Error(`${at}: the header must be a JSON object`);
  }
  let metadata: Record<string, string> = {};
  const entries: (WeightEntry & { begin: number; end: number })[] = [];
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
    entries.push({ name, code: dtype, shape, file, begin, end, bytes: bytes.subarray(start + begin, start + end) });
  }
  checkCoverage(entries, dataLength, at);
  verifyChecksums(metadata, entries, at); // only files jetfold wrote have them
  return entries.map(({ name, code, shape, file, bytes }) => ({ name, code, shape, file, bytes }));
}

/** The values of an entry as f32, converted exactly (little-endian, as the format stores them). */
export function entryValues(e: WeightEntry): Float32Array {
  const copy = e.bytes.slice(), view = new DataView(copy.buffer);
  if (e.code === "F32") {
    const out = new Float32Array(copy.length / 4);
    for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(4 * i, true);
    return out;
  }
  const bits = new Uint16Array(copy.length / 2);
  for (let i = 0; i < bits.length; i++) bits[i] = view.getUint16(2 * i, true);
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
 * `model.safetensors.index.json` names (each must hold exactly the tensors the index gives it).
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
    const bytes = await readBytes(dir, file, mapped ? "the shard" : "the weights file", where);
    for (const e of weightEntries(bytes, file, where)) {
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

// One safetensors file: the header (with `format: "pt"`, which transformers requires, and checksums), then the data.
async function fileBytes(tensors: readonly WeightOut[], code: "F32" | "BF16"): Promise<Uint8Array> {
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
  const out = new Uint8Array(8 + padded + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(text, 8);
  out.fill(0x20, 8 + text.length, 8 + padded);
  let at = 8 + padded;
  for (const t of stored) out.set(t.bytes, at), at += t.bytes.length;
  return out;
}

async function writeAtomically(path: string, bytes: Uint8Array, where: string): Promise<void> {
  const tmp = `${path}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  try {
    await Deno.writeFile(tmp, bytes, { createNew: true });
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
    await writeAtomically(`${dir}/model.safetensors`, await fileBytes(tensors, code), where);
    return drop("model.safetensors.index.json");
  }
  const n = shards.length, pad = (i: number) => String(i).padStart(5, "0");
  const weightMap: Record<string, string> = {};
  for (const [i, shard] of shards.entries()) {
    const file = `model-${pad(i + 1)}-of-${pad(n)}.safetensors`;
    await writeAtomically(`${dir}/${file}`, await fileBytes(shard, code), where);
    for (const t of shard) weightMap[t.name] = file;
  }
  const total = tensors.reduce((acc, t) => acc + size(t), 0);
  const index = JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2) + "\n";
  await writeAtomically(`${dir}/model.safetensors.index.json`, new TextEncoder().encode(index), where);
  await drop("model.safetensors");
}
