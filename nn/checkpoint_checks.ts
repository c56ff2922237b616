// Checks of checkpoints: the header's layout, SHA-256 checksums of every tensor and of the header, finite weights.

import type { DType, Tensor } from "../core/mod.ts";
import { fmt, sizeOf } from "../core/shape.ts";
import { sha256Hex } from "./sha256.ts";

/** The format's dtype codes, each way, and element widths in bytes. */
export const CODES: Readonly<Record<DType, string>> = { f32: "F32", i32: "I32", bool: "BOOL" };
const DTYPES: Readonly<Record<string, DType>> = { F32: "f32", I32: "i32", BOOL: "bool" };
/** Element widths in bytes. */
export const WIDTH: Readonly<Record<DType, number>> = { f32: 4, i32: 4, bool: 1 };

/** One tensor of a header: its name, dtype, shape and byte range in the data section. */
export type Entry = Readonly<{ name: string; dtype: DType; shape: number[]; begin: number; end: number }>;

/** Per-tensor digests: a JSON object, tensor name -> SHA-256 hex of its bytes as stored. */
export const SHA256_KEY = "jetfold.sha256";
/** The SHA-256 hex of the header's other content (see `headerText`). */
export const HEADER_KEY = "jetfold.sha256.header";

/** A tensor as the checksums see it: its name, its dtype as the file spells it, its shape and bytes. */
export type Stored = Readonly<{ name: string; code: string; shape: readonly number[]; bytes: Uint8Array }>;

/** True for metadata keys that the checksums own, which callers may not set. */
export function isReserved(key: string): boolean {
  return key === SHA256_KEY || key.startsWith(`${SHA256_KEY}.`);
}

const byFirst = (a: readonly [string, ...unknown[]], b: readonly [string, ...unknown[]]) =>
  a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0;

// What the header checksum covers, in a canonical form: every metadata entry but the checksums,
// and every tensor's name, dtype and shape, each sorted by name. Offsets are not in it: the data
// checksums and the tiling check already pin where each tensor's bytes are.
function headerText(metadata: Readonly<Record<string, string>>, tensors: readonly Omit<Stored, "bytes">[]): string {
  const entries = Object.entries(metadata).filter(([key]) => !isReserved(key)).sort(byFirst);
  const table = tensors.map((t) => [t.name, t.code, t.shape] as const).sort(byFirst);
  return JSON.stringify([entries, table]);
}

function hex(digest: ArrayBuffer): string {
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function digest(bytes: Uint8Array): Promise<string> {
  // crypto.subtle takes a BufferSource; a view on a shared or resizable buffer is copied first.
  const own = bytes.buffer instanceof ArrayBuffer ? bytes as Uint8Array<ArrayBuffer> : bytes.slice();
  return hex(await crypto.subtle.digest("SHA-256", own));
}

/** The checksum entries to add to `metadata` for `tensors` (native and async: saving awaits anyway). */
export async function checksums(
  metadata: Readonly<Record<string, string>>,
  tensors: readonly Stored[],
): Promise<Record<string, string>> {
  const sums = await Promise.all(tensors.map((t) => digest(t.bytes)));
  // Built by hand because JSON.stringify would move integer-like names ("0") ahead of the rest.
  const table = tensors.map((t, i) => `${JSON.stringify(t.name)}:${JSON.stringify(sums[i])}`);
  const header = await digest(new TextEncoder().encode(headerText(metadata, tensors)));
  return { [SHA256_KEY]: `{${table.join(",")}}`, [HEADER_KEY]: header };
}

const HEX = /^[0-9a-f]{64}$/;

/**
 * Verifies the checksums in `metadata`, when it has any (files written by other tools have none),
 * and returns the metadata without them. Throws, naming the tensor or the header, on a mismatch.
 */
export function verifyChecksums(
  metadata: Readonly<Record<string, string>>,
  tensors: readonly Stored[],
  where: string,
): Record<string, string> {
  const rest = Object.fromEntries(Object.entries(metadata).filter(([key]) => !isReserved(key)));
  const sums = checksumTable(metadata, tensors, where);
  if (sums !== null) { for (const t of tensors) checkTensorSum(sums, t.name, t.bytes, where); }
  return rest;
}

/**
 * The per-tensor checksums of `metadata` once its header checksum is verified against the tensors' names, dtypes
 * and shapes (no bytes needed), or null for a file with no checksums (other tools write none). Throws, naming
 * the problem, as `verifyChecksums` does; `checkTensorSum` then checks each tensor's bytes as they are read.
 */
export function checksumTable(
  metadata: Readonly<Record<string, string>>,
  tensors: readonly Omit<Stored, "bytes">[],
  where: string,
): Record<string, string> | null {
  const table = metadata[SHA256_KEY], header = metadata[HEADER_KEY];
  if (table === undefined && header === undefined) {
    // Two damaged key names would otherwise turn a corrupt file into an unverified one.
    const near = Object.keys(metadata).find((key) => closeTo(key, SHA256_KEY) || closeTo(key, HEADER_KEY));
    if (near !== undefined) {
      throw new Error(
        `${where}: metadata key ${JSON.stringify(near)} looks like a damaged checksum key: the file was altered`,
      );
    }
    return null;
  }
  if (table === undefined || header === undefined) {
    const [has, lacks] = table === undefined ? [HEADER_KEY, SHA256_KEY] : [SHA256_KEY, HEADER_KEY];
    throw new Error(`${where}: the metadata has "${has}" but not "${lacks}": the checksums were altered`);
  }
  const sums = parseTable(table, where);
  for (const t of tensors) {
    if (!Object.hasOwn(sums, t.name)) {
      throw new Error(`${where}: tensor "${t.name}" has no checksum in "${SHA256_KEY}": it was added or renamed`);
    }
  }
  const names = new Set(tensors.map((t) => t.name));
  const gone = Object.keys(sums).find((name) => !names.has(name));
  if (gone !== undefined) {
    throw new Error(`${where}: "${SHA256_KEY}" lists tensor "${gone}" but the file has no tensor of that name`);
  }
  if (sha256Hex(new TextEncoder().encode(headerText(metadata, tensors))) !== header) {
    throw new Error(
      `${where}: the header does not match its checksum ("${HEADER_KEY}"): ` +
        "the metadata, or a tensor's dtype or shape, changed after saving",
    );
  }
  return sums;
}

/** Throws, naming the tensor, unless `bytes` have the SHA-256 that `sums` (from `checksumTable`) lists for it. */
export function checkTensorSum(
  sums: Readonly<Record<string, string>>,
  name: string,
  bytes: Uint8Array,
  where: string,
): void {
  const found = sha256Hex(bytes);
  if (found !== sums[name]) {
    throw new Error(
      `${where}: tensor "${name}" is corrupt: its bytes have SHA-256 ${found.slice(0, 16)}... ` +
        `but were saved with ${sums[name].slice(0, 16)}...`,
    );
  }
}

// True when `a` is within two single-character edits of `b` (Levenshtein distance <= 2).
function closeTo(a: string, b: string): boolean {
  if (Math.abs(a.length - b.length) > 2) return false;
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) {
      next[j] = Math.min(row[j] + 1, next[j - 1] + 1, row[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    row = next;
  }
  return row[b.length] <= 2;
}

function parseTable(text: string, where: string): Record<string, string> {
  const bad = (why: string): never => {
    throw new Error(`${where}: metadata "${SHA256_KEY}" must be a JSON object of SHA-256 hex digests: ${why}`);
  };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    bad(`it is not JSON (${(e as Error).message})`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    bad(`got ${Array.isArray(value) ? "an array" : String(value)}`);
  }
  for (const [name, sum] of Object.entries(value as object)) {
    if (typeof sum !== "string" || !HEX.test(sum)) bad(`tensor "${name}" has ${JSON.stringify(sum)}`);
  }
  return value as Record<string, string>;
}

/** Throws unless every value of an f32 tensor is finite, naming the tensor and the first bad index. */
export function checkFinite(name: string, shape: readonly number[], values: ArrayLike<number>, where: string): void {
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (Number.isFinite(v)) continue;
    const index = shape.map(() => 0);
    for (let axis = shape.length - 1, rest = i; axis >= 0; axis--) {
      index[axis] = rest % shape[axis];
      rest = Math.floor(rest / shape[axis]);
    }
    throw new Error(
      `${where}: tensor "${name}" holds ${v} at index [${index.join(", ")}]; ` +
        "non-finite weights are refused (pass allowNonFinite: true to load them anyway)",
    );
  }
}

/** The metadata as a fresh record, after checking that it is an object of strings. */
export function checkMetadata(value: unknown, where: string): Record<string, string> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new Error(`${where} must be an object of strings, got ${Array.isArray(value) ? "an array" : value}`);
  }
  for (const [key, v] of Object.entries(value)) {
    if (typeof v !== "string") {
      const got = v === null ? "null" : Array.isArray(v) ? "an array" : `${typeof v} ${JSON.stringify(v)}`;
      throw new Error(`${where} "${key}" must be a string, got ${got} (store structured values as JSON strings)`);
    }
  }
  return { ...value } as Record<string, string>;
}

/** One header entry, checked: a supported dtype, a shape, and offsets inside the data that fit the shape. */
export function parseEntry(name: string, info: unknown, dataLength: number, where: string): Entry {
  const at = `${where}: tensor "${name}"`;
  const { dtype, shape, data_offsets: offsets } = Object(info) as Record<string, unknown>;
  if (typeof dtype !== "string" || !Object.hasOwn(DTYPES, dtype)) {
    const given = dtype === undefined ? "(none given)" : JSON.stringify(dtype);
    throw new Error(`${at}: unsupported dtype ${given} (supported: ${Object.keys(DTYPES).join(", ")})`);
  }
  const isCount = (d: unknown): d is number => Number.isSafeInteger(d) && (d as number) >= 0;
  if (!Array.isArray(shape) || !shape.every(isCount)) {
    throw new Error(`${at}: shape must be a list of non-negative integers, got ${JSON.stringify(shape)}`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount) || offsets[0] > offsets[1]) {
    throw new Error(`${at}: data_offsets must be [begin, end] with 0 <= begin <= end, got ${JSON.stringify(offsets)}`);
  }
  const [begin, end] = offsets as number[];
  if (end > dataLength) {
    throw new Error(`${where}: truncated: tensor "${name}" ends at byte ${end} but the data section has ${dataLength}`);
  }
  const need = sizeOf(shape) * WIDTH[DTYPES[dtype]], held = end - begin;
  if (held !== need) {
    throw new Error(
      `${at}: shape ${fmt(shape)} of ${dtype} needs ${need} bytes but data_offsets [${begin}, ${end}] hold ${held}`,
    );
  }
  return { name, dtype: DTYPES[dtype], shape, begin, end };
}

/** Like the reference reader: the tensors must tile the data section exactly, in any order. */
export function checkCoverage(
  entries: readonly Pick<Entry, "name" | "begin" | "end">[],
  dataLength: number,
  where: string,
): void {
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let end = 0, last = "";
  for (const e of sorted) {
    if (e.begin < end) {
      throw new Error(`${where}: tensors "${last}" and "${e.name}" overlap at bytes ${e.begin} to ${end}`);
    }
    if (e.begin > end) throw new Error(`${where}: bytes ${end} to ${e.begin} of the data section belong to no tensor`);
    end = e.end, last = e.name;
  }
  if (end !== dataLength) {
    throw new Error(`${where}: the data section has ${dataLength} bytes but the tensors cover only ${end}`);
  }
}

/** Throws, listing every difference, unless the file has exactly the template's names, shapes and dtypes. */
export function checkAgainst(
  names: readonly string[],
  template: readonly Tensor[],
  found: ReadonlyMap<string, Entry>,
  where: string,
): void {
  const list = (xs: readonly string[]) =>
    xs.slice(0, 8).map((x) => JSON.stringify(x)).join(", ") + (xs.length > 8 ? ` and ${xs.length - 8} more` : "");
  const wanted = new Set(names);
  const missing = names.filter((name) => !found.has(name));
  const extra = [...found.keys()].filter((name) => !wanted.has(name));
  const problems = [
    ...(missing.length > 0 ? [`missing tensors ${list(missing)}`] : []),
    ...(extra.length > 0 ? [`unexpected tensors ${list(extra)}`] : []),
  ];
  names.forEach((name, i) => {
    const e = found.get(name), t = template[i];
    if (e && (e.dtype !== t.dtype || fmt(e.shape) !== fmt(t.shape))) {
      problems.push(`tensor "${name}": expected shape ${fmt(t.shape)} ${t.dtype}, found ${fmt(e.shape)} ${e.dtype}`);
    }
  });
  if (problems.length > 0) {
    throw new Error(`${where}: the checkpoint does not match the template: ${problems.join("; ")}`);
  }
}
