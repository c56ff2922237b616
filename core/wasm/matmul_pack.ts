// Packing a matmul's operands into the kernel's strips and panels (matmul.ts): in Wasm where the
// packers can read them (rows or columns at any stride in the heap, contiguous ones copied into
// scratch), on the host otherwise (counted), and weights' packed panels through their cache.

import { type KernelKit, packA, packB, TILE_N } from "./matmul_kernel.ts";
import type { Scratch, WasmHeap } from "./heap.ts";
import type { PackedCache } from "./packed_cache.ts";

// A B operand's sizes and its row and column strides.
export interface PackDims {
  readonly K: number;
  readonly N: number;
  readonly rs: number;
  readonly cs: number;
}

/** The packers of one kernel memory. */
export class Packer {
  /** Operands packed by the host loops so far. */
  hostPacks = 0;
  readonly #kit: KernelKit;
  readonly #heap: WasmHeap | null;
  readonly #scratch: Scratch;
  readonly #kept: PackedCache;

  constructor(kit: KernelKit, heap: WasmHeap | null, scratch: Scratch, kept: PackedCache) {
    this.#kit = kit;
    this.#heap = heap;
    this.#scratch = scratch;
    this.#kept = kept;
  }

  /** Bytes of weights' packed panels kept now. */
  get keptBytes(): number {
    return this.#kept.bytes;
  }

  /** packA on the host (a view the Wasm packers cannot read), counted. */
  hostA(dst: Float32Array, a: ArrayLike<number>, ao: number, [M, K, ars, acs]: readonly number[]): void {
    this.hostPacks++;
    packA(dst, a, ao, M, K, ars, acs);
  }

  /** B packed through the cache of weights' packed panels (packed_cache.ts). */
  keptB(dst: Float32Array, src: ArrayLike<number>, base: number, dims: PackDims, raw: number): void {
    const { K, N, rs, cs } = dims, len = Math.ceil(N / TILE_N) * K * TILE_N;
    this.#kept.fill(dst, src, `${base},${K},${N},${rs},${cs}`, len, () => this.b(dst, src, base, dims, raw));
  }

  /**
   * packB, in Wasm for B's rows or its transpose's (B's columns) at any stride where they lie in
   * the heap, or contiguous ones copied as they are to `raw` (floats of the scratch; room for the
   * panels' full width, plus 8) first. `dst` is the B region of memory.
   */
  b(dst: Float32Array, src: ArrayLike<number>, base: number, dims: PackDims, raw: number): void {
    const { K, N, rs, cs } = dims, panels = Math.ceil(N / TILE_N), r = this.rawB(src, base, dims, raw);
    if (r === null) {
      this.hostPacks++;
      return packB(dst, src, base, K, N, rs, cs);
    }
    if (r.from === 0) this.#kit.pack.panels(r.at, dst.byteOffset, K, panels, r.width);
    else this.#kit.pack.rows8(r.at, dst.byteOffset, K, panels, r.width);
  }

  /**
   * Where the Wasm packers read B (its rows, `from` 0, or its transpose's, 1, `width` floats
   * apart): in the heap where it lies, or copied as it is to `raw`; null where they cannot (other
   * views, or a strided B outside the heap: packed on the host).
   */
  rawB(
    src: ArrayLike<number>,
    base: number,
    dims: PackDims,
    raw: number,
  ): { at: number; from: 0 | 1; width: number } | null {
    const { K, N, rs, cs } = dims, rows = cs === 1, cols = rs === 1 && !rows;
    if (!(src instanceof Float32Array) || !(rows || cols)) return null;
    const inHeap = this.#heap?.offsetOf(src) ?? -1;
    // Read in place only where the packer's reads past the end (to the last panel) stay inside B.
    const at = inHeap >= 0 && N % TILE_N === 0 ? inHeap + 4 * base : -1;
    if (at >= 0) return { at, from: rows ? 0 : 1, width: rows ? rs : cs };
    if (rows ? rs !== N : cs !== K) return null; // a copy is of a contiguous B only
    const mem = this.#scratch.floats(0);
    mem.set(src.subarray(base, base + K * N), raw);
    return { at: mem.byteOffset + 4 * raw, from: rows ? 0 : 1, width: rows ? N : K };
  }
}
