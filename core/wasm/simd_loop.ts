// Fused f32 elementwise loops compiled to Wasm SIMD, four lanes at a time, where their reads are
// simple: the output's own layout, one value, a row repeated down the rows, or a value per row.
// Sources are copied into the module's memory and the result copied out. add, sub, mul, div, neg,
// sqrt and maximum round as the reference does (f32 operations are correctly rounded); exp and tanh
// are polynomials (vmath.ts); one-element float64 constants are rounded to f32 first, as a device does.

import type { Node } from "../graph.ts";
import type { CpuArray } from "../prim.ts";
import { stridesOf } from "../shape.ts";
import { liveStats } from "../stats.ts";
import { Func, I32, moduleBytes, V128 } from "./asm.ts";
import type { Expr, LoopRead } from "./fuse_loop.ts";
import { emitExp, emitTanh, SCRATCH } from "./vmath.ts";
import { kernelMemory, reserve } from "./memory.ts";

// SIMD opcodes (after the 0xfd prefix).
const LOAD = 0x00, LOAD32_SPLAT = 0x09, STORE = 0x0b;
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

/** The least output elements a loop must have to run in Wasm (below, copying in and out costs more). */
export const SIMD_LOOP_MIN = 1024;

/**
 * How a loop reads one source, over the output's rows (all axes but the last) and columns: "same"
 * the output's own layout, "one" a single value, "row" one row for every output row, "col" one
 * value per output row.
 */
export type ReadKind = "same" | "one" | "row" | "col";

function kindOf(rd: LoopRead, shape: readonly number[]): ReadKind | null {
  const R = shape.length, own = stridesOf(shape), st = rd.strides;
  if (st.every((v) => v === 0)) return "one";
  if (st.every((v, j) => v === own[j])) return "same";
  if (st[R - 1] === 1 && st.every((v, j) => j === R - 1 || v === 0)) return "row";
  const outer = stridesOf(shape.slice(0, R - 1));
  if (st[R - 1] === 0 && outer.every((v, j) => st[j] === v || shape[j] === 1)) return "col";
  return null;
}

function supported(e: Expr): boolean {
  return "read" in e || (e.node.dtype === "f32" && e.node.op in OPS && e.args.every(supported));
}

// Emits the expression's f32x4 value onto the stack.
function emit(f: Func, e: Expr, kinds: readonly ReadKind[]): void {
  if ("read" in e) {
    const k = kinds[e.read];
    if (k === "same" || k === "row") f.get(`q${e.read}`).simd(LOAD, [0, 0]);
    else f.get(`w${e.read}`);
    return;
  }
  for (const a of e.args) emit(f, a, kinds);
  const op = e.node.op;
  if (op === "exp") emitExp(f);
  else if (op === "tanh") emitTanh(f);
  else if (OPS[op] !== null) f.simd(OPS[op]!);
}

// (out, rows, vectors per row, then each read's region): every region is a byte offset in memory.
function loopFunc(expr: Expr, kinds: readonly ReadKind[]): Func {
  const f = new Func(["out", "rows", "n4", ...kinds.map((_, r) => `p${r}`)]);
  for (const l of ["row", "j"]) f.local(l, I32);
  kinds.forEach((_, r) => f.local(`q${r}`, I32).local(`w${r}`, V128));
  for (const l of SCRATCH) f.local(l, V128);
  kinds.forEach((k, r) => {
    if (k === "one") f.get(`p${r}`).simd(LOAD32_SPLAT, [2, 0]).set(`w${r}`);
    if (k === "same") f.get(`p${r}`).set(`q${r}`);
  });
  f.code.push(0x02, 0x40); // block: nothing to do for no rows or empty rows
  f.get("rows").op(0x45, 0x0d, 0).get("n4").op(0x45, 0x0d, 0); // i32.eqz; br_if 0 (twice)
  f.i32(0).set("row");
  f.loopWhile("row", "rows", () => {
    kinds.forEach((k, r) => {
      if (k === "row") f.get(`p${r}`).set(`q${r}`);
      if (k === "col") f.get(`p${r}`).get("row").i32(4).op(0x6c).op(0x6a).simd(LOAD32_SPLAT, [2, 0]).set(`w${r}`);
    });
    f.i32(0).set("j");
    f.loopWhile("j", "n4", () => {
      f.get("out");
      emit(f, expr, kinds);
      f.simd(STORE, [0, 0]);
      f.bump("out", 16);
      kinds.forEach((k, r) => {
        if (k === "same" || k === "row") f.bump(`q${r}`, 16);
      });
      f.bump("j", 1);
    });
    f.bump("row", 1);
  });
  f.code.push(0x0b);
  return f;
}

type LoopFn = (out: number, rows: number, n4: number, ...regions: number[]) => void;

/** A loop compiled for one structure: each read's kind and offset, and the function. */
export interface SimdLoop {
  /** Computes the loop over an output of `shape` from its sources' values into `out`. */
  run(shape: readonly number[], sources: readonly CpuArray[], out: Float32Array): void;
}

/** Compiles fused loops to Wasm SIMD where they qualify, and runs them on one memory. */
export class SimdLoops {
  readonly #memory = kernelMemory();
  readonly #compiled = new Map<string, LoopFn>();

  /** The Wasm loop for `root`'s fused expression, or null where it does not qualify. */
  plan(root: Node, expr: Expr, reads: readonly LoopRead[], sources: readonly Node[]): SimdLoop | null {
    const shape = root.shape, R = shape.length;
    if (root.dtype !== "f32" || R === 0 || shape[R - 1] % 4 !== 0 || root.size < SIMD_LOOP_MIN) return null;
    if (!supported(expr) || reads.some((rd) => sources[rd.src].dtype !== "f32")) return null;
    const kinds = reads.map((rd) => kindOf(rd, shape));
    if (kinds.some((k) => k === null)) return null;
    const key = `${JSON.stringify(exprKey(expr))}|${kinds}`;
    let fn = this.#compiled.get(key);
    if (fn === undefined) {
      const bytes = moduleBytes([["loop", loopFunc(expr, kinds as ReadKind[])]], 1, false);
      const inst = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { mem: this.#memory } });
      this.#compiled.set(key, fn = inst.exports.loop as LoopFn);
      liveStats.shaderModules++;
    }
    return { run: (sh, srcs, out) => this.#run(fn!, kinds as ReadKind[], reads, sh, srcs, out) };
  }

  #run(
    fn: LoopFn,
    kinds: readonly ReadKind[],
    reads: readonly LoopRead[],
    shape: readonly number[],
    srcs: readonly CpuArray[],
    out: Float32Array,
  ): void {
    const N = shape[shape.length - 1], size = shape.reduce((p, d) => p * d, 1), rows = size / N;
    const lengths = kinds.map((k) => (k === "same" ? size : k === "row" ? N : k === "col" ? rows : 1));
    const offsets: number[] = [];
    let end = 0; // in floats, each region 16-byte aligned
    for (const n of [size, ...lengths]) offsets.push(end), end += Math.ceil(n / 4) * 4;
    reserve(this.#memory, 4 * end);
    const mem = new Float32Array(this.#memory.buffer);
    // Every kind's values are contiguous in its source from the read's offset (see kindOf).
    reads.forEach((rd, r) => {
      const src = srcs[rd.src], at = offsets[r + 1], n = lengths[r];
      if (src instanceof Float32Array) mem.set(src.subarray(rd.c, rd.c + n), at);
      else for (let i = 0; i < n; i++) mem[at + i] = src[rd.c + i];
    });
    fn(0, rows, N / 4, ...offsets.slice(1).map((o) => 4 * o));
    out.set(mem.subarray(0, size));
  }
}

// The expression's structure, for the cache of compiled loops.
function exprKey(e: Expr): unknown {
  return "read" in e ? e.read : [e.node.op, ...e.args.map(exprKey)];
}
