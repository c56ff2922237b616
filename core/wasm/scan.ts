// The gated delta-rule scan (deltaScan) and its reverse scan (deltaScanGrad) in Wasm SIMD, four value
// columns at a time: the columns of a head's state are independent (see core/prims/scan.ts), so
// each f32x4 lane carries one column through the recurrence. Values are padded to whole vectors of
// columns in the module's memory (over the backend's heap, inputs that need no padding are read
// where they lie, and outputs written there); a_t = exp(g_t) is computed on the host. Arithmetic is
// f32 (the reference carries the state in float64), in the reference's order of operations per column.

import type { CpuArray, PrimDef } from "../prim.ts";
import { liveStats } from "../stats.ts";
import { instantiate, moduleBytes } from "./asm.ts";
import { scanFuncs } from "./scan_kernel.ts";
import { kernelMemory } from "./memory.ts";
import { KernelPool } from "./pool.ts";
import { Scratch, type WasmHeap } from "./heap.ts";

type Fn = (...args: number[]) => void;

/**
 * The least work (B H T K V) of a scan that is split across threads (a 2-layer JetBlock training
 * step's scans, 2^21, were 3% faster on two threads than on one).
 */
export const SCAN_THREADED_WORK = 2 ** 18;

const NAMES = ["forward", "backward"];

/**
 * The two scan kernels on one growable memory, compiled once (sizes are arguments). With a pool,
 * large scans run split over batch x heads (independent recurrences): share i takes the i-th
 * contiguous range of them with its own scratch, so results are the same bits on any thread count.
 */
export class WasmScan {
  readonly #memory: WebAssembly.Memory;
  readonly #heap: WasmHeap | null;
  readonly #scratch: Scratch;
  #pool: KernelPool | null;
  readonly #threadedWork: number;
  #fns: { forward: Fn; backward: Fn; unpack: Fn } | null = null;
  /** Scans split across the pool so far. */
  threadedCalls = 0;

  /** Single-threaded on a memory of its own; see `create` for threads and the heap. */
  constructor(
    memory: WebAssembly.Memory = kernelMemory(),
    pool: KernelPool | null = null,
    threadedWork = SCAN_THREADED_WORK,
    heap: WasmHeap | null = null,
  ) {
    this.#memory = memory;
    this.#heap = heap;
    this.#scratch = new Scratch(heap, () => memory);
    this.#pool = pool;
    this.#threadedWork = threadedWork;
  }

  /**
   * Scans on the heap's memory (given one) and on `threads` threads where workers and shared memory
   * exist (else on this one).
   */
  static async create(
    opts: { readonly threads?: number; readonly threadedWork?: number; readonly heap?: WasmHeap | null } = {},
  ): Promise<WasmScan> {
    const threads = opts.threads ?? 1, work = opts.threadedWork ?? SCAN_THREADED_WORK, heap = opts.heap ?? null;
    if (threads > 1 && work < Infinity && typeof SharedArrayBuffer !== "undefined") {
      const memory = heap?.memory ?? kernelMemory({ initial: 1, maximum: 65536, shared: true });
      const pool = await KernelPool.start(moduleBytes(scanFuncs(), 1, true), memory, NAMES, threads);
      if (pool !== null) return new WasmScan(memory, pool, work, heap);
    }
    return new WasmScan(heap?.memory, null, work, heap);
  }

  /** Threads of the scans (1 without a pool). */
  get threads(): number {
    return this.#pool?.count ?? 1;
  }

  /** Stops the pool's workers (later scans run on this thread). */
  close(): void {
    this.#pool?.close();
    this.#pool = null;
  }

  /** @internal Shares of threaded scans that workers ran (0 without a pool). */
  get workerShares(): number {
    return this.#pool?.workerShares ?? 0;
  }

  #kernels(): { forward: Fn; backward: Fn; unpack: Fn } {
    if (this.#fns === null) {
      const bytes = moduleBytes(scanFuncs(), 1, this.#memory.buffer instanceof SharedArrayBuffer);
      const e = instantiate(bytes, this.#memory);
      this.#fns = { forward: e.forward as Fn, backward: e.backward as Fn, unpack: e.unpack as Fn };
      liveStats.shaderModules++;
    }
    return this.#fns;
  }

  // The shares of a scan of `BH` recurrences: the pool's count when it is worth it, else one.
  #shares(BH: number, work: number): number {
    return this.#pool !== null && BH > 1 && work >= this.#threadedWork ? this.#pool.count : 1;
  }

  // Runs kernel `fn` over all BH, or across the pool: `args(bh0, n, share)` are a range's arguments.
  #run(fn: 0 | 1, shares: number, BH: number, args: (bh0: number, n: number, share: number) => number[]): void {
    if (shares === 1) return void (fn === 0 ? this.#kernels().forward : this.#kernels().backward)(...args(0, BH, 0));
    this.#kernels();
    this.threadedCalls++;
    const list = Array.from({ length: shares }, (_, i) => {
      const bh0 = Math.floor((BH * i) / shares), bh1 = Math.floor((BH * (i + 1)) / shares);
      return args(bh0, bh1 - bh0, i);
    });
    this.#pool!.call(fn, list);
  }

  /** All states of the scan, as deltaScan returns them ([BH, T, K, V] in `out`). */
  forward(ins: readonly ArrayLike<number>[], [BH, T, K, V]: readonly number[], out: Float32Array): void {
    const [k, v, g, beta, s0] = ins, NV = Math.ceil(V / 4), V4 = 4 * NV, shares = this.#shares(BH, BH * T * K * V);
    const { at, mem } = this.#place([
      { src: k, n: BH * T * K },
      { src: v, n: BH * T * V4, rows: BH * T, V },
      { src: null, n: BH * T },
      { src: beta, n: BH * T },
      { src: s0, n: BH * K * V4, rows: BH * K, V },
      { out, n: BH * T * K * V4, V },
      { src: null, n: shares * V4 },
    ]);
    const m = mem();
    for (let r = 0, o = at[2] / 4; r < BH * T; r++) m[o + r] = Math.exp(g[r]);
    const row = 4 * K * V4; // bytes of one state
    this.#run(0, shares, BH, (b, n, i) => [
      at[0] + 4 * b * T * K,
      at[1] + 4 * b * T * V4,
      at[2] + 4 * b * T,
      at[3] + 4 * b * T,
      at[4] + b * row,
      at[5] + b * T * row,
      at[6] + 16 * NV * i,
      n,
      T,
      K,
      NV,
    ]);
    if (this.#heap?.offsetOf(out) !== at[5]) padOut(mem(), at[5], out, BH * T * K, V, V4);
  }

  /** The reverse scan, packed per value column as deltaScanGrad returns it ([BH, V, L] in `out`). */
  backward(ins: readonly ArrayLike<number>[], [BH, T, K, V]: readonly number[], out: Float32Array): void {
    const [dS, k, v, g, beta, s0, S] = ins,
      NV = Math.ceil(V / 4),
      V4 = 4 * NV,
      shares = this.#shares(BH, BH * T * K * V);
    const st = BH * T * K * V4, col = BH * T * V4, L = T * (K + 3) + K;
    const { at, mem } = this.#place([
      { src: dS, n: st, rows: BH * T * K, V },
      { src: k, n: BH * T * K },
      { src: v, n: col, rows: BH * T, V },
      { src: null, n: BH * T },
      { src: beta, n: BH * T },
      { src: s0, n: BH * K * V4, rows: BH * K, V },
      { src: S, n: st, rows: BH * T * K, V },
      { src: null, n: st },
      { src: null, n: col },
      { src: null, n: col },
      { src: null, n: col },
      { src: null, n: BH * K * V4 },
      { src: null, n: shares * 3 * V4 },
      { out, n: BH * V * L },
    ]);
    const m = mem();
    for (let r = 0, o = at[3] / 4; r < BH * T; r++) m[o + r] = Math.exp(g[r]);
    const row = 4 * K * V4, vrow = 4 * V4; // bytes of one state, of one value row
    this.#run(1, shares, BH, (b, n, i) => [
      at[0] + b * T * row,
      at[1] + 4 * b * T * K,
      at[2] + b * T * vrow,
      at[3] + 4 * b * T,
      at[4] + 4 * b * T,
      at[5] + b * row,
      at[6] + b * T * row,
      at[7] + b * T * row,
      at[8] + b * T * vrow,
      at[9] + b * T * vrow,
      at[10] + b * T * vrow,
      at[11] + b * row,
      at[12] + 3 * vrow * i,
      n,
      T,
      K,
      NV,
    ]);
    // Rearranged in Wasm into deltaScanGrad's layout, in `out` where it lies in the heap.
    this.#kernels().unpack(at[7], at[8], at[9], at[10], at[11], at[13], BH, T, K, NV, V);
    if (this.#heap?.offsetOf(out) !== at[13]) out.set(new Float32Array(this.#memory.buffer, at[13], BH * V * L));
  }

  // Each region's byte address: an input (`src`, rows of V padded to whole vectors where `rows` is
  // given) or the output (`out`) where it lies in the heap when it needs no padding, else a region of
  // `n` floats of scratch, inputs copied (padded) into it. `mem()` is the memory's current view.
  #place(
    regions: readonly (
      | { readonly src: ArrayLike<number> | null; readonly n: number; readonly rows?: number; readonly V?: number }
      | { readonly out: Float32Array; readonly n: number; readonly V?: number }
    )[],
  ): { at: number[]; mem: () => Float32Array } {
    const heap = this.#heap;
    const where = regions.map((r) => {
      const a = "out" in r ? r.out : r.src, padded = r.V !== undefined && r.V % 4 !== 0;
      return a instanceof Float32Array && !padded ? heap?.offsetOf(a) ?? -1 : -1;
    });
    let end = 0;
    const local = regions.map((
      r,
      i,
    ) => (where[i] >= 0 ? -1 : (end += Math.ceil(r.n / 4) * 4) - Math.ceil(r.n / 4) * 4));
    const base = this.#scratch.floats(4 * end).byteOffset;
    const mem = () => new Float32Array(this.#memory.buffer), m = mem();
    const at = regions.map((r, i) => {
      if (where[i] >= 0) return where[i];
      const o = base + 4 * local[i];
      if ("src" in r && r.src !== null) {
        if (r.rows !== undefined) padIn(m, o, r.src, r.rows, r.V!, Math.ceil(r.V! / 4) * 4);
        else put(m, o, r.src, r.n);
      }
      return o;
    });
    return { at, mem };
  }
}

function put(mem: Float32Array, byteAt: number, src: ArrayLike<number>, n: number): void {
  if (src instanceof Float32Array) mem.set(src.subarray(0, n), byteAt / 4);
  else for (let i = 0, o = byteAt / 4; i < n; i++) mem[o + i] = src[i];
}

// rows x V values into rows x V4 (zeros in the padding lanes).
function padIn(mem: Float32Array, byteAt: number, src: ArrayLike<number>, rows: number, V: number, V4: number): void {
  if (V === V4) return put(mem, byteAt, src, rows * V);
  const o = byteAt / 4;
  mem.fill(0, o, o + rows * V4);
  for (let r = 0; r < rows; r++) for (let j = 0; j < V; j++) mem[o + r * V4 + j] = src[r * V + j];
}

function padOut(mem: Float32Array, byteAt: number, out: Float32Array, rows: number, V: number, V4: number): void {
  const o = byteAt / 4;
  if (V === V4) return out.set(mem.subarray(o, o + rows * V));
  for (let r = 0; r < rows; r++) for (let j = 0; j < V; j++) out[r * V + j] = mem[o + r * V4 + j];
}

/** deltaScan and deltaScanGrad kernels for the Wasm backend's `kernels` table. */
export function scanKernels(
  scan: WasmScan,
): { readonly deltaScan: PrimDef<"deltaScan">["cpu"]; readonly deltaScanGrad: PrimDef<"deltaScanGrad">["cpu"] } {
  return {
    deltaScan(ins, srcs, _out, _p, ctx) {
      const [B, H, T, K] = srcs[0].shape, V = srcs[1].shape[3];
      const o = ctx.alloc("f32", B * H * T * K * V) as Float32Array;
      scan.forward(ins, [B * H, T, K, V], o);
      return o as CpuArray;
    },
    deltaScanGrad(ins, srcs, _out, _p, ctx) {
      const [B, H, T, K] = srcs[1].shape, V = srcs[2].shape[3];
      const o = ctx.alloc("f32", B * H * V * (T * (K + 3) + K)) as Float32Array;
      scan.backward(ins, [B * H, T, K, V], o);
      return o as CpuArray;
    },
  };
}
