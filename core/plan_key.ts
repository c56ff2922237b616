// Graph structures as numbers, for caches of plans by structure: each node of a schedule (and each
// leaf it reads, at its first use) written as codes (op, dtype, shape, params, the positions of its
// sources, whether it is kept), hashed as they are written. Two graphs with equal codes differ
// only in their leaves' values. Formatting a string key instead cost about 0.9 us a node (a
// decoded token's 1,200 nodes: 1 ms), mostly in building, flattening and hashing the string.

import type { Node } from "./graph.ts";

// Interned names (ops, dtypes, params' keys and strings), as small integers.
const names = new Map<string, number>();
const nameCode = (s: string) => names.get(s) ?? (names.set(s, names.size), names.size - 1);

const DTYPES: Readonly<Record<string, number>> = { f32: 0, i32: 1, bool: 2 };

// Value tags of params' codes.
const NUM = 1, STR = 2, TRUE = 3, FALSE = 4, ARR = 5, OBJ = 6, NONE = 7;

/**
 * A graph's structure: its codes with their hash, its nodes by position (leaves at first use among
 * the schedule's nodes), and the leaves alone in that order. The codes are valid until the next
 * call of structureOf (StructureCache.get copies what it keeps).
 */
export interface Structure {
  readonly codes: Float64Array;
  readonly hash: number;
  readonly nodes: Node[];
  readonly leaves: Node[];
}

/** What else a cache's structures tell apart (see structureOf). */
export interface StructureOptions {
  /** Values written first (a backend's limits and features). */
  readonly prefix?: readonly (number | string | boolean)[];
  /** A code per leaf beside its dtype and shape (how a backend binds it). */
  readonly leafCode?: (leaf: Node) => number;
  /** Nodes whose positions, in this order, end the codes (the realization's targets). */
  readonly outputs?: readonly Node[];
}

// The codes are written into one buffer, grown as needed and reused by every call (allocating and
// growing a fresh one took a third of the time).
let shared = new Float64Array(4096);

class Writer {
  codes = shared;
  n = 0;
  h = 0x811c9dc5;

  put(v: number): void {
    if (this.n === this.codes.length) {
      const more = new Float64Array(2 * this.n);
      more.set(this.codes);
      this.codes = shared = more;
    }
    this.codes[this.n++] = v;
    // FNV-1a over the value's integer part and its scaled fraction (exact equality is checked on a hit).
    this.h = Math.imul(this.h ^ (v | 0), 0x01000193);
    this.h = Math.imul(this.h ^ ((v * 65536) | 0), 0x01000193);
  }

  value(v: unknown): void {
    if (typeof v === "number") this.put(NUM), this.put(v);
    else if (typeof v === "string") this.put(STR), this.put(nameCode(v));
    else if (typeof v === "boolean") this.put(v ? TRUE : FALSE);
    else if (Array.isArray(v)) {
      this.put(ARR), this.put(v.length);
      for (let i = 0; i < v.length; i++) this.value(v[i]);
    } else if (typeof v === "object" && v !== null) {
      this.put(OBJ);
      for (const k in v) this.put(nameCode(k)), this.value((v as Record<string, unknown>)[k]);
      this.put(NONE);
    } else this.put(NONE);
  }

  shape(s: readonly number[]): void {
    this.put(s.length);
    for (let i = 0; i < s.length; i++) this.put(s[i]);
  }
}

/**
 * The structure of the schedule `order` (its nodes, with the leaves they read placed at first use),
 * `keep` marking the nodes whose values are kept.
 */
export function structureOf(
  order: readonly Node[],
  keep: ReadonlySet<Node>,
  opts: StructureOptions = {},
): Structure {
  // Positions by node id (numbers hash faster than objects); indexed loops (for-of's iterators
  // showed in profiles).
  const index = new Map<number, number>(), nodes: Node[] = [], leaves: Node[] = [], w = new Writer();
  const srcAt: number[] = [], leafCode = opts.leafCode;
  for (const c of opts.prefix ?? []) w.value(c);
  for (let i = 0; i < order.length; i++) {
    const n = order[i], src = n.src;
    srcAt.length = 0;
    for (let j = 0; j < src.length; j++) {
      const x = src[j];
      let at = index.get(x.id);
      if (at === undefined) {
        // Not yet seen: a leaf, as the schedule lists every node's inputs before it.
        index.set(x.id, at = nodes.push(x) - 1);
        leaves.push(x);
        w.put(-1), w.put(nameCode(x.op)), w.put(DTYPES[x.dtype]), w.shape(x.shape);
        if (leafCode !== undefined) w.put(leafCode(x));
      }
      srcAt.push(at);
    }
    index.set(n.id, nodes.push(n) - 1);
    w.put(nameCode(n.op)), w.put(DTYPES[n.dtype]), w.shape(n.shape), w.value(n.params);
    w.put(src.length);
    for (let j = 0; j < srcAt.length; j++) w.put(srcAt[j]);
    w.put(keep.has(n) ? 1 : 0);
  }
  if (opts.outputs !== undefined) {
    w.put(-2);
    for (const t of opts.outputs) w.put(index.get(t.id) ?? -1);
  }
  return { codes: w.codes.subarray(0, w.n), hash: w.h >>> 0, nodes, leaves };
}

/**
 * Plans (or anything) by graph structure; beyond `limit`, the least recently used entry of the least
 * recently used hash is dropped (the least recently used entry, but for hash collisions).
 */
export class StructureCache<T> {
  readonly #limit: number;
  // By hash: the structures with that hash and their values (more than one only on a collision).
  readonly #entries = new Map<number, { codes: Float64Array; value: T }[]>();
  #size = 0;

  constructor(limit: number) {
    this.#limit = limit;
  }

  /** The value cached for `s`'s structure, or `make()`'s, cached. */
  get(s: Structure, make: () => T): T {
    const list = this.#entries.get(s.hash);
    const at = list?.findIndex((e) => equal(e.codes, s.codes)) ?? -1;
    if (at >= 0) {
      // Most recently used last, among hashes and within its hash's list.
      const hit = list![at];
      list!.splice(at, 1), list!.push(hit);
      this.#entries.delete(s.hash);
      this.#entries.set(s.hash, list!);
      return hit.value;
    }
    const value = make();
    if (this.#size >= this.#limit) {
      const [h, old] = this.#entries.entries().next().value!;
      old.shift();
      this.#size--;
      if (old.length === 0) this.#entries.delete(h);
    }
    const entry = { codes: s.codes.slice(), value };
    if (list !== undefined) list.push(entry);
    else this.#entries.set(s.hash, [entry]);
    this.#size++;
    return value;
  }

  /** Structures cached now. */
  get size(): number {
    return this.#size;
  }
}

function equal(a: Float64Array, b: Float64Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i] && !(a[i] !== a[i] && b[i] !== b[i])) return false;
  return true;
}
