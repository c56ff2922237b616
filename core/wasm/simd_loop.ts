// Fused f32 elementwise loops compiled to Wasm SIMD (simd_loop_gen.ts), where their reads are
// simple: the output's own layout, one value, a row repeated down the rows, a value per row, a block
// of rows repeated, or rows found through a table (a permute that keeps the last axis); f32 and bool
// sources. Over the backend's heap, sources and the result that lie in it are read and written in
// place; others are copied into scratch and out of it. A loop that only reads one source is a plain
// copy or fill, and large loops are split by rows across the loop threads.

import type { Node } from "../graph.ts";
import type { CpuArray } from "../prim.ts";
import { liveStats } from "../stats.ts";
import { moduleBytes } from "./asm.ts";
import type { Expr, LoopRead } from "./fuse_loop.ts";
import { kernelMemory } from "./memory.ts";
import { Scratch, type WasmHeap } from "./heap.ts";
import { LoopThreads, type RowsFn } from "./loop_threads.ts";
import { bytesOf, exprKey, type Kind, kindOf, lanesOf, loopFunc, regionLength, rowTable } from "./simd_loop_gen.ts";

/** The least output elements a loop must have to run in Wasm (below, copying in and out costs more). */
export const SIMD_LOOP_MIN = 1024;

/** The least output elements of a loop that is split across threads (given threads). */
export const LOOP_THREADED_WORK = 2 ** 16;

/** A compiled loop: its function, and for threads its id and its module's bytes in the heap. */
export interface Compiled {
  readonly fn: RowsFn;
  readonly id: number;
  readonly bytes: readonly [number, number];
}

/** A loop compiled for one structure (or a plain copy): computes the output of `shape` from its sources' values. */
export interface SimdLoop {
  /** Computes the loop over an output of `shape` from its sources' values into `out`. */
  run(shape: readonly number[], sources: readonly CpuArray[], out: CpuArray): void;
}

/** Compiles fused loops to Wasm SIMD where they qualify, and runs them on one memory (the heap's, given one). */
export class SimdLoops {
  readonly #heap: WasmHeap | null;
  readonly #scratch: Scratch;
  readonly #compiled = new Map<string, Compiled>();
  #threads: LoopThreads | null = null;
  #threadedWork = LOOP_THREADED_WORK;
  #ids = 0;

  constructor(heap: WasmHeap | null = null) {
    this.#heap = heap;
    this.#scratch = new Scratch(heap, () => kernelMemory());
  }

  /**
   * Shares loops of `threadedWork` output elements or more across `count` threads (workers over the
   * heap); nothing without a heap or workers. Returns the threads a loop now uses.
   */
  async startThreads(count: number, threadedWork = LOOP_THREADED_WORK): Promise<number> {
    this.#threadedWork = threadedWork;
    if (this.#heap !== null && this.#threads === null) {
      this.#threads = await LoopThreads.start(this.#heap.memory, count);
    }
    return this.#threads?.count ?? 1;
  }

  /**
   * Compiles a module exporting `loop` (a RowsFn) over the loops' memory, and keeps its bytes in the
   * heap for the threads (loops of other kernels, softmax's, share the threads this way).
   */
  compileRows(wasm: Uint8Array<ArrayBuffer>): Compiled {
    const inst = new WebAssembly.Instance(new WebAssembly.Module(wasm), { env: { mem: this.#scratch.memory } });
    // Threads compile the module from its bytes, kept in the heap for them.
    const at = this.#heap?.alloc(wasm.length) ?? -1;
    if (at >= 0) new Uint8Array(this.#heap!.buffer, at, wasm.length).set(wasm);
    liveStats.shaderModules++;
    return { fn: inst.exports.loop as RowsFn, id: this.#ids++, bytes: [at, wasm.length] };
  }

  /**
   * Runs `loop` over `rows` rows of an output of `size` elements, `args` = [out, ...the arguments
   * after the row range]: split by rows across the threads from the threaded work on.
   */
  runRows(loop: Compiled, rows: number, size: number, args: readonly number[]): void {
    const threads = this.#threads;
    if (threads !== null && size >= this.#threadedWork && rows > 1 && loop.bytes[0] >= 0) {
      threads.call(loop.id, loop.fn, loop.bytes, rows, args);
    } else loop.fn(args[0], 0, rows, ...args.slice(1));
  }

  /** The memory the loops run on (the heap's, given one). */
  get memory(): WebAssembly.Memory {
    return this.#scratch.memory;
  }

  /** Wasm loops compiled so far (one per expression and read kinds). */
  get compiled(): number {
    return this.#compiled.size;
  }

  /** Loops split across the threads so far, and the shares of them that workers ran. */
  get threaded(): { readonly calls: number; readonly workerShares: number } {
    return { calls: this.#threads?.calls ?? 0, workerShares: this.#threads?.workerShares ?? 0 };
  }

  /** Stops the loop threads, if any. */
  close(): void {
    this.#threads?.stop();
    this.#threads = null;
  }

  /**
   * The Wasm loop for `root`'s fused expression, or null where it does not qualify. A loop that only
   * reads one source (a broadcast, a copying reshape) is a copy or a fill of any dtype and size, not Wasm.
   */
  plan(root: Node, expr: Expr, reads0: readonly LoopRead[], sources: readonly Node[]): SimdLoop | null {
    if ("read" in expr) {
      const rd = reads0[expr.read], alone = kindOf(rd, root.shape).kind;
      if (alone !== "rows" && alone !== "strided") return copyLoop(root, rd, sources[rd.src]);
    }
    // Trailing size-1 axes (a per-row value kept as [..., 1]) index nothing: the loop runs over the
    // shape without them, so its rows are the last axis of any size.
    let R = root.shape.length;
    while (R > 1 && root.shape[R - 1] === 1) R--;
    const shape = root.shape.slice(0, R), reads = reads0.map((rd) => ({ ...rd, strides: rd.strides.slice(0, R) }));
    if (R === 0 || shape[R - 1] % 4 !== 0 || root.size < SIMD_LOOP_MIN) return null;
    const lanes = lanesOf(expr, sources, reads);
    if (!(root.dtype === "f32" ? lanes === "f32" : root.dtype === "bool" && lanes === "mask")) return null;
    const kinds = reads.map((rd) => kindOf(rd, shape)), bytes = reads.map((rd) => bytesOf(sources, rd));
    if (kinds.some((k, r) => k.kind === "strided" && bytes[r] !== 4)) return null; // bools: JavaScript
    const ints = reads.map((rd) => sources[rd.src].dtype === "i32"), outBytes = root.dtype === "bool" ? 1 : 4;
    const key = `${JSON.stringify(exprKey(expr))}|${kinds.map((k) => k.kind)}|${bytes}|${ints}|${outBytes}`;
    let loop = this.#compiled.get(key);
    if (loop === undefined) {
      loop = this.compileRows(
        moduleBytes([["loop", loopFunc(expr, kinds, bytes, ints, outBytes)]], 1, this.#heap !== null),
      );
      this.#compiled.set(key, loop);
    }
    const compiled = loop,
      tables = kinds.map((k, r) =>
        k.kind === "rows" || k.kind === "strided" ? rowTable(reads[r].strides, shape, bytes[r]) : null
      );
    return {
      run: (_sh, srcs, out) =>
        this.#run(compiled, [kinds, bytes, outBytes], reads, tables, shape, srcs, out as Float32Array),
    };
  }

  #run(
    loop: Compiled,
    [kinds, bytes, outBytes]: readonly [readonly Kind[], readonly number[], 1 | 4],
    reads: readonly LoopRead[],
    tables: readonly (Int32Array | null)[],
    shape: readonly number[],
    srcs: readonly CpuArray[],
    out: Float32Array | Uint8Array,
  ): void {
    const N = shape[shape.length - 1], size = shape.reduce((p, d) => p * d, 1), rows = size / N;
    const heap = this.#heap;
    // A "rows" or "strided" read outside the heap is copied whole: its rows may lie anywhere in it.
    const whole = (r: number) => srcs[reads[r].src].length;
    const lengths = kinds.map((k, r) => (tables[r] !== null ? whole(r) : regionLength(k, size, N, rows)));
    // Where each read's values are in the heap (-1: copied into scratch), and the output's.
    const inHeap = reads.map((rd, r) => {
      const at = heap?.offsetOf(srcs[rd.src]) ?? -1;
      return at < 0 ? -1 : at + bytes[r] * rd.c;
    });
    const outAt = heap?.offsetOf(out) ?? -1;
    // Scratch regions in bytes, each 16-byte aligned, bools with room for a vector read past their end.
    const offsets: number[] = [];
    let end = 0;
    [outAt < 0 ? size : 0, ...lengths.map((n, r) => (inHeap[r] < 0 ? n : 0))].forEach((n, r) => {
      offsets.push(end);
      end += Math.ceil(n * (r === 0 ? outBytes : bytes[r - 1]) / 16) * 16 + (r > 0 && bytes[r - 1] === 1 ? 16 : 0);
    });
    // Then the tables of the "rows" reads, one i32 a row.
    const tableAt = tables.map((t) => (t !== null ? (end += 4 * rows) - 4 * rows : -1));
    const mem = this.#scratch.floats(end), base = mem.byteOffset;
    const mem8 = new Uint8Array(mem.buffer, base, mem.byteLength);
    // Every kind's values are contiguous in its source from the read's offset (see kindOf).
    const regions = reads.map((rd, r) => {
      const table = tables[r];
      if (table !== null) new Int32Array(mem.buffer, base + tableAt[r], rows).set(table);
      if (inHeap[r] >= 0) return inHeap[r];
      const src = srcs[rd.src], at = offsets[r + 1], n = lengths[r];
      // The whole source for a table's rows (the region starts at the read's first element), else
      // the region: bytes as they are (bools, i32 bits), f32 values rounded from float64 ones.
      const [from, count] = table !== null ? [0, src.length] : [rd.c, n];
      if (bytes[r] === 1) mem8.set((src as Uint8Array).subarray(from, from + count), at);
      else if (src instanceof Int32Array) {
        new Int32Array(mem.buffer, base + at, count).set(src.subarray(from, from + count));
      } else mem.set((src as Float32Array | Float64Array).subarray(from, from + count), at / 4);
      return base + at + (table !== null ? bytes[r] * rd.c : 0);
    });
    const spans = kinds.flatMap((k) => (k.kind === "tile" ? [k.span] : []));
    const tableArgs = tableAt.filter((at) => at >= 0).map((at) => base + at);
    const steps = kinds.flatMap((k, r) => (k.kind === "strided" ? [k.span * bytes[r]] : []));
    this.runRows(loop, rows, size, [outAt < 0 ? base : outAt, N / 4, ...regions, ...spans, ...tableArgs, ...steps]);
    if (outAt < 0) out.set(outBytes === 4 ? mem.subarray(0, size) : mem8.subarray(0, size));
  }
}

// A loop that reads one source as it is: a fill, a copy, or a row, value or tile repeated.
function copyLoop(root: Node, rd: LoopRead, source: Node): SimdLoop | null {
  const shape = root.shape, R = shape.length;
  if (source.dtype !== root.dtype || R === 0) return null;
  const kind = kindOf(rd, shape);
  if (kind.kind === "rows" || kind.kind === "strided") return null;
  return {
    run(sh, srcs, out) {
      const src = srcs[rd.src], N = sh[R - 1], size = out.length, rows = N === 0 ? 0 : size / N;
      const n = regionLength(kind, size, N, rows), at = rd.c;
      if (kind.kind === "one") return void out.fill(src[at]);
      if (kind.kind === "col") {
        for (let i = 0; i < rows; i++) out.fill(src[at + i], i * N, i * N + N);
        return;
      }
      // same, row and tile: a block of n values, repeated to fill the output.
      out.set(src.subarray(at, at + n) as ArrayLike<number>, 0);
      for (let filled = n; filled < size; filled *= 2) out.copyWithin(filled, 0, Math.min(filled, size - filled));
    },
  };
}
