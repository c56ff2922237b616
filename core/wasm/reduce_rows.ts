// Row sums in Wasm SIMD: an f32 sum over the last axis, rows of R values. Two kernels:
// - eight rows at a time, two rows side by side in each f64x2 vector (pairs of loaded rows
//   interleaved by shuffles), so each row still adds its values from 0, in index order, in float64,
//   and equals the reference bit for bit; vectors only put independent outputs side by side.
// - fewer than eight rows (a whole-tensor sum, a few long rows): one row at a time in a fixed blocked
//   order, eight float64 partial sums (index mod 8) combined as ((s0+s1)+(s2+s3))+((s4+s5)+(s6+s7)),
//   then the last R mod 8 values in order; it depends on R only (not on the thread count or the
//   other rows), and differs from the reference's order by float64 rounding only.

import { Func, I32, instantiate, moduleBytes, V128 } from "./asm.ts";
import { kernelMemory, reserve } from "./memory.ts";
import { liveStats } from "../stats.ts";

const LOAD = 0x00, SHUFFLE = 0x0d, F64X2_SPLAT = 0x14, F64X2_EXTRACT = 0x21, F64X2_REPLACE = 0x22;
const PROMOTE = 0x5f, F64X2_ADD = 0xf0, F64 = 0x7c, MEM1 = [0, 0] as const;
const HIGH_HALF = [8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15]; // lanes 2, 3 moved down
const LOW_PAIRS = [0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23]; // a0 b0 a1 b1
const HIGH_PAIRS = [8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31]; // a2 b2 a3 b3

const zero64 = (f: Func, v: string) => f.op(0x44, ...new Array(8).fill(0)).simd(F64X2_SPLAT).set(v);
const f64At = (f: Func, ptr: string) => f.get(ptr).f32Load().op(0xbb); // f64.promote(f32.load(ptr))
const addTo = (f: Func, acc: string) => f.get(acc).simd(F64X2_ADD).set(acc);

// src: groups of 8 rows of r f32 (byte pointers), dst: 8 f32 sums a group. Rows 2k and 2k+1 share
// accumulator k: lane 0 is row 2k, lane 1 row 2k+1.
export function rows8(): Func {
  const f = new Func(["src", "dst", "groups", "r", "r4"]);
  for (const n of ["g", "j", "stride", ...[0, 1, 2, 3, 4, 5, 6, 7].map((k) => `p${k}`)]) f.local(n, I32);
  for (const n of ["va", "vb", "t", "a0", "a1", "a2", "a3"]) f.local(n, V128);
  f.get("r").i32(4).op(0x6c).set("stride");
  f.i32(0).set("g");
  f.whileLt("g", "groups", () => {
    f.get("src").set("p0");
    for (let k = 1; k < 8; k++) f.get(`p${k - 1}`).get("stride").op(0x6a).set(`p${k}`);
    for (let k = 0; k < 4; k++) zero64(f, `a${k}`);
    f.i32(0).set("j");
    f.whileLt("j", "r4", () => {
      for (let k = 0; k < 4; k++) {
        const acc = `a${k}`;
        f.get(`p${2 * k}`).simd(LOAD, MEM1).set("va").get(`p${2 * k + 1}`).simd(LOAD, MEM1).set("vb");
        for (const pairs of [LOW_PAIRS, HIGH_PAIRS]) {
          f.get("va").get("vb").simd(SHUFFLE).op(...pairs).tee("t").simd(PROMOTE);
          addTo(f, acc);
          f.get("t").get("t").simd(SHUFFLE).op(...HIGH_HALF).simd(PROMOTE);
          addTo(f, acc);
        }
      }
      for (let k = 0; k < 8; k++) f.bump(`p${k}`, 16);
      f.bump("j", 4);
    });
    // The last r mod 4 values of each row, one at a time.
    f.whileLt("j", "r", () => {
      for (let k = 0; k < 4; k++) {
        f64At(f, `p${2 * k}`).simd(F64X2_SPLAT);
        f64At(f, `p${2 * k + 1}`).simd(F64X2_REPLACE).op(1);
        addTo(f, `a${k}`);
      }
      for (let k = 0; k < 8; k++) f.bump(`p${k}`, 4);
      f.bump("j", 1);
    });
    for (let k = 0; k < 8; k++) {
      f.get("dst").get(`a${k >> 1}`).simd(F64X2_EXTRACT).op(k & 1).op(0xb6).op(0x38, 2, 4 * k); // f32.store
    }
    f.bump("dst", 32).get("p7").set("src"); // p7 has reached the next group's first row
    f.bump("g", 1);
  });
  return f;
}

// src: rows of r f32, dst: one f32 sum a row, in the blocked order described above.
function blocked(): Func {
  const f = new Func(["src", "dst", "rows", "r", "r8"]);
  for (const n of ["row", "j"]) f.local(n, I32);
  for (const n of ["v", "w", "a0", "a1", "a2", "a3"]) f.local(n, V128);
  f.local("s", F64);
  const pairSum = (acc: string) => f.get(acc).simd(F64X2_EXTRACT).op(0).get(acc).simd(F64X2_EXTRACT).op(1).op(0xa0);
  f.i32(0).set("row");
  f.whileLt("row", "rows", () => {
    for (let k = 0; k < 4; k++) zero64(f, `a${k}`);
    f.i32(0).set("j");
    f.whileLt("j", "r8", () => {
      f.get("src").simd(LOAD, MEM1).tee("v").simd(PROMOTE);
      addTo(f, "a0");
      f.get("v").get("v").simd(SHUFFLE).op(...HIGH_HALF).simd(PROMOTE);
      addTo(f, "a1");
      f.get("src").simd(LOAD, [0, 16]).tee("w").simd(PROMOTE);
      addTo(f, "a2");
      f.get("w").get("w").simd(SHUFFLE).op(...HIGH_HALF).simd(PROMOTE);
      addTo(f, "a3");
      f.bump("src", 32).bump("j", 8);
    });
    pairSum("a0");
    pairSum("a1").op(0xa0);
    pairSum("a2");
    pairSum("a3").op(0xa0).op(0xa0).set("s");
    f.whileLt("j", "r", () => {
      f.get("s");
      f64At(f, "src").op(0xa0).set("s");
      f.bump("src", 4).bump("j", 1);
    });
    f.get("dst").get("s").op(0xb6).op(0x38, 2, 0);
    f.bump("dst", 4).bump("row", 1);
  });
  return f;
}

type Kernel = (src: number, dst: number, n: number, r: number, rr: number) => void;

/** The row-sum kernels over a private memory, compiled on first use. */
export class WasmRowSums {
  readonly #memory = kernelMemory();
  #k: { rows8: Kernel; blocked: Kernel } | null = null;

  /**
   * Sums each of the `O` rows of `R > 0` values of f32 `a` into `out`: bit for bit the reference's
   * float64 sums in order when `O >= 8`, in the blocked order above when fewer.
   */
  run(a: Float32Array, out: Float32Array, O: number, R: number): void {
    if (this.#k === null) {
      const bytes = moduleBytes([["rows8", rows8()], ["blocked", blocked()]], 1, false);
      const e = instantiate(bytes, this.#memory);
      this.#k = { rows8: e.rows8 as Kernel, blocked: e.blocked as Kernel };
      liveStats.shaderModules++;
    }
    const n = O * R, groups = Math.ceil(O / 8);
    // The last group may read up to seven rows past the input (their sums are dropped): room for them.
    const dst = 4 * (O >= 8 ? groups * 8 * R : n);
    reserve(this.#memory, dst + 4 * groups * 8);
    const mem = new Float32Array(this.#memory.buffer);
    mem.set(a.subarray(0, n));
    if (O >= 8) this.#k.rows8(0, dst, groups, R, R & ~3);
    else this.#k.blocked(0, dst, O, R, R & ~7);
    out.set(mem.subarray(dst / 4, dst / 4 + O));
  }
}
