// Fused f32 elementwise loops compiled to Wasm SIMD (simd_loop_gen.ts), where their reads are
// simple: the output's own layout, one value, a row repeated down the rows, a value per row, a block
// of rows repeated, or rows found through a table (a permute that keeps the last axis); f32 and bool
// sources. Over the backend's heap, sources and the result that lie in it are read and written in
// place; others are copied into scratch and out of it. A loop that only reads one source is a plain
// copy or fill, and large loops are split by rows across the loop threads.

import type { Node } from "../graph.ts";
import type { CpuArray } from "../prim.ts";
import { liveStats } from "../stats.ts";
import { type Func, instantiate, moduleBytes } from "./asm.ts";
import { rows8 } from "./reduce_rows.ts";
import { addColumns } from "./reduce_simd.ts";
import { REDUCE_SIMD_MIN } from "./reduce.ts";
import type { Expr, LoopRead } from "./fuse_loop.ts";
import { kernelMemory } from "./memory.ts";
import { Scratch, type WasmHeap } from "./heap.ts";
import { LoopThreads, type RowsFn } from "./loop_threads.ts";
import { bytesOf, exprKey, type Kind, kindOf, lanesOf, loopFunc, regionLength, rowTable } from "./simd_loop_gen.ts";

/** The least output elements a loop must have to run in Wasm (below, copying in and out costs more). */
export const SIMD_LOOP_MIN = 1024;

/** The least output elements of a loop that is split across threads (given threads). */
export const LOOP_THREADED_WORK = 2 ** 16;

/**
 * A compiled loop: its function, for threads its id and its module's bytes in the heap, and its
 * module's exports (a reduction's sum kernels beside its prologue, SimdLoops.planSums).
 */
export interface Compiled {
  readonly fn: RowsFn;
  readonly id: number;
  readonly bytes: readonly [number, number];
  readonly exports: WebAssembly.Exports;
}

// Bytes of a reduction's prologue computed at a time (in cache when summed).
const CHUNK_BYTES = 16384;

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
    const exports = instantiate(wasm, this.#scratch.memory);
    // Threads compile the module from its bytes, kept in the heap for them.
    const at = this.#heap?.keep(wasm) ?? -1;
    liveStats.shaderModules++;
    return { fn: exports.loop as RowsFn, id: this.#ids++, bytes: [at, wasm.length], exports };
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
    if (root.size < SIMD_LOOP_MIN) return null;
    const loop = this.#loop(root, expr, reads0, sources, false);
    if (loop === null) return null;
    return {
      run: (_sh, srcs, out) => {
        const { shape, outBytes } = loop, N = shape[shape.length - 1], size = root.size, rows = size / N;
        const outAt = this.#heap?.offsetOf(out) ?? -1, own = outAt < 0 ? size * outBytes : 0;
        const at = this.#place(loop, srcs, rows, own);
        this.runRows(loop.compiled, rows, size, [outAt < 0 ? at.extra : outAt, N / 4, ...at.args]);
        if (outAt < 0) out.set(outBytes === 4 ? at.mem.subarray(0, size) : at.mem8.subarray(0, size));
      },
    };
  }

  /**
   * The sum of `input` (f32, computed by its fused expression) over one run of adjacent axes, as one
   * step: `block` is [outer, reduced, inner]. The expression's rows are computed a chunk at a time
   * into scratch that stays in cache, and each chunk is summed before the next: over the last axes
   * (inner 1) by the eight-row kernel, otherwise added to float64 column sums (reduce_rows.ts,
   * reduce_simd.ts; both add in index order from 0 in float64, the reference's bits). Null where
   * that does not apply (fewer than eight row sums, rows off four lanes, few elements).
   */
  planSums(
    sum: Node,
    input: Node,
    block: readonly [number, number, number],
    fused: { readonly expr: Expr; readonly reads: readonly LoopRead[]; readonly sources: readonly Node[] },
  ): SimdLoop | null {
    const [O, R, I] = block;
    if (sum.dtype !== "f32" || input.size < REDUCE_SIMD_MIN || (I === 1 && (O < 8 || R % 4 !== 0))) return null;
    const loop = this.#loop(input, fused.expr, fused.reads, fused.sources, true);
    if (loop === null || loop.outBytes !== 4) return null;
    const N = loop.shape[loop.shape.length - 1];
    if ((I === 1 ? R : I) % N !== 0) return null;
    const fn = loop.compiled.fn, e = loop.compiled.exports;
    if (I === 1) {
      // Chunks of whole groups of eight sums, about 16 KiB of values each.
      const chunk = Math.max(8, Math.floor(CHUNK_BYTES / (4 * R) / 8) * 8), groups = Math.ceil(O / 8), per = R / N;
      const sums = e.sums as (src: number, dst: number, groups: number, r: number, r4: number) => void;
      return {
        run: (_sh, srcs, out) => {
          // Scratch after the reads: the chunk, then eight sums a group (the last group's extra dropped).
          const at = this.#place(loop, srcs, O * per, 4 * (chunk * R + groups * 8));
          const buf = at.extra, dst = buf + 4 * chunk * R;
          for (let o0 = 0; o0 < O; o0 += chunk) {
            const o1 = Math.min(O, o0 + chunk);
            fn(buf - 4 * o0 * R, o0 * per, o1 * per, N / 4, ...at.args); // rows of o0 start at buf
            sums(buf, dst + 4 * o0, Math.ceil((o1 - o0) / 8), R, R & ~3);
          }
          out.set(at.mem.subarray((dst - at.base) / 4, (dst - at.base) / 4 + O));
        },
      };
    }
    // Chunks of whole rows of the reduced axes, about 16 KiB each, added to I float64 sums.
    const chunk = Math.max(1, Math.floor(CHUNK_BYTES / (4 * I))), per = I / N;
    const add = e.columns as (src: number, acc: number, r: number, inner: number) => void;
    return {
      run: (_sh, srcs, out) => {
        const at = this.#place(loop, srcs, O * R * per, 4 * chunk * I + 8 * I);
        const buf = at.extra, accAt = buf + Math.ceil(chunk * I / 4) * 16;
        const acc = new Float64Array(at.mem.buffer, accAt, I);
        for (let o = 0; o < O; o++) {
          acc.fill(0);
          for (let r0 = 0; r0 < R; r0 += chunk) {
            const r1 = Math.min(R, r0 + chunk), row0 = (o * R + r0) * per;
            fn(buf - 4 * row0 * N, row0, (o * R + r1) * per, N / 4, ...at.args); // row0 at buf
            add(buf, accAt, r1 - r0, I);
          }
          for (let j = 0; j < I; j++) out[o * I + j] = acc[j];
        }
      },
    };
  }

  // The compiled loop for `root`'s expression over its shape without trailing size-1 axes, with its
  // reads' kinds and row tables; null where it does not qualify. With `sums`, its module also
  // exports the sum kernels over the same memory (reduce_rows.ts's rows8, reduce_simd.ts's addColumns).
  #loop(
    root: Node,
    expr: Expr,
    reads0: readonly LoopRead[],
    sources: readonly Node[],
    sums: boolean,
  ): Planned | null {
    // Trailing size-1 axes (a per-row value kept as [..., 1]) index nothing: the loop runs over the
    // shape without them, so its rows are the last axis of any size.
    let R = root.shape.length;
    while (R > 1 && root.shape[R - 1] === 1) R--;
    const shape = root.shape.slice(0, R), reads = reads0.map((rd) => ({ ...rd, strides: rd.strides.slice(0, R) }));
    if (R === 0 || shape[R - 1] % 4 !== 0) return null;
    const lanes = lanesOf(expr, sources, reads);
    if (!(root.dtype === "f32" ? lanes === "f32" : root.dtype === "bool" && lanes === "mask")) return null;
    const kinds = reads.map((rd) => kindOf(rd, shape)), bytes = reads.map((rd) => bytesOf(sources, rd));
    if (kinds.some((k, r) => k.kind === "strided" && bytes[r] !== 4)) return null; // bools: JavaScript
    const ints = reads.map((rd) => sources[rd.src].dtype === "i32"), outBytes = root.dtype === "bool" ? 1 : 4;
    const key = `${JSON.stringify(exprKey(expr))}|${kinds.map((k) => k.kind)}|${bytes}|${ints}|${outBytes}|${sums}`;
    let compiled = this.#compiled.get(key);
    if (compiled === undefined) {
      const funcs: [string, Func][] = [["loop", loopFunc(expr, kinds, bytes, ints, outBytes)]];
      if (sums) funcs.push(["sums", rows8()], ["columns", addColumns()]);
      compiled = this.compileRows(moduleBytes(funcs, 1, this.#heap !== null));
      this.#compiled.set(key, compiled);
    }
    const tables = kinds.map((k, r) =>
      k.kind === "rows" || k.kind === "strided" ? rowTable(reads[r].strides, shape, bytes[r]) : null
    );
    return { compiled, shape, kinds, bytes, outBytes, reads, tables };
  }

  // Places a loop's reads for `rows` rows of its output: in place where they lie in the heap, else
  // copied into scratch, with the row tables; `extra` bytes of scratch are left first (16-byte
  // aligned). Returns the loop's arguments after the vectors per row, and the scratch's addresses.
  #place(loop: Planned, srcs: readonly CpuArray[], rows: number, extra: number): Placed {
    const { kinds, bytes, reads, tables, shape } = loop;
    const N = shape[shape.length - 1], size = rows * N, heap = this.#heap;
    // A "rows" or "strided" read outside the heap is copied whole: its rows may lie anywhere in it.
    const whole = (r: number) => srcs[reads[r].src].length;
    const lengths = kinds.map((k, r) => (tables[r] !== null ? whole(r) : regionLength(k, size, N, rows)));
    // Where each read's values are in the heap (-1: copied into scratch).
    const inHeap = reads.map((rd, r) => {
      const at = heap?.offsetOf(srcs[rd.src]) ?? -1;
      return at < 0 ? -1 : at + bytes[r] * rd.c;
    });
    // Scratch regions in bytes, each 16-byte aligned, bools with room for a vector read past their end.
    const offsets: number[] = [];
    let end = 0;
    [extra, ...lengths.map((n, r) => (inHeap[r] < 0 ? n * bytes[r] : 0))].forEach((n, r) => {
      offsets.push(end);
      end += Math.ceil(n / 16) * 16 + (r > 0 && bytes[r - 1] === 1 ? 16 : 0);
    });
    // Then the tables of the "rows" and "strided" reads, one i32 a row.
    const tableAt = tables.map((t) => (t !== null ? (end += 4 * t.length) - 4 * t.length : -1));
    const mem = this.#scratch.floats(end), base = mem.byteOffset;
    const mem8 = new Uint8Array(mem.buffer, base, mem.byteLength);
    // Every kind's values are contiguous in its source from the read's offset (see kindOf).
    const regions = reads.map((rd, r) => {
      const table = tables[r];
      if (table !== null) new Int32Array(mem.buffer, base + tableAt[r], table.length).set(table);
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
    return { args: [...regions, ...spans, ...tableArgs, ...steps], mem, mem8, base, extra: base + offsets[0] };
  }
}

// A compiled loop with what placing its reads needs (see SimdLoops.#loop).
interface Planned {
  readonly compiled: Compiled;
  readonly shape: readonly number[];
  readonly kinds: readonly Kind[];
  readonly bytes: readonly number[];
  readonly outBytes: 1 | 4;
  readonly reads: readonly LoopRead[];
  readonly tables: readonly (Int32Array | null)[];
}

// A loop's reads placed (see SimdLoops.#place): its arguments after the vectors per row, the
// scratch as floats and bytes from its start at `base`, and the address of the extra bytes.
interface Placed {
  readonly args: readonly number[];
  readonly mem: Float32Array;
  readonly mem8: Uint8Array;
  readonly base: number;
  readonly extra: number;
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
      if (size === 0) return; // an empty output (a size-0 axis before the row's): the block would not fit
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
