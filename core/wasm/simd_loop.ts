// Fused f32 elementwise loops compiled to Wasm SIMD, four lanes at a time, where their reads are
// simple: the output's own layout, one value, a row repeated down the rows, a value per row, or a
// block of rows repeated; f32 and bool sources (bools as lane masks, for where and comparisons).
// Over the backend's heap, sources and the result that lie in it are read and written in place;
// others are copied into scratch and out of it. A loop that only reads one source is a plain copy or fill. add, sub, mul, div, neg,
// sqrt and maximum round as the reference does (f32 operations are correctly rounded); exp and tanh
// are polynomials (vmath.ts); one-element float64 constants are rounded to f32 first, as a device does.

import type { Node } from "../graph.ts";
import type { CpuArray } from "../prim.ts";
import { stridesOf } from "../shape.ts";
import { liveStats } from "../stats.ts";
import { Func, I32, moduleBytes, V128 } from "./asm.ts";
import type { Expr, LoopRead } from "./fuse_loop.ts";
import { emitExp, emitTanh, SCRATCH } from "./vmath.ts";
import { kernelMemory } from "./memory.ts";
import { Scratch, type WasmHeap } from "./heap.ts";
import { LoopThreads, type RowsFn } from "./loop_threads.ts";

// SIMD opcodes (after the 0xfd prefix).
const LOAD = 0x00, LOAD8_SPLAT = 0x07, LOAD32_SPLAT = 0x09, STORE = 0x0b, CONST = 0x0c, BITSELECT = 0x52;
const LOAD32_ZERO = 0x5c, I16_EXTEND_U8 = 0x89, I32_EXTEND_U16 = 0xa9, I32_NE = 0x38;
const OPS: Readonly<Record<string, number | null>> = {
  add: 0xe4,
  sub: 0xe5,
  mul: 0xe6,
  div: 0xe7,
  neg: 0xe1,
  sqrt: 0xe3,
  maximum: 0xe9, // NaN if either is NaN, as the reference's maximum
  exp: null,
  tanh: null,
  stopGradient: null,
};
// Comparisons of f32 values, as lane masks (false for NaN, as the reference's).
const COMPARE: Readonly<Record<string, number>> = { lt: 0x43, eq: 0x41 };

/** The least output elements a loop must have to run in Wasm (below, copying in and out costs more). */
export const SIMD_LOOP_MIN = 1024;

/** The least output elements of a loop that is split across threads (given threads). */
export const LOOP_THREADED_WORK = 2 ** 16;

/**
 * How a loop reads one source, over the output's rows (all axes but the last) and columns: "same"
 * the output's own layout, "one" a single value, "row" one row for every output row, "col" one
 * value per output row, "tile" a block of whole rows repeated down the output (a mask of the last
 * two axes over a batch of heads, say), "rows" each output row a contiguous row of the source found
 * through a table of offsets (a permute that keeps the last axis, such as splitting heads).
 */
export type ReadKind = "same" | "one" | "row" | "col" | "tile" | "rows";

/** A read's kind, and for a tile the output rows it spans before it repeats. */
interface Kind {
  readonly kind: ReadKind;
  readonly span: number;
}

function kindOf(rd: LoopRead, shape: readonly number[]): Kind | null {
  const R = shape.length, own = stridesOf(shape), st = rd.strides;
  const k = (kind: ReadKind, span = 1): Kind => ({ kind, span });
  if (st.every((v) => v === 0)) return k("one");
  if (st.every((v, j) => v === own[j])) return k("same");
  if (st[R - 1] === 1 && st.every((v, j) => j === R - 1 || v === 0)) return k("row");
  const outer = stridesOf(shape.slice(0, R - 1));
  if (st[R - 1] === 0 && outer.every((v, j) => st[j] === v || shape[j] === 1)) return k("col");
  // A tile: the output's own strides from axis j0 on (within the rows), nothing moved before it.
  for (let j0 = 1; j0 < R - 1; j0++) {
    if (st.every((v, j) => (j < j0 ? v === 0 || shape[j] === 1 : v === stridesOf(shape.slice(j0))[j - j0]))) {
      return k("tile", shape.slice(j0, R - 1).reduce((p, d) => p * d, 1));
    }
  }
  if (st[R - 1] === 1) return k("rows");
  return null;
}

// Each output row's offset (in elements) from the read's start, for a "rows" read.
function rowTable(st: readonly number[], shape: readonly number[], table: Int32Array, scale: number): void {
  const R = shape.length, idx = new Array<number>(R - 1).fill(0);
  let off = 0;
  for (let row = 0; row < table.length; row++) {
    table[row] = off * scale;
    for (let d = R - 2; d >= 0; d--) {
      off += st[d];
      if (++idx[d] < shape[d]) break;
      off -= st[d] * shape[d];
      idx[d] = 0;
    }
  }
}

// What an expression leaves on the stack: four f32 lanes, or four lane masks (a bool's value).
type Lanes = "f32" | "mask";

function lanesOf(e: Expr, sources: readonly Node[], reads: readonly LoopRead[]): Lanes | null {
  if ("read" in e) {
    const dt = sources[reads[e.read].src].dtype;
    return dt === "f32" ? "f32" : dt === "bool" ? "mask" : null;
  }
  const op = e.node.op, args = e.args.map((a) => lanesOf(a, sources, reads));
  if (op in COMPARE) return args.every((a) => a === "f32") ? "mask" : null;
  if (e.node.dtype !== "f32") return null;
  if (op === "where") return args[0] === "mask" && args[1] === "f32" && args[2] === "f32" ? "f32" : null;
  return op in OPS && args.every((a) => a === "f32") ? "f32" : null;
}

// Bytes of one element of a read: 4 for f32, 1 for bool.
const bytesOf = (sources: readonly Node[], rd: LoopRead) => (sources[rd.src].dtype === "bool" ? 1 : 4);

// Emits the expression's value (f32x4, or a mask for bools) onto the stack.
function emit(f: Func, e: Expr, kinds: readonly Kind[], bytes: readonly number[]): void {
  if ("read" in e) {
    const k = kinds[e.read].kind, r = e.read;
    if (k === "one" || k === "col") f.get(`w${r}`);
    else if (bytes[r] === 4) f.get(`q${r}`).simd(LOAD, [0, 0]);
    else {
      // Four bools widened to four i32 lanes, then compared with zero.
      f.get(`q${r}`).simd(LOAD32_ZERO, [0, 0]).simd(I16_EXTEND_U8).simd(I32_EXTEND_U16);
      f.simd(CONST).op(...new Array(16).fill(0)).simd(I32_NE);
    }
    return;
  }
  const op = e.node.op;
  if (op === "where") {
    emit(f, e.args[1], kinds, bytes), emit(f, e.args[2], kinds, bytes), emit(f, e.args[0], kinds, bytes);
    f.simd(BITSELECT);
    return;
  }
  for (const a of e.args) emit(f, a, kinds, bytes);
  if (op in COMPARE) f.simd(COMPARE[op]);
  else if (op === "exp") emitExp(f);
  else if (op === "tanh") emitTanh(f);
  else if (OPS[op] !== null) f.simd(OPS[op]!);
}

// A value read once (one, col) as a splat into local w{r}: an f32, or a bool's mask.
function splat(f: Func, r: number, bytes: number): void {
  if (bytes === 4) f.simd(LOAD32_SPLAT, [2, 0]);
  else f.simd(LOAD8_SPLAT, [0, 0]).simd(CONST).op(...new Array(16).fill(0)).simd(I32_NE);
  f.set(`w${r}`);
}

// (out, first row, end row, vectors per row, each read's region (a byte offset in memory), then each
// tile's span in rows): rows [row0, rows) of the output whose row 0 is at `out`, so that threads can
// share one call by rows.
function loopFunc(expr: Expr, kinds: readonly Kind[], bytes: readonly number[]): Func {
  const tiles = kinds.flatMap((k, r) => (k.kind === "tile" ? [`t${r}`] : []));
  const tables = kinds.flatMap((k, r) => (k.kind === "rows" ? [`g${r}`] : []));
  const f = new Func(["out", "row0", "rows", "n4", ...kinds.map((_, r) => `p${r}`), ...tiles, ...tables]);
  for (const l of ["row", "j"]) f.local(l, I32);
  kinds.forEach((_, r) => f.local(`q${r}`, I32).local(`w${r}`, V128));
  for (const l of SCRATCH) f.local(l, V128);
  // The first row's positions: out and the reads of the output's layout, row0 rows in.
  f.get("out").get("row0").get("n4").op(0x6c).i32(16).op(0x6c).op(0x6a).set("out");
  kinds.forEach((k, r) => {
    if (k.kind === "one") f.get(`p${r}`), splat(f, r, bytes[r]);
    if (k.kind === "same") {
      f.get(`p${r}`).get("row0").get("n4").op(0x6c).i32(4 * bytes[r]).op(0x6c).op(0x6a).set(`q${r}`);
    }
  });
  f.code.push(0x02, 0x40); // block: nothing to do for no rows or empty rows
  f.get("row0").get("rows").op(0x4f, 0x0d, 0).get("n4").op(0x45, 0x0d, 0); // i32.ge_u; br_if 0; i32.eqz; br_if 0
  f.get("row0").set("row");
  f.loopWhile("row", "rows", () => {
    kinds.forEach((k, r) => {
      if (k.kind === "row") f.get(`p${r}`).set(`q${r}`);
      if (k.kind === "col") f.get(`p${r}`).get("row").i32(bytes[r]).op(0x6c).op(0x6a), splat(f, r, bytes[r]);
      // A tile's row: p + (row mod span) * the row's bytes (n4 vectors of 4 elements).
      if (k.kind === "tile") {
        f.get(`p${r}`).get("row").get(`t${r}`).op(0x70).get("n4").op(0x6c).i32(4 * bytes[r]).op(0x6c).op(0x6a);
        f.set(`q${r}`);
      }
      // A row through the table: p + table[row] (bytes).
      if (k.kind === "rows") {
        f.get(`p${r}`).get(`g${r}`).get("row").i32(4).op(0x6c).op(0x6a).op(0x28, 2, 0).op(0x6a).set(`q${r}`);
      }
    });
    f.i32(0).set("j");
    f.loopWhile("j", "n4", () => {
      f.get("out");
      emit(f, expr, kinds, bytes);
      f.simd(STORE, [0, 0]);
      f.bump("out", 16);
      kinds.forEach((k, r) => {
        if (k.kind !== "one" && k.kind !== "col") f.bump(`q${r}`, 4 * bytes[r]);
      });
      f.bump("j", 1);
    });
    f.bump("row", 1);
  });
  f.code.push(0x0b);
  return f;
}

// A compiled loop: its function, and for threads its id and its module's bytes in the heap.
interface Compiled {
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
  plan(root: Node, expr: Expr, reads: readonly LoopRead[], sources: readonly Node[]): SimdLoop | null {
    const shape = root.shape, R = shape.length;
    if ("read" in expr && kindOf(reads[expr.read], shape)?.kind !== "rows") {
      return copyLoop(root, reads[expr.read], sources[reads[expr.read].src]);
    }
    if (root.dtype !== "f32" || R === 0 || shape[R - 1] % 4 !== 0 || root.size < SIMD_LOOP_MIN) return null;
    if (lanesOf(expr, sources, reads) !== "f32") return null;
    const found = reads.map((rd) => kindOf(rd, shape));
    if (found.some((k) => k === null)) return null;
    const kinds = found as Kind[], bytes = reads.map((rd) => bytesOf(sources, rd));
    const key = `${JSON.stringify(exprKey(expr))}|${kinds.map((k) => k.kind)}|${bytes}`;
    let loop = this.#compiled.get(key);
    if (loop === undefined) {
      const wasm = moduleBytes([["loop", loopFunc(expr, kinds, bytes)]], 1, this.#heap !== null);
      const inst = new WebAssembly.Instance(new WebAssembly.Module(wasm), { env: { mem: this.#scratch.memory } });
      // Threads compile the module from its bytes, kept in the heap for them.
      const at = this.#heap?.alloc(wasm.length) ?? -1;
      if (at >= 0) new Uint8Array(this.#heap!.buffer, at, wasm.length).set(wasm);
      loop = { fn: inst.exports.loop as RowsFn, id: this.#compiled.size, bytes: [at, wasm.length] };
      this.#compiled.set(key, loop);
      liveStats.shaderModules++;
    }
    const compiled = loop;
    return { run: (sh, srcs, out) => this.#run(compiled, kinds, bytes, reads, sh, srcs, out as Float32Array) };
  }

  #run(
    loop: Compiled,
    kinds: readonly Kind[],
    bytes: readonly number[],
    reads: readonly LoopRead[],
    shape: readonly number[],
    srcs: readonly CpuArray[],
    out: Float32Array,
  ): void {
    const N = shape[shape.length - 1], size = shape.reduce((p, d) => p * d, 1), rows = size / N;
    const heap = this.#heap;
    // A "rows" read outside the heap is copied whole: its rows may lie anywhere in it.
    const lengths = kinds.map((
      k,
      r,
    ) => (k.kind === "rows" ? srcs[reads[r].src].length : regionLength(k, size, N, rows)));
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
      end += Math.ceil(n * (r === 0 ? 4 : bytes[r - 1]) / 16) * 16 + (r > 0 && bytes[r - 1] === 1 ? 16 : 0);
    });
    // Then the tables of the "rows" reads, one i32 a row.
    const tableAt = kinds.map((k) => (k.kind === "rows" ? (end += 4 * rows) - 4 * rows : -1));
    const mem = this.#scratch.floats(end), base = mem.byteOffset;
    const mem8 = new Uint8Array(mem.buffer, base, mem.byteLength);
    // Every kind's values are contiguous in its source from the read's offset (see kindOf).
    const regions = reads.map((rd, r) => {
      if (kinds[r].kind === "rows") {
        rowTable(rd.strides, shape, new Int32Array(mem.buffer, base + tableAt[r], rows), bytes[r]);
      }
      if (inHeap[r] >= 0) return inHeap[r];
      const src = srcs[rd.src], at = offsets[r + 1], n = lengths[r];
      if (kinds[r].kind === "rows") {
        // The whole source; the region starts at the read's first element.
        if (bytes[r] === 1) mem8.set(src as Uint8Array, at);
        else mem.set(src, at / 4);
        return base + at + bytes[r] * rd.c;
      }
      if (bytes[r] === 1) mem8.set((src as Uint8Array).subarray(rd.c, rd.c + n), at);
      else if (src instanceof Float32Array) mem.set(src.subarray(rd.c, rd.c + n), at / 4);
      else for (let i = 0; i < n; i++) mem[at / 4 + i] = src[rd.c + i];
      return base + at;
    });
    const spans = kinds.flatMap((k) => (k.kind === "tile" ? [k.span] : []));
    const tables = tableAt.filter((at) => at >= 0).map((at) => base + at);
    const args = [outAt < 0 ? base : outAt, N / 4, ...regions, ...spans, ...tables], threads = this.#threads;
    if (threads !== null && size >= this.#threadedWork && rows > 1 && loop.bytes[0] >= 0) {
      threads.call(loop.id, loop.fn, loop.bytes, rows, args);
    } else loop.fn(args[0], 0, rows, ...args.slice(1));
    if (outAt < 0) out.set(mem.subarray(0, size));
  }
}

// Elements of a read's region for an output of `size` elements in `rows` rows of `N`.
function regionLength(k: Kind, size: number, N: number, rows: number): number {
  return k.kind === "same" ? size : k.kind === "row" ? N : k.kind === "col" ? rows : k.kind === "tile" ? k.span * N : 1;
}

// A loop that reads one source as it is: a fill, a copy, or a row, value or tile repeated.
function copyLoop(root: Node, rd: LoopRead, source: Node): SimdLoop | null {
  const shape = root.shape, R = shape.length;
  if (source.dtype !== root.dtype || R === 0) return null;
  const kind = kindOf(rd, shape);
  if (kind === null) return null;
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

// The expression's structure, for the cache of compiled loops.
function exprKey(e: Expr): unknown {
  return "read" in e ? e.read : [e.node.op, ...e.args.map(exprKey)];
}
