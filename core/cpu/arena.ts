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

// One allocation: its size class and how many holders it has now. It does not reference its
// memory, so that the registry of leaves (which keeps blocks) never keeps a collected value alive.
interface Block {
  readonly dtype: DType;
  readonly n: number;
  readonly bytes: number;
  refs: number;
  free: boolean;
}

// A block with its memory (free lists, scratch of the current step, leaves' values).
interface Free {
  readonly block: Block;
  readonly buffer: ArrayBuffer;
}

/** Bytes the pool may keep free before it drops the least recently freed arrays. */
export const POOL_LIMIT = 512 * 2 ** 20;

const BYTES: Readonly<Record<DType, number>> = { f32: 4, i32: 4, bool: 1 };

/** A pool of host arrays by dtype and length, with holder counts (see the comment above). */
export class HostArena {
  readonly #limit: number;
  readonly #blocks = new WeakMap<ArrayBufferLike, Block>();
  // Free memory by size class, and all of it in the order it was freed (for trimming).
  readonly #free = new Map<string, Free[]>();
  readonly #order = new Set<Free>();
  readonly #owned = new WeakMap<Node, Free>();
  readonly #collected = new FinalizationRegistry<Block>((b) => this.#drop(b, null));
  #fresh: Free[] = [];
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
    const f = this.#free.get(`${dtype}:${n}`)?.pop();
    let b = f?.block;
    if (f !== undefined) {
      this.#order.delete(f);
      this.#pooled -= f.block.bytes;
      liveStats.bytesPooled -= f.block.bytes;
      f.block.free = false;
    }
    const array = f === undefined ? allocHost(dtype, n) : view(dtype, f.buffer);
    if (b === undefined) {
      b = { dtype, n, bytes: n * BYTES[dtype], refs: 0, free: false };
      this.#blocks.set(array.buffer, b);
    } else array.fill(0);
    this.#fresh.push({ block: b, buffer: array.buffer as ArrayBuffer });
    this.#inUse += b.bytes;
    liveStats.bytesInUse += b.bytes;
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
    if (b !== undefined) this.#drop(b, v.buffer as ArrayBuffer);
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
    const b = this.#blocks.get(v.buffer);
    if (b === undefined) return;
    this.release(leaf);
    b.refs++;
    this.#owned.set(leaf, { block: b, buffer: v.buffer as ArrayBuffer });
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

  // One holder less; with `buffer` unknown (a collected leaf) the memory is not pooled.
  #drop(b: Block, buffer: ArrayBuffer | null): void {
    if (b.refs <= 0) throw new Error("arena: an array was released more often than it was held");
    if (--b.refs === 0) this.#release(b, buffer);
  }

  #release(b: Block, buffer: ArrayBuffer | null): void {
    b.free = true;
    this.#inUse -= b.bytes;
    liveStats.bytesInUse -= b.bytes;
    if (buffer === null) return;
    const key = `${b.dtype}:${b.n}`, f = { block: b, buffer };
    (this.#free.get(key) ?? this.#free.set(key, []).get(key)!).push(f);
    this.#order.add(f);
    this.#pooled += b.bytes;
    liveStats.bytesPooled += b.bytes;
    // Over the limit, the least recently freed arrays go to the garbage collector.
    for (const old of this.#order) {
      if (this.#pooled <= this.#limit) break;
      this.#order.delete(old);
      const list = this.#free.get(`${old.block.dtype}:${old.block.n}`)!;
      list.splice(list.indexOf(old), 1);
      this.#pooled -= old.block.bytes;
      liveStats.bytesPooled -= old.block.bytes;
    }
  }
}

// A new array object over pooled memory.
function view(dtype: DType, buffer: ArrayBuffer): CpuArray {
  return dtype === "f32" ? new Float32Array(buffer) : dtype === "i32" ? new Int32Array(buffer) : new Uint8Array(buffer);
}
