// f32 max reductions in Wasm SIMD, equal to the reference bit for bit. The reference keeps, per
// output, `acc = v` when `v > acc` or v is NaN: the first of equal maxima (so -0 or +0 as first
// seen) and the last NaN. f32x4.pmax(acc, v) is `acc < v ? v : acc`, the same rule without NaN.
// - Column maxima ([O][R][I], I > 1): four outputs a vector, rows streamed in order, NaN selected
//   into the lane by a mask, so each lane follows the reference's rule exactly.
// - Row maxima (I = 1): four lanes of one row, then the lanes' maximum. That is the reference's
//   value unless the row's maximum is a zero (whose sign depends on the order) or the row holds a
//   NaN; the kernel flags those rows and the caller redoes them in order.

import { F32, Func, I32, instantiate, moduleBytes, V128 } from "./asm.ts";
import { kernelMemory, reserve } from "./memory.ts";
import { liveStats } from "../stats.ts";

const LOAD = 0x00, STORE = 0x0b, F32X4_SPLAT = 0x13, F32X4_EXTRACT = 0x1f, F32X4_NE = 0x42, OR = 0x50;
const BITSELECT = 0x52, ANY_TRUE = 0x53, PMAX = 0xeb, MEM1 = [0, 0] as const;
const NEG_INF = [0x00, 0x00, 0x80, 0xff]; // f32 -Infinity, little-endian

// src: rows of r f32; dst: 8 bytes a row, the lanes' max (f32) then whether a NaN was seen (i32).
function maxRows(): Func {
  const f = new Func(["src", "dst", "rows", "r", "r4"]);
  for (const n of ["row", "j", "nan"]) f.local(n, I32);
  for (const n of ["m", "x"]) f.local(n, F32);
  for (const n of ["acc", "v", "seen"]) f.local(n, V128);
  f.i32(0).set("row");
  f.whileLt("row", "rows", () => {
    f.op(0x43, ...NEG_INF).simd(F32X4_SPLAT).set("acc");
    f.i32(0).simd(0x11).set("seen"); // i32x4.splat 0
    f.i32(0).set("j");
    f.whileLt("j", "r4", () => {
      f.get("src").simd(LOAD, MEM1).set("v");
      f.get("seen").get("v").get("v").simd(F32X4_NE).simd(OR).set("seen");
      f.get("acc").get("v").simd(PMAX).set("acc");
      f.bump("src", 16).bump("j", 4);
    });
    // acc holds no NaN (pmax keeps acc when v is NaN): f32.max of its lanes is their maximum.
    f.get("acc").simd(F32X4_EXTRACT).op(0).get("acc").simd(F32X4_EXTRACT).op(1).op(0x97);
    f.get("acc").simd(F32X4_EXTRACT).op(2).get("acc").simd(F32X4_EXTRACT).op(3).op(0x97).op(0x97).set("m");
    f.get("seen").simd(ANY_TRUE).set("nan");
    f.whileLt("j", "r", () => {
      f.get("src").f32Load().set("x");
      f.get("nan").get("x").get("x").op(0x5c).op(0x72).set("nan"); // nan |= x != x
      f.get("x").get("m").get("x").get("m").op(0x5e).op(0x1b).set("m"); // m = x > m ? x : m
      f.bump("src", 4).bump("j", 1);
    });
    f.get("dst").get("m").op(0x38, 2, 0).get("dst").get("nan").op(0x36, 2, 4);
    f.bump("dst", 8).bump("row", 1);
  });
  return f;
}

// src: [outer][r][inner] f32; dst: [outer][inner rounded up to 4] f32 maxima. The last vector of a
// row may read past it: those lanes are beyond `inner` and dropped.
function maxColumns(): Func {
  const f = new Func(["src", "dst", "outer", "r", "inner"]);
  for (const n of ["o", "j", "k", "q", "i4"]) f.local(n, I32);
  for (const n of ["v", "a"]) f.local(n, V128);
  f.get("inner").i32(3).op(0x6a).i32(-4).op(0x71).set("i4");
  f.i32(0).set("o");
  f.whileLt("o", "outer", () => {
    f.i32(0).set("j").get("dst").set("q");
    f.whileLt("j", "i4", () => {
      f.get("q").op(0x43, ...NEG_INF).simd(F32X4_SPLAT).simd(STORE, MEM1);
      f.bump("q", 16).bump("j", 4);
    });
    f.i32(0).set("k");
    f.whileLt("k", "r", () => {
      f.i32(0).set("j").get("dst").set("q");
      f.whileLt("j", "inner", () => {
        f.get("src").get("j").i32(4).op(0x6c).op(0x6a).simd(LOAD, MEM1).set("v");
        f.get("q").simd(LOAD, MEM1).set("a");
        f.get("q").get("v").get("a").get("v").simd(PMAX).get("v").get("v").simd(F32X4_NE).simd(BITSELECT);
        f.simd(STORE, MEM1);
        f.bump("q", 16).bump("j", 4);
      });
      f.get("src").get("inner").i32(4).op(0x6c).op(0x6a).set("src");
      f.bump("k", 1);
    });
    f.get("dst").get("i4").i32(4).op(0x6c).op(0x6a).set("dst");
    f.bump("o", 1);
  });
  return f;
}

type Kernel = (src: number, dst: number, n: number, r: number, x: number) => void;

/** The max kernels over a private memory, compiled on first use. */
export class WasmMax {
  readonly #memory = kernelMemory();
  #k: { rows: Kernel; columns: Kernel } | null = null;

  #load(a: Float32Array, n: number, extra: number): Float32Array {
    if (this.#k === null) {
      const bytes = moduleBytes([["rows", maxRows()], ["columns", maxColumns()]], 1, false);
      const e = instantiate(bytes, this.#memory);
      this.#k = { rows: e.rows as Kernel, columns: e.columns as Kernel };
      liveStats.shaderModules++;
    }
    reserve(this.#memory, 4 * n + 16 + extra);
    const mem = new Float32Array(this.#memory.buffer);
    mem.set(a.subarray(0, n));
    return mem;
  }

  /** The max of each of `O` rows of `R > 0` values of f32 `a`, into `out`. */
  rows(a: Float32Array, out: Float32Array, O: number, R: number): void {
    const n = O * R, dst = 4 * n + 16, mem = this.#load(a, n, 8 * O);
    this.#k!.rows(0, dst, O, R, R & ~3);
    const st = new Int32Array(this.#memory.buffer, dst, 2 * O);
    for (let o = 0; o < O; o++) {
      const m = mem[dst / 4 + 2 * o];
      if (m !== 0 && st[2 * o + 1] === 0) {
        out[o] = m;
        continue;
      }
      let acc = -Infinity; // a zero maximum or a NaN: the reference's loop, in order
      for (let p = o * R; p < (o + 1) * R; p++) if (a[p] > acc || a[p] !== a[p]) acc = a[p];
      out[o] = acc;
    }
  }

  /** The max over the middle axis of f32 `a` ([O][R][I], R > 0, I > 1), into `out` ([O][I]). */
  columns(a: Float32Array, out: Float32Array, O: number, R: number, I: number): void {
    const n = O * R * I, i4 = Math.ceil(I / 4) * 4, dst = 4 * n + 16, mem = this.#load(a, n, 4 * O * i4);
    this.#k!.columns(0, dst, O, R, I);
    for (let o = 0; o < O; o++) out.set(mem.subarray(dst / 4 + o * i4, dst / 4 + o * i4 + I), o * I);
  }
}
