// The Wasm backend's heap: one shared WebAssembly.Memory that holds the arena's values and the
// kernels' scratch, so that a kernel reads its operands and writes its result where they lie
// instead of copying them in and out of a private memory. A shared memory never detaches its old
// buffers when it grows, so arrays over it stay valid; where shared memory is unavailable (a page
// without cross-origin isolation) there is no heap and values stay host arrays.
//
// Allocation: 16-byte aligned blocks, best fit among the free ranges, neighbours merged when freed,
// the memory grown (by at least a quarter) when nothing fits; past the memory's maximum, alloc
// answers -1 and the caller falls back to a host array.

import type { DType } from "../shape.ts";
import type { CpuArray } from "../prim.ts";
import { kernelMemory, recount, reserve } from "./memory.ts";

const PAGE = 65536, MAX_PAGES = 65536, ALIGN = 16;
const BYTES: Readonly<Record<DType, number>> = { f32: 4, i32: 4, bool: 1 };

/** One shared memory with a block allocator (see the comment above). */
export class WasmHeap {
  readonly memory: WebAssembly.Memory;
  readonly #maxBytes: number;
  // The buffer objects this memory has handed out (a new one after each grow, all over the same bytes).
  readonly #buffers = new WeakSet<ArrayBufferLike>();
  // Free ranges below `top`, by offset; the sizes of allocated blocks, by offset.
  readonly #free: { at: number; bytes: number }[] = [];
  readonly #used = new Map<number, number>();
  #top = ALIGN; // offset 0 is never handed out
  #buffer: SharedArrayBuffer;

  private constructor(memory: WebAssembly.Memory, maxBytes: number) {
    this.memory = memory;
    this.#maxBytes = maxBytes;
    this.#buffer = memory.buffer as SharedArrayBuffer;
    this.#buffers.add(this.#buffer);
  }

  /** A heap of at most `maxBytes` (default 4 GiB, Wasm's limit), or null without shared memory. */
  static create(maxBytes = MAX_PAGES * PAGE): WasmHeap | null {
    if (typeof SharedArrayBuffer === "undefined") return null;
    try {
      const memory = kernelMemory({ initial: 16, maximum: MAX_PAGES, shared: true });
      return new WasmHeap(memory, Math.min(maxBytes, MAX_PAGES * PAGE));
    } catch {
      return null;
    }
  }

  /** The memory's current buffer (views made on it cover every block allocated so far). */
  get buffer(): SharedArrayBuffer {
    if (this.#buffer.byteLength !== this.memory.buffer.byteLength) {
      this.#buffer = this.memory.buffer as SharedArrayBuffer;
      this.#buffers.add(this.#buffer);
    }
    return this.#buffer;
  }

  /** Bytes of blocks allocated now. */
  get bytesAllocated(): number {
    let n = 0;
    for (const b of this.#used.values()) n += b;
    return n;
  }

  /** The byte offset of a block of at least `bytes` (16-byte aligned), or -1 when the heap is full. */
  alloc(bytes: number): number {
    const want = Math.max(ALIGN, Math.ceil(bytes / ALIGN) * ALIGN);
    let best = -1;
    for (let i = 0; i < this.#free.length; i++) {
      const f = this.#free[i];
      if (f.bytes >= want && (best < 0 || f.bytes < this.#free[best].bytes)) best = i;
    }
    let at: number;
    if (best >= 0) {
      const f = this.#free[best];
      at = f.at;
      if (f.bytes === want) this.#free.splice(best, 1);
      else f.at += want, f.bytes -= want;
    } else {
      // The last free range, if it ends at the top, is extended rather than left behind.
      const last = this.#free[this.#free.length - 1];
      const start = last !== undefined && last.at + last.bytes === this.#top ? last.at : this.#top;
      if (start + want > this.#maxBytes || !this.#grow(start + want)) return -1;
      if (start !== this.#top) this.#free.pop();
      at = start;
      this.#top = start + want;
    }
    this.#used.set(at, want);
    return at;
  }

  /** Returns the block at `at` to the heap. */
  free(at: number): void {
    const bytes = this.#used.get(at);
    if (bytes === undefined) throw new Error(`heap: no block at ${at}`);
    this.#used.delete(at);
    // Insert by offset, merging with the free ranges on either side.
    let i = 0;
    while (i < this.#free.length && this.#free[i].at < at) i++;
    const prev = this.#free[i - 1], next = this.#free[i];
    let range = { at, bytes };
    if (prev !== undefined && prev.at + prev.bytes === at) prev.bytes += bytes, range = prev, i--;
    else this.#free.splice(i, 0, range);
    if (next !== undefined && range.at + range.bytes === next.at) {
      range.bytes += next.bytes;
      this.#free.splice(i + 1, 1);
    }
  }

  /** Copies `bytes` into a block of their own (kept for good: a kernel module's bytes for the threads); returns its offset. */
  keep(bytes: Uint8Array): number {
    const at = this.alloc(bytes.length);
    new Uint8Array(this.buffer, at, bytes.length).set(bytes);
    return at;
  }

  /** The byte offset of `v` when it lies in this heap, else -1. */
  offsetOf(v: ArrayBufferView): number {
    return this.#buffers.has(v.buffer) ? v.byteOffset : -1;
  }

  /** An array of `n` elements of `dtype` over the block at `at`. */
  view(dtype: DType, at: number, n: number): CpuArray {
    const buf = this.buffer;
    return dtype === "f32"
      ? new Float32Array(buf, at, n)
      : dtype === "i32"
      ? new Int32Array(buf, at, n)
      : new Uint8Array(buf, at, n);
  }

  /** Bytes of an array of `n` elements of `dtype`. */
  static bytes(dtype: DType, n: number): number {
    return BYTES[dtype] * n;
  }

  #grow(end: number): boolean {
    const have = this.memory.buffer.byteLength;
    if (end <= have) return true;
    const pages = Math.ceil((end - have) / PAGE), more = Math.ceil(have / 4 / PAGE);
    const cap = Math.floor(this.#maxBytes / PAGE) - have / PAGE;
    try {
      this.memory.grow(Math.min(Math.max(pages, more), cap));
    } catch {
      return false;
    }
    recount(this.memory);
    return true;
  }
}

/**
 * A kernel's scratch space: a block of the heap where there is one (grown by a quarter at least when
 * it must grow), else the start of the kernel's own memory.
 */
export class Scratch {
  readonly memory: WebAssembly.Memory;
  readonly #heap: WasmHeap | null;
  #at = -1;
  #bytes = 0;

  constructor(heap: WasmHeap | null, own: () => WebAssembly.Memory) {
    this.#heap = heap;
    this.memory = heap?.memory ?? own();
  }

  /** Floats of at least `bytes`, from the scratch's start: their byteOffset is its address in memory. */
  floats(bytes: number): Float32Array {
    const heap = this.#heap;
    if (heap === null) {
      reserve(this.memory, bytes);
      return new Float32Array(this.memory.buffer);
    }
    if (bytes > this.#bytes || this.#at < 0) {
      if (this.#at >= 0) heap.free(this.#at);
      const want = Math.ceil(Math.max(bytes, this.#bytes * 1.25, 16) / 16) * 16;
      this.#at = heap.alloc(want);
      if (this.#at < 0) {
        this.#bytes = 0;
        throw new Error(`wasm: out of memory: the heap has no room for ${want} bytes of a kernel's scratch`);
      }
      this.#bytes = want;
    }
    return new Float32Array(heap.buffer, this.#at, this.#bytes / 4);
  }
}
