// softmax and logsumexp rows in Wasm SIMD. R rows of N values, each padded with -Infinity to a
// multiple of four lanes: the row's max (f32x4.max, NaN propagating as Math.max does), then
// e = exp(x - max) four lanes at a time (vmath's f32 polynomial) summed in float64 in a fixed
// blocked order (lanes 0-1 and 2-3 in two f64x2 sums, combined at the end), whatever the sizes or
// threads; softmax then divides each e by the sum in float64 and rounds once, as the reference does.
// The kernel is a rows loop of the SIMD loops' kind (simd_loop.ts), so large inputs are split by
// rows across the loop threads; over the heap, rows of a multiple of four values are read and
// written where they lie.

import { Func, I32, moduleBytes, V128 } from "./asm.ts";
import { emitExp, SCRATCH } from "./vmath.ts";
import { Scratch, type WasmHeap } from "./heap.ts";
import type { Compiled, SimdLoops } from "./simd_loop.ts";

const LOAD = 0x00, STORE = 0x0b, SHUFFLE = 0x0d, F32X4_SPLAT = 0x13, F64X2_SPLAT = 0x14;
const F32X4_EXTRACT = 0x1f, F64X2_EXTRACT = 0x21, F32X4_SUB = 0xe5, F32X4_MAX = 0xe9;
const F64X2_ADD = 0xf0, F64X2_DIV = 0xf3, DEMOTE = 0x5e, PROMOTE = 0x5f;
const F32 = 0x7d, F64 = 0x7c, MEM16 = [4, 0] as const;
const HIGH_HALF = [8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15]; // lanes 2, 3 moved down
const JOIN_LOW = [0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23]; // lanes 0, 1 of a, then of b

// (out, first row, end row, src, vectors a row, st, norm): rows [row0, rows) of `src` (rows of n4
// vectors); e = exp(x - max) written to the same rows of `out` (which may be src), divided by the
// row's sum where `norm` is 1 (softmax); 16 bytes a row of stats at st (f64 sum, f32 max).
function rowsFunc(): Func {
  const f = new Func(["out", "row0", "rows", "src", "n4", "st", "norm"]);
  for (const n of ["row", "end", "q", "w", "p", "o", "sp", "rb"]) f.local(n, I32);
  for (const n of [...SCRATCH, "mv", "e", "acc0", "acc1", "sv"]) f.local(n, V128);
  f.local("m", F32).local("sum", F64);
  const lanes4 = (v: string, op: number) => {
    f.get(v).simd(F32X4_EXTRACT).op(0).get(v).simd(F32X4_EXTRACT).op(1).op(op);
    f.get(v).simd(F32X4_EXTRACT).op(2).get(v).simd(F32X4_EXTRACT).op(3).op(op).op(op);
  };
  const zero64 = (v: string) => f.op(0x44, ...new Array(8).fill(0)).simd(F64X2_SPLAT).set(v);
  f.get("n4").i32(16).op(0x6c).set("rb");
  f.get("src").get("row0").get("rb").op(0x6c).op(0x6a).set("p");
  f.get("out").get("row0").get("rb").op(0x6c).op(0x6a).set("o");
  f.get("st").get("row0").i32(16).op(0x6c).op(0x6a).set("sp");
  f.get("row0").set("row");
  f.whileLt("row", "rows", () => {
    f.get("p").get("rb").op(0x6a).set("end");
    f.get("p").simd(LOAD, MEM16).set("mv").get("p").set("q");
    f.whileLt("q", "end", () => {
      f.get("mv").get("q").simd(LOAD, MEM16).simd(F32X4_MAX).set("mv").bump("q", 16);
    });
    lanes4("mv", 0x97); // f32.max
    f.set("m").get("m").simd(F32X4_SPLAT).set("mv");
    zero64("acc0");
    zero64("acc1");
    f.get("p").set("q").get("o").set("w");
    f.whileLt("q", "end", () => {
      f.get("q").simd(LOAD, MEM16).get("mv").simd(F32X4_SUB);
      emitExp(f);
      f.set("e").get("w").get("e").simd(STORE, MEM16);
      f.get("acc0").get("e").simd(PROMOTE).simd(F64X2_ADD).set("acc0");
      f.get("acc1").get("e").get("e").simd(SHUFFLE).op(...HIGH_HALF).simd(PROMOTE).simd(F64X2_ADD).set("acc1");
      f.bump("q", 16).bump("w", 16);
    });
    // (lane 0 + lane 1) + (lane 2 + lane 3)
    f.get("acc0").simd(F64X2_EXTRACT).op(0).get("acc0").simd(F64X2_EXTRACT).op(1).op(0xa0);
    f.get("acc1").simd(F64X2_EXTRACT).op(0).get("acc1").simd(F64X2_EXTRACT).op(1).op(0xa0).op(0xa0).set("sum");
    f.get("sp").get("sum").op(0x39, 3, 0); // f64.store
    f.get("sp").get("m").op(0x38, 2, 8); // f32.store offset 8
    f.get("norm").op(0x04, 0x40); // if (norm)
    f.get("sum").simd(F64X2_SPLAT).set("sv").get("o").set("w").get("o").get("rb").op(0x6a).set("q");
    f.whileLt("w", "q", () => {
      f.get("w").simd(LOAD, MEM16).set("e");
      f.get("w");
      f.get("e").simd(PROMOTE).get("sv").simd(F64X2_DIV).simd(DEMOTE);
      f.get("e").get("e").simd(SHUFFLE).op(...HIGH_HALF).simd(PROMOTE).get("sv").simd(F64X2_DIV).simd(DEMOTE);
      f.simd(SHUFFLE).op(...JOIN_LOW).simd(STORE, MEM16);
      f.bump("w", 16);
    });
    f.op(0x0b);
    f.get("end").set("p").get("o").get("rb").op(0x6a).set("o").bump("sp", 16).bump("row", 1);
  });
  return f;
}

/**
 * softmax and the parts of logsumexp over rows, on the SIMD loops' memory (the heap's, given one)
 * and threads; the kernel is compiled on first use.
 */
export class WasmSoftmax {
  readonly #loops: SimdLoops;
  readonly #heap: WasmHeap | null;
  readonly #scratch: Scratch;
  #loop: Compiled | null = null;

  constructor(loops: SimdLoops, heap: WasmHeap | null) {
    this.#loops = loops;
    this.#heap = heap;
    // Without a heap the loops' own memory, from its start, like theirs: one kernel runs at a time.
    this.#scratch = new Scratch(heap, () => loops.memory);
  }

  // Runs the rows of `a` (R x N) and returns where e (rows of n4 floats) and the stats are. Rows of a
  // multiple of four values are read from the heap where they lie, and written to `out` there.
  #rows(a: ArrayLike<number>, R: number, N: number, out: Float32Array | null) {
    const loop = this.#loop ??= this.#loops.compileRows(moduleBytes([["loop", rowsFunc()]], 1, this.#heap !== null));
    const n4 = Math.ceil(N / 4) * 4, heap = this.#heap, whole = n4 === N;
    const srcAt = whole && a instanceof Float32Array ? heap?.offsetOf(a) ?? -1 : -1;
    const outAt = whole && out !== null ? heap?.offsetOf(out) ?? -1 : -1;
    // Scratch: the padded rows where the input is not read in place, e's rows where they are not
    // written in place (logsumexp's, beside an input read in place), then the stats.
    const inBytes = srcAt < 0 ? 4 * R * n4 : 0, eBytes = outAt < 0 && srcAt >= 0 ? 4 * R * n4 : 0;
    const mem = this.#scratch.floats(inBytes + eBytes + 16 * R), base = mem.byteOffset;
    if (srcAt < 0) {
      if (whole && a instanceof Float32Array) mem.set(a.subarray(0, R * N));
      else {
        for (let r = 0; r < R; r++) {
          for (let j = 0; j < N; j++) mem[r * n4 + j] = a[r * N + j];
          mem.fill(-Infinity, r * n4 + N, (r + 1) * n4);
        }
      }
    }
    const src = srcAt >= 0 ? srcAt : base, e = outAt >= 0 ? outAt : srcAt >= 0 ? base : src;
    const st = base + inBytes + eBytes;
    this.#loops.runRows(loop, R, R * n4, [e, src, n4 / 4, st, out !== null ? 1 : 0]);
    return { e, st, n4, inPlace: outAt >= 0 };
  }

  /** softmax of `R` rows of `N > 0` values of `a` into `out`. */
  softmax(a: ArrayLike<number>, out: Float32Array, R: number, N: number): void {
    const { e, n4, inPlace } = this.#rows(a, R, N, out);
    if (inPlace) return;
    const buf = this.#scratch.memory.buffer;
    if (n4 === N) return void out.set(new Float32Array(buf, e, R * N));
    for (let r = 0; r < R; r++) out.set(new Float32Array(buf, e + 4 * r * n4, N), r * N);
  }

  /** log(sum(exp(x))) of `R` rows of `N > 0` values into `out`; infinite or NaN maxima pass through. */
  logsumexp(a: ArrayLike<number>, out: Float32Array, R: number, N: number): void {
    const { st } = this.#rows(a, R, N, null);
    const buf = this.#scratch.memory.buffer;
    const sums = new Float64Array(buf, st, 2 * R), maxes = new Float32Array(buf, st, 4 * R);
    for (let r = 0; r < R; r++) {
      const m = maxes[4 * r + 2];
      out[r] = m === -Infinity || m === Infinity || m !== m ? m : m + Math.log(sums[2 * r]);
    }
  }
}
