// Column sums in Wasm SIMD: an f32 sum over the middle axis of [outer, reduced, inner] with
// inner > 1, two outputs per f64x2 vector, reading the input row by row. Each output adds its inputs in the reference's order
// (from 0, reduced index ascending) in float64 and is rounded to f32 once, so it equals the
// reference bit for bit; vectors only put independent outputs side by side.

import { Func, I32, instantiate, moduleBytes } from "./asm.ts";
import { kernelMemory, reserve } from "./memory.ts";
import { liveStats } from "../stats.ts";

// SIMD opcodes (after the 0xfd prefix).
const V128_LOAD = 0x00, V128_STORE = 0x0b, LOAD64_ZERO = 0x5d, PROMOTE = 0x5f, F64X2_ADD = 0xf0;

// O outer, R reduced, I inner: src is [O][R][I] f32, dst [O][I] f32, acc room for I + 1 f64 (byte
// pointers). Rows of src are read in order (streaming); each output's running sum lives in acc.
function sumColumns(): Func {
  const f = new Func(["src", "dst", "acc", "outer", "r", "inner"]);
  for (const n of ["o", "j", "k", "p", "q", "pairs"]) f.local(n, I32);
  f.get("inner").i32(-2).op(0x71).set("pairs"); // inner & ~1
  f.i32(0).set("o").get("src").set("p");
  f.whileLt("o", "outer", () => {
    f.i32(0).set("j");
    f.whileLt("j", "inner", () => {
      f.get("acc").get("j").i32(8).op(0x6c).op(0x6a).op(0x44, ...new Array(8).fill(0)).op(0x39, 3, 0); // f64.store 0
      f.bump("j", 1);
    });
    addRows(f);
    f.i32(0).set("j").get("acc").set("q");
    f.whileLt("j", "inner", () => {
      f.get("dst").get("q").op(0x2b, 3, 0).op(0xb6, 0x38, 2, 0); // f32.store(demote(f64.load))
      f.bump("dst", 4).bump("q", 8).bump("j", 1);
    });
    f.bump("o", 1);
  });
  return f;
}

// The r rows of inner f32 from p (advanced past them) added to the inner f64 sums at acc, row by
// row, two columns a vector; locals j, k, q and pairs (inner & ~1) are the loop's.
function addRows(f: Func): void {
  f.i32(0).set("k");
  f.whileLt("k", "r", () => {
    f.i32(0).set("j").get("acc").set("q");
    f.whileLt("j", "pairs", () => {
      f.get("q").get("q").simd(V128_LOAD, [3, 0]);
      f.get("p").simd(LOAD64_ZERO, [3, 0]).simd(PROMOTE).simd(F64X2_ADD).simd(V128_STORE, [3, 0]);
      f.bump("p", 8).bump("q", 16).bump("j", 2);
    });
    // An odd inner size leaves one column: the same sum, one lane.
    f.get("inner").i32(1).op(0x71).op(0x04, 0x40); // if (inner & 1)
    f.get("q").get("q").op(0x2b, 3, 0).get("p").f32Load().op(0xbb, 0xa0).op(0x39, 3, 0); // f64 acc += f32
    f.bump("p", 4);
    f.op(0x0b);
    f.bump("k", 1);
  });
}

// src: r rows of inner f32, acc: inner f64 sums so far (byte pointers): each row added to the sums,
// in order, as sumColumns does for one outer index (a sum whose input arrives a chunk of rows at a
// time, SimdLoops.planSums).
export function addColumns(): Func {
  const f = new Func(["src", "acc", "r", "inner"]);
  for (const n of ["j", "k", "p", "q", "pairs"]) f.local(n, I32);
  f.get("inner").i32(-2).op(0x71).set("pairs"); // inner & ~1
  f.get("src").set("p");
  addRows(f);
  return f;
}

type SumColumns = (src: number, dst: number, acc: number, outer: number, r: number, inner: number) => void;

/** The column-sum kernel over a private memory, compiled on first use. */
export class WasmColumnSums {
  readonly #memory = kernelMemory();
  #run: SumColumns | null = null;

  /** Sums f32 `a` ([O][R][I], I > 1) over R into `out` ([O][I]). */
  run(a: Float32Array, out: Float32Array, O: number, R: number, I: number): void {
    if (this.#run === null) {
      const bytes = moduleBytes([["sum_columns", sumColumns()]], 1, false);
      const e = instantiate(bytes, this.#memory);
      this.#run = e.sum_columns as SumColumns;
      liveStats.shaderModules++;
    }
    // Memory: src, then the f64 sums (8-byte aligned), then dst.
    const n = O * R * I, acc = 8 * Math.ceil(n / 2), dst = acc + 8 * (I + 1);
    reserve(this.#memory, dst + 4 * O * I);
    const mem = new Float32Array(this.#memory.buffer);
    mem.set(a.subarray(0, n));
    this.#run(0, dst, acc, O, R, I);
    out.set(mem.subarray(dst / 4, dst / 4 + O * I));
  }
}
