// The host arena of a backend built on the interpreter (the Wasm one): value arrays recycled by
// dtype and exact length, so a repeated training step or decode step allocates no new memory.
//
// Allocation API, for kernels (`CpuContext.alloc` hands out arena arrays): `alloc(dtype, n)` gives a
// zero-filled array of exactly `n` elements. A kernel returns it (or a view of it, or one of its
// inputs) as its node's value; the interpreter counts who holds each array (values of the plan
// still to be read, realized leaves) and puts it back in the pool when nobody does. Scratch arrays
// a kernel allocates and does not return go back after its step. A kernel must not keep an arena
// array past its step (copy what it caches); arrays are handed out as a new view object each time,
// so caches keyed by the array object (matmul.ts's packed weights) never see a recycled one as old.
//
// Why host arrays and not offsets in one Wasm memory: the matmul packs its operands into panels
// (a copy it needs anyway), and the SIMD loops run on a private memory that only non-shared
// WebAssembly.Memory keeps cheap to grow; a value living in a growable non-shared memory would be
// detached by every grow, so host arrays stay valid views whatever grows.

import type { Node } from "../graph.ts";
import type { CpuArray } from "../prim.ts";
import { allocHost, type DType } from "../shape.ts";
import { liveStats } from "../stats.ts";

// One pooled allocation: its buffer, its size class, and how many holders it has now.
interface Block {
  readonly buffer: ArrayBuffer;
  readonly dtype: DType;
  readonly n: number;
  readonly bytes: number;
  refs: number;
  free: boolean;
}

/** Bytes the pool may keep free before it drops the least recently freed arrays. */
export const POOL_LIMIT = 512 * 2 ** 20;

const BYTES: Readonly<Record<DType, number>> = { f32: 4, i32: 4, bool: 1 };

/** A pool of host arrays by dtype and length, with holder counts (see the comment above). */
export class HostArena {
  readonly #limit: number;
  readonly #blocks = new WeakMap<ArrayBufferLike, Block>();
  // Free blocks by size class, and all of them in the order they were freed (for trimming).
  readonly #free = new Map<string, Block[]>();
  readonly #order = new Set<Block>();
  readonly #owned = new WeakMap<Node, Block>();
  readonly #collected = new FinalizationRegistry<Block>((b) => this.#drop(b));
  #fresh: Block[] = [];
  #inUse = 0;
  #pooled = 0;

  constructor(limit = POOL_LIMIT) {
    this.#limit = limit;
  }

  /** Bytes of arrays held by values or leaves. */
  get bytesInUse(): number {
    return this.#inUse;
  }

  /** Bytes of free arrays kept for reuse. */
  get bytesPooled(): number {
    return this.#pooled;
  }

  /** A zero-filled array of `n` elements of `dtype`, recycled where the pool has one of that length. */
  alloc(dtype: DType, n: number): CpuArray {
    const list = this.#free.get(`${dtype}:${n}`);
    let b = list?.pop();
    if (b !== undefined) {
      this.#order.delete(b);
      this.#pooled -= b.bytes;
      liveStats.bytesPooled -= b.bytes;
      b.free = false;
    }
    const array = b === undefined ? allocHost(dtype, n) : view(b);
    if (b === undefined) {
      b = { buffer: array.buffer as ArrayBuffer, dtype, n, bytes: n * BYTES[dtype], refs: 0, free: false };
      this.#blocks.set(b.buffer, b);
    } else array.fill(0);
    this.#inUse += b.bytes;
    liveStats.bytesInUse += b.bytes;
    this.#fresh.push(b);
    return array;
  }

  /** Counts one more holder of `v`'s memory (nothing for arrays that are not the arena's). */
  hold(v: CpuArray): void {
    const b = this.#blocks.get(v.buffer);
    if (b !== undefined) b.refs++;
  }

  /** Counts one holder less; the memory returns to the pool with its last holder. */
  drop(v: CpuArray): void {
    const b = this.#blocks.get(v.buffer);
    if (b !== undefined) this.#drop(b);
  }

  /** Returns arrays allocated since the last sweep that nothing holds (a kernel's scratch). */
  sweep(): void {
    for (const b of this.#fresh) if (b.refs === 0 && !b.free) this.#release(b);
    this.#fresh = [];
  }

  /** Makes `leaf` a holder of `v`'s memory until the leaf is released or collected. */
  own(leaf: Node, v: CpuArray): void {
    const b = this.#blocks.get(v.buffer);
    if (b === undefined) return;
    this.release(leaf);
    b.refs++;
    this.#owned.set(leaf, b);
    this.#collected.register(leaf, b, leaf);
  }

  /** Ends `leaf`'s hold on its value's memory (released leaves: storage calls this). */
  release(leaf: Node): void {
    const b = this.#owned.get(leaf);
    if (b === undefined) return;
    this.#owned.delete(leaf);
    this.#collected.unregister(leaf);
    this.#drop(b);
  }

  #drop(b: Block): void {
    if (b.refs <= 0) throw new Error("arena: an array was released more often than it was held");
    if (--b.refs === 0) this.#release(b);
  }

  #release(b: Block): void {
    b.free = true;
    this.#inUse -= b.bytes;
    liveStats.bytesInUse -= b.bytes;
    const key = `${b.dtype}:${b.n}`;
    (this.#free.get(key) ?? this.#free.set(key, []).get(key)!).push(b);
    this.#order.add(b);
    this.#pooled += b.bytes;
    liveStats.bytesPooled += b.bytes;
    // Over the limit, the least recently freed arrays go to the garbage collector.
    for (const old of this.#order) {
      if (this.#pooled <= this.#limit) break;
      this.#order.delete(old);
      const list = this.#free.get(`${old.dtype}:${old.n}`)!;
      list.splice(list.indexOf(old), 1);
      this.#pooled -= old.bytes;
      liveStats.bytesPooled -= old.bytes;
    }
  }
}

// A new array object over a pooled block's memory.
function view(b: Block): CpuArray {
  return b.dtype === "f32"
    ? new Float32Array(b.buffer)
    : b.dtype === "i32"
    ? new Int32Array(b.buffer)
    : new Uint8Array(b.buffer);
}
