// The code generator of the Wasm SIMD loops (simd_loop.ts): how a loop reads each source (kindOf),
// and the Wasm function that computes a fused expression four f32 lanes at a time over rows of the
// output. add, sub, mul, div, neg, sqrt and maximum round as the reference does (f32 operations are
// correctly rounded); exp and tanh are polynomials (vmath.ts); one-element float64 constants are
// rounded to f32 first, as a device does; bools are lane masks, for where and comparisons.

import type { Node } from "../graph.ts";
import { stridesOf } from "../shape.ts";
import { Func, I32, V128 } from "./asm.ts";
import type { Expr, LoopRead } from "./fuse_loop.ts";
import { emitExp, emitTanh, SCRATCH } from "./vmath.ts";

// SIMD opcodes (after the 0xfd prefix).
const LOAD = 0x00, LOAD8_SPLAT = 0x07, LOAD32_SPLAT = 0x09, STORE = 0x0b, BITSELECT = 0x52;
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
// Comparisons of f32 values, as lane masks (false for NaN, as the reference's), and of i32 values.
const COMPARE: Readonly<Record<string, number>> = { lt: 0x43, eq: 0x41 };
const COMPARE_I32: Readonly<Record<string, number>> = { lt: 0x39, eq: 0x37 };
const AND = 0x4e, STORE32_LANE = 0x5a, I16_NARROW_I32 = 0x85, I8_NARROW_I16 = 0x65;
const I32X4_SPLAT = 0x11, I32X4_REPLACE = 0x1c;

/**
 * How a loop reads one source, over the output's rows (all axes but the last) and columns: "same"
 * the output's own layout, "one" a single value, "row" one row for every output row, "col" one
 * value per output row, "tile" a block of whole rows repeated down the output (a mask of the last
 * two axes over a batch of heads, say), "rows" each output row a contiguous row of the source found
 * through a table of offsets (a permute that keeps the last axis, such as splitting heads),
 * "strided" each output row found through a table and its elements a fixed step apart in the
 * source (a transpose: any other view), four lanes loaded one by one.
 */
export type ReadKind = "same" | "one" | "row" | "col" | "tile" | "rows" | "strided";

/** A read's kind; for a tile the output rows it spans before it repeats, for "strided" the step in elements. */
export interface Kind {
  readonly kind: ReadKind;
  readonly span: number;
}

export function kindOf(rd: LoopRead, shape: readonly number[]): Kind {
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
  return k("strided", st[R - 1]);
}

// Each output row's offset in bytes from the read's start, for a "rows" or "strided" read (made once, at plan time).
export function rowTable(st: readonly number[], shape: readonly number[], bytes: number): Int32Array {
  const R = shape.length, idx = new Array<number>(R - 1).fill(0);
  const table = new Int32Array(shape.slice(0, R - 1).reduce((p, d) => p * d, 1));
  let off = 0;
  for (let row = 0; row < table.length; row++) {
    table[row] = off * bytes;
    for (let d = R - 2; d >= 0; d--) {
      off += st[d];
      if (++idx[d] < shape[d]) break;
      off -= st[d] * shape[d];
      idx[d] = 0;
    }
  }
  return table;
}

// What an expression leaves on the stack: four f32 or i32 lanes, or four lane masks (a bool's value).
export type Lanes = "f32" | "i32" | "mask";

export function lanesOf(e: Expr, sources: readonly Node[], reads: readonly LoopRead[]): Lanes | null {
  if ("read" in e) {
    const dt = sources[reads[e.read].src].dtype;
    return dt === "f32" ? "f32" : dt === "i32" ? "i32" : "mask";
  }
  const op = e.node.op, args = e.args.map((a) => lanesOf(a, sources, reads));
  // i32 values are only read and compared (an index against a class, say).
  if (op in COMPARE) return args.every((a) => a === "f32") || args.every((a) => a === "i32") ? "mask" : null;
  if (e.node.dtype !== "f32") return null;
  if (op === "where") return args[0] === "mask" && args[1] === "f32" && args[2] === "f32" ? "f32" : null;
  return op in OPS && args.every((a) => a === "f32") ? "f32" : null;
}

// Bytes of one element of a read: 4 for f32, 1 for bool.
export const bytesOf = (sources: readonly Node[], rd: LoopRead) => (sources[rd.src].dtype === "bool" ? 1 : 4);

/** Pushes read `r`'s four lanes for the current position onto the stack (see emitExpr). */
export type ReadEmitter = (r: number) => void;

/**
 * Loads four lanes at the address on the stack: f32 or i32 bits (`bytes` 4), or four bools widened
 * to lane masks (1).
 */
export function loadLanes(f: Func, bytes: number): void {
  if (bytes === 4) return void f.simd(LOAD, [0, 0]);
  f.simd(LOAD32_ZERO, [0, 0]).simd(I16_EXTEND_U8).simd(I32_EXTEND_U16);
  f.v128(new Array(16).fill(0)).simd(I32_NE);
}

/**
 * Emits the expression's value (f32x4 or i32x4, or a mask for bools) onto the stack, each read's
 * lanes pushed by `read`; `ints` says which reads are i32 (their comparisons are integer ones).
 * The function needs vmath.ts's SCRATCH locals where the expression has exp or tanh.
 */
export function emitExpr(f: Func, e: Expr, read: ReadEmitter, ints: readonly boolean[]): void {
  if ("read" in e) return read(e.read);
  const op = e.node.op;
  if (op === "where") {
    emitExpr(f, e.args[1], read, ints), emitExpr(f, e.args[2], read, ints);
    emitExpr(f, e.args[0], read, ints);
    f.simd(BITSELECT);
    return;
  }
  for (const a of e.args) emitExpr(f, a, read, ints);
  const a0 = e.args[0], int = a0 !== undefined && ("read" in a0 ? ints[a0.read] : a0.node.dtype === "i32");
  if (op in COMPARE) f.simd((int ? COMPARE_I32 : COMPARE)[op]);
  else if (op === "exp") emitExp(f);
  else if (op === "tanh") emitTanh(f);
  else if (OPS[op] !== null) f.simd(OPS[op]!);
}

// A loop's read of its current position: a splat kept in a local (one, col), four lanes a step apart
// (strided), or four lanes at its pointer.
function loopRead(f: Func, kinds: readonly Kind[], bytes: readonly number[]): ReadEmitter {
  return (r) => {
    const k = kinds[r].kind;
    if (k === "one" || k === "col") f.get(`w${r}`);
    else if (k === "strided") {
      // Four 32-bit lanes a step apart, loaded as integers (bits kept, NaN payloads included).
      f.get(`q${r}`).op(0x28, 2, 0).simd(I32X4_SPLAT);
      for (let l = 1; l < 4; l++) f.get(`q${r}`).get(`s${r}_${l}`).op(0x6a).op(0x28, 2, 0).simd(I32X4_REPLACE).op(l);
    } else f.get(`q${r}`), loadLanes(f, bytes[r]);
  };
}

/** Splats the value at the address on the stack to four lanes: an f32 (`bytes` 4), or a bool's mask (1). */
export function splatLanes(f: Func, bytes: number): void {
  if (bytes === 4) f.simd(LOAD32_SPLAT, [2, 0]);
  else f.simd(LOAD8_SPLAT, [0, 0]).v128(new Array(16).fill(0)).simd(I32_NE);
}

// A value read once (one, col) as a splat into local w{r}.
function splat(f: Func, r: number, bytes: number): void {
  splatLanes(f, bytes);
  f.set(`w${r}`);
}

// (out, first row, end row, vectors per row, each read's region (a byte offset in memory), then each
// tile's span in rows, each table's offset, each strided read's step in bytes): rows [row0, rows) of the output whose row 0 is at `out`, so that threads can
// share one call by rows. The output is f32 (`outBytes` 4) or bool (1: each lane mask stored as a
// byte 0 or 1).
export function loopFunc(
  expr: Expr,
  kinds: readonly Kind[],
  bytes: readonly number[],
  ints: readonly boolean[],
  outBytes: 1 | 4,
): Func {
  const tiles = kinds.flatMap((k, r) => (k.kind === "tile" ? [`t${r}`] : []));
  const tables = kinds.flatMap((k, r) => (k.kind === "rows" || k.kind === "strided" ? [`g${r}`] : []));
  const steps = kinds.flatMap((k, r) => (k.kind === "strided" ? [`s${r}`] : []));
  const f = new Func(["out", "row0", "rows", "n4", ...kinds.map((_, r) => `p${r}`), ...tiles, ...tables, ...steps]);
  for (const l of ["row", "j"]) f.local(l, I32);
  kinds.forEach((_, r) => f.local(`q${r}`, I32).local(`w${r}`, V128));
  // A strided read's lanes 1-3 are 1-3 steps from its pointer, and a vector 4 steps on.
  for (const s of steps) {
    for (let l = 1; l <= 4; l++) f.local(`${s}_${l}`, I32).get(s).i32(l).op(0x6c).set(`${s}_${l}`);
  }
  for (const l of [...SCRATCH, "m"]) f.local(l, V128);
  // The first row's positions: out and the reads of the output's layout, row0 rows in.
  f.get("out").get("row0").get("n4").op(0x6c).i32(4 * outBytes).op(0x6c).op(0x6a).set("out");
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
      if (k.kind === "rows" || k.kind === "strided") {
        f.get(`p${r}`).get(`g${r}`).get("row").i32(4).op(0x6c).op(0x6a).op(0x28, 2, 0).op(0x6a).set(`q${r}`);
      }
    });
    f.i32(0).set("j");
    const read = loopRead(f, kinds, bytes);
    f.loopWhile("j", "n4", () => {
      f.get("out");
      emitExpr(f, expr, read, ints);
      if (outBytes === 4) f.simd(STORE, [0, 0]);
      else {
        // Masks (0 or -1 a lane) narrowed to bytes, then 1 for true: four bytes stored.
        f.tee("m").get("m").simd(I16_NARROW_I32).tee("m").get("m").simd(I8_NARROW_I16);
        f.v128(new Array(16).fill(1)).simd(AND).simd(STORE32_LANE, [0, 0]).op(0);
      }
      f.bump("out", 4 * outBytes);
      kinds.forEach((k, r) => {
        if (k.kind === "strided") f.get(`q${r}`).get(`s${r}_4`).op(0x6a).set(`q${r}`);
        else if (k.kind !== "one" && k.kind !== "col") f.bump(`q${r}`, 4 * bytes[r]);
      });
      f.bump("j", 1);
    });
    f.bump("row", 1);
  });
  f.code.push(0x0b);
  return f;
}

// Elements of a read's region for an output of `size` elements in `rows` rows of `N`.
export function regionLength(k: Kind, size: number, N: number, rows: number): number {
  return k.kind === "same" ? size : k.kind === "row" ? N : k.kind === "col" ? rows : k.kind === "tile" ? k.span * N : 1;
}

// The expression's structure, for the cache of compiled loops.
export function exprKey(e: Expr): unknown {
  return "read" in e ? e.read : [e.node.op, ...e.args.map(exprKey)];
}
