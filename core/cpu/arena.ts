// The host arena of a backend built on the interpreter (the Wasm one): value arrays recycled by
// dtype and exact length, so a repeated training step or decode step allocates no new memory.
//
// Allocation API, for kernels (`CpuContext.alloc` hands out arena arrays): `alloc(dtype, n)` gives a
// zero-filled array of exactly `n` elements (`alloc(dtype, n, false)` one with stale contents, for a
// kernel that writes every element). A kernel returns it (or one of its inputs, never a view at an
// offset into either) as its node's value; the interpreter counts who holds each array (values of the plan
// still to be read, realized leaves) and puts it back in the pool when nobody does. Scratch arrays
// a kernel allocates and does not return go back after its step. A kernel must not keep an arena
// array past its step (copy what it caches); arrays are handed out as a new view object each time,
// so caches keyed by the array object (matmul.ts's packed weights) never see a recycled one as old.
//
// Where the values live: host arrays, or, given a heap (ArenaHeap: the Wasm backend's shared
// memory, core/wasm/heap.ts), blocks of one WebAssembly.Memory that its kernels read and write in
// place. A heap's blocks are known by their offset (every array over the heap shares its buffer); a
// value inside the heap that starts at no block is an error, since its holder could not be counted.
// When the heap is full, values fall back to host arrays. Freed heap blocks go back to the heap
// when the pool trims, and a collected leaf's block returns to the pool (a heap is never collected).

import type { Node } from "../graph.ts";
import type { CpuArray } from "../prim.ts";
import { allocHost, type DType } from "../shape.ts";
import { liveStats } from "../stats.ts";

// One allocation: its size class, its offset in the heap (-1 for a host array) and how many holders
// it has now. It does not reference its memory, so that the registry of leaves (which keeps blocks)
// never keeps a collected value alive.
interface Block {
  readonly dtype: DType;
  readonly n: number;
  readonly bytes: number;
  readonly at: number;
  refs: number;
  free: boolean;
}

// A block with its memory (free lists, scratch of the current step, leaves' values); a heap
// block's memory is its offset, so its buffer is null.
interface Free {
  readonly block: Block;
  readonly buffer: ArrayBuffer | null;
}

/** A memory the arena can place values in (the Wasm backend's heap). */
export interface ArenaHeap {
  /** The byte offset of a block of at least `bytes`, or -1 when the heap is full. */
  alloc(bytes: number): number;
  /** Returns a block to the heap. */
  free(at: number): void;
  /** The byte offset of `v` when it lies in the heap, else -1. */
  offsetOf(v: ArrayBufferView): number;
  /** An array over the block at `at`. */
  view(dtype: DType, at: number, n: number): CpuArray;
}

/** Bytes the pool may keep free before it drops the least recently freed arrays. */
export const POOL_LIMIT = 512 * 2 ** 20;

const BYTES: Readonly<Record<DType, number>> = { f32: 4, i32: 4, bool: 1 };

/** A pool of host arrays by dtype and length, with holder counts (see the comment above). */
export class HostArena {
  readonly #limit: number;
  readonly #heap: ArenaHeap | null;
  readonly #blocks = new WeakMap<ArrayBufferLike, Block>();
  readonly #heapBlocks = new Map<number, Block>();
  // Free memory by size class, and all of it in the order it was freed (for trimming).
  readonly #free = new Map<string, Free[]>();
  readonly #order = new Set<Free>();
  readonly #owned = new WeakMap<Node, Free>();
  readonly #collected = new FinalizationRegistry<Block>((b) => this.#drop(b, null));
  #fresh: Free[] = [];
  #inUse = 0;
  #pooled = 0;
  #inHeap = 0;

  constructor(limit = POOL_LIMIT, heap: ArenaHeap | null = null) {
    this.#limit = limit;
    this.#heap = heap;
  }

  /** Bytes of arrays held by values or leaves. */
  get bytesInUse(): number {
    return this.#inUse;
  }

  /** Bytes of free arrays kept for reuse. */
  get bytesPooled(): number {
    return this.#pooled;
  }

  /**
   * Bytes of the arrays above (in use or pooled) that are blocks of the heap: the heap's memory is
   * counted whole in stats() as a kernel memory, so these are not counted twice there.
   */
  get bytesInHeap(): number {
    return this.#inHeap;
  }

  /**
   * A zero-filled array of `n` elements of `dtype` (with `zeroed` false, one whose contents are left as
   * they were, for a kernel that writes them all), recycled where the pool has one of that length.
   */
  alloc(dtype: DType, n: number, zeroed = true): CpuArray {
    const f = this.#free.get(`${dtype}:${n}`)?.pop();
    let b = f?.block, array: CpuArray;
    if (f !== undefined) {
      this.#order.delete(f);
      this.#pooled -= f.block.bytes;
      liveStats.bytesPooled -= f.block.bytes;
      f.block.free = false;
      array = f.buffer === null ? this.#heap!.view(dtype, f.block.at, n) : view(dtype, f.buffer);
      if (zeroed) array.fill(0);
    } else {
      const bytes = n * BYTES[dtype], at = this.#heap !== null && bytes > 0 ? this.#heap.alloc(bytes) : -1;
      array = at < 0 ? allocHost(dtype, n) : this.#heap!.view(dtype, at, n);
      if (at >= 0 && zeroed) array.fill(0);
      b = { dtype, n, bytes, at, refs: 0, free: false };
      if (at < 0) this.#blocks.set(array.buffer, b);
      else {
        this.#heapBlocks.set(at, b);
        this.#inHeap += bytes;
        liveStats.bytesPooled -= bytes; // the heap's memory is counted as pooled until a value holds it
      }
    }
    this.#fresh.push({ block: b!, buffer: b!.at < 0 ? array.buffer as ArrayBuffer : null });
    this.#inUse += b!.bytes;
    liveStats.bytesInUse += b!.bytes;
    return array;
  }

  // The block holding `v`, if the arena made it.
  #blockOf(v: CpuArray): Block | undefined {
    const at = this.#heap?.offsetOf(v) ?? -1;
    if (at < 0) return this.#blocks.get(v.buffer);
    const b = this.#heapBlocks.get(at);
    if (b === undefined || b.n !== v.length) {
      throw new Error(`arena: a value of ${v.length} elements at heap offset ${at} is no block of the arena`);
    }
    return b;
  }

  /** Counts one more holder of `v`'s memory (nothing for arrays that are not the arena's). */
  hold(v: CpuArray): void {
    const b = this.#blockOf(v);
    if (b !== undefined) b.refs++;
  }

  /** Counts one holder less; the memory returns to the pool with its last holder. */
  drop(v: CpuArray): void {
    const b = this.#blockOf(v);
    if (b !== undefined) this.#drop(b, b.at < 0 ? v.buffer as ArrayBuffer : null);
  }

  /** Returns arrays allocated since the last sweep that nothing holds (a kernel's scratch). */
  sweep(): void {
    for (const f of this.#fresh) if (f.block.refs === 0 && !f.block.free) this.#release(f.block, f.buffer);
    this.#fresh = [];
  }

  /**
   * Makes `leaf` a holder of `v`'s memory until the leaf is released (the memory goes back to the
   * pool) or collected (it goes to the garbage collector, and leaves the count when the collector
   * reports the leaf).
   */
  own(leaf: Node, v: CpuArray): void {
    const b = this.#blockOf(v);
    if (b === undefined) return;
    this.release(leaf);
    b.refs++;
    this.#owned.set(leaf, { block: b, buffer: b.at < 0 ? v.buffer as ArrayBuffer : null });
    this.#collected.register(leaf, b, leaf);
  }

  /** Ends `leaf`'s hold on its value's memory (released leaves: storage calls this). */
  release(leaf: Node): void {
    const o = this.#owned.get(leaf);
    if (o === undefined) return;
    this.#owned.delete(leaf);
    this.#collected.unregister(leaf);
    this.#drop(o.block, o.buffer);
  }

  // One holder less; a host block whose buffer is unknown (a collected leaf) is not pooled.
  #drop(b: Block, buffer: ArrayBuffer | null): void {
    if (b.refs <= 0) throw new Error("arena: an array was released more often than it was held");
    if (--b.refs === 0) this.#release(b, buffer);
  }

  #release(b: Block, buffer: ArrayBuffer | null): void {
    b.free = true;
    this.#inUse -= b.bytes;
    liveStats.bytesInUse -= b.bytes;
    if (buffer === null && b.at < 0) return;
    const key = `${b.dtype}:${b.n}`, f = { block: b, buffer };
    (this.#free.get(key) ?? this.#free.set(key, []).get(key)!).push(f);
    this.#order.add(f);
    this.#pooled += b.bytes;
    liveStats.bytesPooled += b.bytes;
    // Over the limit, the least recently freed arrays go to the garbage collector (or the heap).
    for (const old of this.#order) {
      if (this.#pooled <= this.#limit) break;
      this.#order.delete(old);
      const list = this.#free.get(`${old.block.dtype}:${old.block.n}`)!;
      list.splice(list.indexOf(old), 1);
      this.#pooled -= old.block.bytes;
      if (old.block.at < 0) liveStats.bytesPooled -= old.block.bytes;
      else {
        this.#heapBlocks.delete(old.block.at);
        this.#heap!.free(old.block.at);
        this.#inHeap -= old.block.bytes; // still reserved: counted in stats() as the heap's memory
      }
    }
  }
}

// A new array object over pooled memory.
function view(dtype: DType, buffer: ArrayBuffer): CpuArray {
  return dtype === "f32" ? new Float32Array(buffer) : dtype === "i32" ? new Int32Array(buffer) : new Uint8Array(buffer);
}
