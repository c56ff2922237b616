// Checkpoints in the safetensors format: pytrees of tensors to bytes or files and back, fully checked.
//
// Every file jetfold writes carries SHA-256 checksums in its metadata (see checkpoint_checks.ts), so a
// flipped bit anywhere is an error on load rather than a silently different model.

import { readAll, treeFlatten, treePaths, treeUnflatten } from "../core/mod.ts";
import type { DType, HostArray, Tensor, Tree, TreeDef } from "../core/mod.ts";
import { fromHost } from "../core/creation.ts";
import {
  checkAgainst,
  checkCoverage,
  checkFinite,
  checkMetadata,
  checksums,
  CODES,
  type Entry,
  isReserved,
  parseEntry,
  type Stored,
  verifyChecksums,
  WIDTH,
} from "./checkpoint_checks.ts";
import { needFiles } from "./files.ts";

/** Options of `saveSafetensors` and `encodeSafetensors`. */
export interface SaveSafetensorsOptions {
  /**
   * Stored under `__metadata__`; values must be strings (store a config as a JSON string). Keys
   * starting with `jetfold.sha256` are reserved for the checksums that every save adds.
   */
  readonly metadata?: Readonly<Record<string, string>>;
}

/** Options of `loadSafetensors` and `decodeSafetensors`. */
export interface LoadSafetensorsOptions<T = Tree> {
  /** A template pytree (e.g. freshly initialized params): names, shapes and dtypes must match it exactly. */
  readonly like?: T;
  /** Load f32 tensors holding NaN or infinities (refused by default, naming the tensor), e.g. to debug a diverged run. */
  readonly allowNonFinite?: boolean;
}

/** A loaded checkpoint: the tensors and the string metadata (empty when the file has none). */
export interface Checkpoint<T = Tree> {
  /** The tensors, nested as their names say or as the `like` template is. */
  readonly tree: T;
  /** The `__metadata__` strings, without the checksums (`jetfold.sha256...`), which were verified. */
  readonly metadata: Readonly<Record<string, string>>;
}

const META = "__metadata__";
// Typed arrays use the host's byte order; the format is little-endian.
const LITTLE_ENDIAN = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;

/**
 * Serializes a pytree of tensors to safetensors bytes (one readback for all tensors). Tensor names
 * are the tree's dotted paths (`treePaths`). `__metadata__` gets the given strings plus two
 * checksums: `jetfold.sha256`, a JSON object of tensor name -> SHA-256 hex of its bytes, and
 * `jetfold.sha256.header`, the SHA-256 of the other metadata entries and every tensor's name,
 * dtype and shape.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeSafetensors, tensor } from "../mod.ts";
 * const bytes = await encodeSafetensors({ w: tensor([1, 2]) }, { metadata: { step: "10" } });
 * // The format: a little-endian u64 header length, the JSON header, then the raw data.
 * const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
 * const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
 * assert.deepEqual(header.w, { dtype: "F32", shape: [2], data_offsets: [0, 8] });
 * assert.equal(header.__metadata__.step, "10");
 * // The SHA-256 of the tensor's 8 bytes (1 and 2 as little-endian f32).
 * assert.deepEqual(JSON.parse(header.__metadata__["jetfold.sha256"]), {
 *   w: "b9c80b5adeca450753a16950c3cc655d271f7bef7a485bc83f112b72fef21d37",
 * });
 * assert.equal(bytes.length, 8 + n + 8);
 * ```
 */
export function encodeSafetensors(tree: unknown, opts: SaveSafetensorsOptions = {}): Promise<Uint8Array> {
  return encode(tree, opts, "encodeSafetensors");
}

/**
 * Parses safetensors bytes. Without `like` the tree is rebuilt from the dotted names (dense numeric
 * segments become arrays, others records); with `like` it has the template's exact structure.
 * Nothing is returned unless every check passes: the layout, the checksums when the file has them
 * (a tensor whose bytes changed is named; files from other tools have none and load unverified),
 * the template, and finite f32 values (NaN or an infinity is refused, naming the tensor and the
 * first bad index, unless `allowNonFinite`). Synchronous: the checksums are verified with a small
 * SHA-256 written in TypeScript (about 90 MB/s on one core).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeSafetensors, encodeSafetensors, tensor, treePaths } from "../mod.ts";
 * const params = { layers: [{ w: tensor([1, 2]) }] };
 * const bytes = await encodeSafetensors(params);
 * assert.deepEqual(treePaths(decodeSafetensors(bytes).tree), ["layers.0.w"]); // nested by the names
 * const { tree, metadata } = decodeSafetensors(bytes, { like: params }); // typed and checked like params
 * assert.deepEqual(await tree.layers[0].w.array(), [1, 2]);
 * assert.deepEqual(metadata, {});
 * assert.throws(() => decodeSafetensors(bytes, { like: { layers: [{ w: tensor([1, 2, 3]) }] } }), /shape/);
 * const flipped = bytes.slice();
 * flipped[flipped.length - 1] ^= 1; // one bit of the data
 * assert.throws(() => decodeSafetensors(flipped), /tensor "layers.0.w" is corrupt/);
 * const nan = await encodeSafetensors({ w: tensor([1, NaN]) });
 * assert.throws(() => decodeSafetensors(nan), /tensor "w" holds NaN at index \[1\]/);
 * const { tree: debug } = decodeSafetensors(nan, { like: { w: tensor([0, 0]) }, allowNonFinite: true });
 * assert.ok(Number.isNaN((await debug.w.data())[1]));
 * ```
 */
export function decodeSafetensors<T = Tree>(bytes: Uint8Array, opts: LoadSafetensorsOptions<T> = {}): Checkpoint<T> {
  return decode(bytes, opts, "decodeSafetensors");
}

/**
 * Writes a pytree of tensors to a safetensors file, atomically: the bytes go to a temporary file
 * in the same directory, which is then renamed over `path`, so a failed save leaves the old file.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadSafetensors, saveSafetensors, tensor } from "../mod.ts";
 * const dir = await Deno.makeTempDir();
 * await saveSafetensors(`${dir}/model.safetensors`, { w: tensor([1, 2]) }, {
 *   metadata: { "jetfold.config": JSON.stringify({ width: 64 }) },
 * });
 * const { tree, metadata } = await loadSafetensors(`${dir}/model.safetensors`, { like: { w: tensor([0, 0]) } });
 * assert.deepEqual(await tree.w.array(), [1, 2]);
 * assert.deepEqual(JSON.parse(metadata["jetfold.config"]), { width: 64 });
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function saveSafetensors(path: string, tree: unknown, opts: SaveSafetensorsOptions = {}): Promise<void> {
  needFiles("saveSafetensors", "use encodeSafetensors(tree), then store or download the bytes (new Blob([bytes]))");
  const bytes = await encode(tree, opts, "saveSafetensors"); // fails before the disk is touched
  const tmp = `${path}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  try {
    {
      using file = await Deno.open(tmp, { write: true, createNew: true });
      for (let done = 0; done < bytes.length;) done += await file.write(bytes.subarray(done));
      await file.syncData(); // the rename must not reach the disk before the data does
    }
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw new Error(`saveSafetensors: could not write ${path}: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * Reads a safetensors file; see `decodeSafetensors` for the checks and the `like` template.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadSafetensors, saveSafetensors, tensor, zeros } from "../mod.ts";
 * const dir = await Deno.makeTempDir();
 * const path = `${dir}/params.safetensors`;
 * await saveSafetensors(path, { embed: tensor([[1, 2], [3, 4]]), steps: tensor(7, { dtype: "i32" }) });
 * const like = { embed: zeros([2, 2]), steps: zeros([], { dtype: "i32" }) };
 * const { tree } = await loadSafetensors(path, { like });
 * assert.deepEqual(await tree.embed.array(), [[1, 2], [3, 4]]);
 * assert.equal(await tree.steps.item(), 7);
 * await assert.rejects(loadSafetensors(`${dir}/missing.safetensors`), /no such file/);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function loadSafetensors<T = Tree>(
  path: string,
  opts: LoadSafetensorsOptions<T> = {},
): Promise<Checkpoint<T>> {
  needFiles("loadSafetensors", "use decodeSafetensors(bytes), with the bytes of a fetch() response or a File");
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new Error(`loadSafetensors: no such file: ${path}`, { cause: e });
    throw new Error(`loadSafetensors: could not read ${path}: ${(e as Error).message}`, { cause: e });
  }
  return decode(bytes, opts, `loadSafetensors: ${path}`);
}

async function encode(tree: unknown, opts: SaveSafetensorsOptions, where: string): Promise<Uint8Array> {
  const given = opts.metadata === undefined ? {} : checkMetadata(opts.metadata, `${where}: metadata`);
  const reserved = Object.keys(given).find(isReserved);
  if (reserved !== undefined) {
    throw new Error(`${where}: metadata "${reserved}" is reserved for the checksums that saving adds`);
  }
  const [leaves] = treeFlatten(tree, { op: where });
  const names = treePaths(tree);
  nameTrie(names, where); // a reader must be able to tell the names apart and nest them
  // Wider elements first (stable otherwise), as the reference writer does: every tensor then starts
  // at a multiple of its element size, which readers that view the bytes in place require.
  const order = leaves.map((_, i) => i).sort((a, b) => WIDTH[leaves[b].dtype] - WIDTH[leaves[a].dtype] || a - b);
  const host = await readAll(leaves);
  const stored: Stored[] = order.map((i) => ({
    name: names[i],
    code: CODES[leaves[i].dtype],
    shape: leaves[i].shape,
    bytes: littleEndian(new Uint8Array(host[i].buffer, host[i].byteOffset, host[i].byteLength), leaves[i].dtype),
  }));
  const metadata = { ...given, ...await checksums(given, stored) };
  // Built by hand because JSON.stringify would move integer-like keys ("0") ahead of the rest.
  const fields = [`${JSON.stringify(META)}:${JSON.stringify(metadata)}`];
  let offset = 0;
  for (const i of order) {
    const info = {
      dtype: CODES[leaves[i].dtype],
      shape: leaves[i].shape,
      data_offsets: [offset, offset + host[i].byteLength],
    };
    fields.push(`${JSON.stringify(names[i])}:${JSON.stringify(info)}`);
    offset += host[i].byteLength;
  }
  const header = new TextEncoder().encode(`{${fields.join(",")}}`);
  const padded = Math.ceil(header.length / 8) * 8; // with spaces, so the data section starts 8-byte aligned
  const out = new Uint8Array(8 + padded + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(header, 8);
  out.fill(0x20, 8 + header.length, 8 + padded);
  let at = 8 + padded;
  for (const t of stored) {
    out.set(t.bytes, at);
    at += t.bytes.length;
  }
  return out;
}

function decode<T>(bytes: Uint8Array, opts: LoadSafetensorsOptions<T>, where: string): Checkpoint<T> {
  if (bytes.length < 8) {
    throw new Error(`${where}: truncated: ${bytes.length} bytes is shorter than the 8-byte header length`);
  }
  const n = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(bytes.length - 8)) {
    throw new Error(`${where}: truncated: the header length is ${n} bytes but only ${bytes.length - 8} follow it`);
  }
  const start = 8 + Number(n), dataLength = bytes.length - start;
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, start)));
  } catch (e) {
    throw new Error(`${where}: the header is not valid UTF-8 JSON (${(e as Error).message})`, { cause: e });
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    throw new Error(`${where}: the header must be a JSON object, got ${Array.isArray(header) ? "an array" : header}`);
  }
  let stated: Record<string, string> = {};
  const entries: Entry[] = [];
  for (const [name, info] of Object.entries(header)) {
    if (name === META) stated = checkMetadata(info, `${where}: ${META}`);
    else entries.push(parseEntry(name, info, dataLength, where));
  }
  checkCoverage(entries, dataLength, where);
  const stored = entries.map((e) => ({
    name: e.name,
    code: CODES[e.dtype],
    shape: e.shape,
    bytes: bytes.subarray(start + e.begin, start + e.end),
  }));
  const metadata = verifyChecksums(stated, stored, where); // before any other check: corruption explains them
  const found = new Map(entries.map((e) => [e.name, e]));
  let template: { def: TreeDef; names: string[] } | null = null;
  if (opts.like !== undefined) {
    const [leaves, def] = treeFlatten(opts.like, { op: `${where}: like` });
    const names = treePaths(opts.like);
    checkAgainst(names, leaves, found, where);
    template = { def, names };
  }
  const trie = template === null ? nameTrie(entries.map((e) => e.name), where) : null;
  // Host copies first and tensors only once every check passed, so a failed load creates none.
  // A copy of its own at offset 0 (not `bytes.slice`: a Node Buffer's slice is a view, at any alignment).
  const copyOf = (e: Entry) => new Uint8Array(bytes.subarray(start + e.begin, start + e.end));
  const host = new Map(entries.map((e) => [e.name, hostArray(copyOf(e), e.dtype)]));
  if (!opts.allowNonFinite) {
    for (const e of entries) if (e.dtype === "f32") checkFinite(e.name, e.shape, host.get(e.name)!, where);
  }
  const tensorOf = (name: string) => fromHost(host.get(name)!, found.get(name)!.shape, found.get(name)!.dtype);
  if (template === null) return { tree: treeFromNames(trie!, tensorOf) as T, metadata };
  return { tree: treeUnflatten<T>(template.def, template.names.map(tensorOf)), metadata };
}

function littleEndian(bytes: Uint8Array, dtype: DType): Uint8Array {
  if (LITTLE_ENDIAN || WIDTH[dtype] === 1) return bytes;
  const out = bytes.slice();
  for (let i = 0; i < out.length; i += 4) out.subarray(i, i + 4).reverse();
  return out;
}

// `copy` is a fresh, aligned buffer that the tensor may own.
function hostArray(copy: Uint8Array, dtype: DType): HostArray {
  const le = littleEndian(copy, dtype);
  if (dtype === "f32") return new Float32Array(le.buffer, le.byteOffset, le.length / 4);
  if (dtype === "i32") return new Int32Array(le.buffer, le.byteOffset, le.length / 4);
  return le.map((b) => (b === 0 ? 0 : 1)); // bool tensors hold 0 or 1, whatever a writer stored
}

type TrieNode = { leaf: string | null; readonly kids: Map<string, TrieNode> };

// Nests dotted names; a name that is both a tensor and a prefix of another cannot be rebuilt.
function nameTrie(names: readonly string[], where: string): TrieNode {
  const root: TrieNode = { leaf: null, kids: new Map() };
  for (const name of names) {
    if (name === META) throw new Error(`${where}: no tensor may be named "${META}" (the metadata's key)`);
    let node = root;
    for (const seg of name === "" ? [] : name.split(".")) {
      if (node.leaf !== null) throw new Error(`${where}: tensor names "${node.leaf}" and "${name}" collide`);
      if (!node.kids.has(seg)) node.kids.set(seg, { leaf: null, kids: new Map() });
      node = node.kids.get(seg)!;
    }
    if (node.leaf === name) throw new Error(`${where}: two tensors are named "${name}"`);
    if (node.leaf !== null || node.kids.size > 0) {
      const other = node.leaf ?? names.find((n) => n !== name && n.startsWith(name === "" ? "" : `${name}.`));
      throw new Error(`${where}: tensor names "${other}" and "${name}" collide`);
    }
    node.leaf = name;
  }
  return root;
}

// Children named exactly "0" .. "n-1" (in any order) form an array, any others a record.
function treeFromNames(node: TrieNode, leaf: (name: string) => Tensor): Tree {
  if (node.leaf !== null) return leaf(node.leaf);
  const keys = [...node.kids.keys()];
  if (keys.length > 0 && keys.every((_, i) => node.kids.has(String(i)))) {
    return keys.map((_, i) => treeFromNames(node.kids.get(String(i))!, leaf));
  }
  return Object.fromEntries(keys.map((k) => [k, treeFromNames(node.kids.get(k)!, leaf)]));
}
