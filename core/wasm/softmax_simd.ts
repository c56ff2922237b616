// softmax and logsumexp rows in Wasm SIMD. R rows of N values, each padded with -Infinity to a
// multiple of four lanes: the row's max (f32x4.max, NaN propagating as Math.max does), then
// e = exp(x - max) four lanes at a time (vmath's f32 polynomial) summed in float64 in a fixed
// blocked order (lanes 0-1 and 2-3 in two f64x2 sums, combined at the end), whatever the sizes or
// threads; softmax then divides each e by the sum in float64 and rounds once, as the reference does.

import { Func, I32, moduleBytes, V128 } from "./asm.ts";
import { kernelMemory, reserve } from "./memory.ts";
import { emitExp, SCRATCH } from "./vmath.ts";
import { liveStats } from "../stats.ts";

const LOAD = 0x00, STORE = 0x0b, SHUFFLE = 0x0d, F32X4_SPLAT = 0x13, F64X2_SPLAT = 0x14;
const F32X4_EXTRACT = 0x1f, F64X2_EXTRACT = 0x21, F32X4_SUB = 0xe5, F32X4_MAX = 0xe9;
const F64X2_ADD = 0xf0, F64X2_DIV = 0xf3, DEMOTE = 0x5e, PROMOTE = 0x5f;
const F32 = 0x7d, F64 = 0x7c, MEM16 = [4, 0] as const;
const HIGH_HALF = [8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15]; // lanes 2, 3 moved down
const JOIN_LOW = [0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23]; // lanes 0, 1 of a, then of b

// p: rows of n4 f32 (bytes); st: 16 bytes a row (f64 sum, f32 max) written out; norm: 1 for softmax.
function rowsFunc(): Func {
  const f = new Func(["p", "rows", "n4", "st", "norm"]);
  for (const n of ["row", "end", "q"]) f.local(n, I32);
  for (const n of [...SCRATCH, "mv", "e", "acc0", "acc1", "sv"]) f.local(n, V128);
  f.local("m", F32).local("sum", F64);
  const lanes4 = (v: string, op: number) => {
    f.get(v).simd(F32X4_EXTRACT).op(0).get(v).simd(F32X4_EXTRACT).op(1).op(op);
    f.get(v).simd(F32X4_EXTRACT).op(2).get(v).simd(F32X4_EXTRACT).op(3).op(op).op(op);
  };
  const zero64 = (v: string) => f.op(0x44, ...new Array(8).fill(0)).simd(F64X2_SPLAT).set(v);
  f.i32(0).set("row");
  f.whileLt("row", "rows", () => {
    f.get("p").get("n4").i32(4).op(0x6c).op(0x6a).set("end");
    f.get("p").simd(LOAD, MEM16).set("mv").get("p").set("q");
    f.whileLt("q", "end", () => {
      f.get("mv").get("q").simd(LOAD, MEM16).simd(F32X4_MAX).set("mv").bump("q", 16);
    });
    lanes4("mv", 0x97); // f32.max
    f.set("m").get("m").simd(F32X4_SPLAT).set("mv");
    zero64("acc0");
    zero64("acc1");
    f.get("p").set("q");
    f.whileLt("q", "end", () => {
      f.get("q").simd(LOAD, MEM16).get("mv").simd(F32X4_SUB);
      emitExp(f);
      f.set("e").get("q").get("e").simd(STORE, MEM16);
      f.get("acc0").get("e").simd(PROMOTE).simd(F64X2_ADD).set("acc0");
      f.get("acc1").get("e").get("e").simd(SHUFFLE).op(...HIGH_HALF).simd(PROMOTE).simd(F64X2_ADD).set("acc1");
      f.bump("q", 16);
    });
    // (lane 0 + lane 1) + (lane 2 + lane 3)
    f.get("acc0").simd(F64X2_EXTRACT).op(0).get("acc0").simd(F64X2_EXTRACT).op(1).op(0xa0);
    f.get("acc1").simd(F64X2_EXTRACT).op(0).get("acc1").simd(F64X2_EXTRACT).op(1).op(0xa0).op(0xa0).set("sum");
    f.get("st").get("sum").op(0x39, 3, 0); // f64.store
    f.get("st").get("m").op(0x38, 2, 8); // f32.store offset 8
    f.get("norm").op(0x04, 0x40); // if (norm)
    f.get("sum").simd(F64X2_SPLAT).set("sv").get("p").set("q");
    f.whileLt("q", "end", () => {
      f.get("q").simd(LOAD, MEM16).set("e");
      f.get("q");
      f.get("e").simd(PROMOTE).get("sv").simd(F64X2_DIV).simd(DEMOTE);
      f.get("e").get("e").simd(SHUFFLE).op(...HIGH_HALF).simd(PROMOTE).get("sv").simd(F64X2_DIV).simd(DEMOTE);
      f.simd(SHUFFLE).op(...JOIN_LOW).simd(STORE, MEM16);
      f.bump("q", 16);
    });
    f.op(0x0b);
    f.get("end").set("p").bump("st", 16).bump("row", 1);
  });
  return f;
}

type Rows = (p: number, rows: number, n4: number, st: number, norm: number) => void;

/** softmax and the parts of logsumexp over rows, on a private memory compiled on first use. */
export class WasmSoftmax {
  readonly #memory = kernelMemory();
  #run: Rows | null = null;

  // Copies rows in (padded), runs, and returns the memory's f32 view and the stats' byte offset.
  #rows(a: ArrayLike<number>, R: number, N: number, norm: boolean): { mem: Float32Array; st: number; n4: number } {
    if (this.#run === null) {
      const bytes = moduleBytes([["rows", rowsFunc()]], 1, false);
      this.#run = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { mem: this.#memory } }).exports
        .rows as Rows;
      liveStats.shaderModules++;
    }
    const n4 = Math.ceil(N / 4) * 4, st = 4 * R * n4;
    reserve(this.#memory, st + 16 * R);
    const mem = new Float32Array(this.#memory.buffer);
    if (n4 === N && a instanceof Float32Array) mem.set(a.subarray(0, R * N));
    else {
      for (let r = 0; r < R; r++) {
        for (let j = 0; j < N; j++) mem[r * n4 + j] = a[r * N + j];
        mem.fill(-Infinity, r * n4 + N, (r + 1) * n4);
      }
    }
    this.#run(0, R, n4, st, norm ? 1 : 0);
    return { mem, st, n4 };
  }

  /** softmax of `R` rows of `N > 0` values of `a` into `out`. */
  softmax(a: ArrayLike<number>, out: Float32Array, R: number, N: number): void {
    const { mem, n4 } = this.#rows(a, R, N, true);
    if (n4 === N) return void out.set(mem.subarray(0, R * N));
    for (let r = 0; r < R; r++) out.set(mem.subarray(r * n4, r * n4 + N), r * N);
  }

  /** log(sum(exp(x))) of `R` rows of `N > 0` values into `out`; infinite or NaN maxima pass through. */
  logsumexp(a: ArrayLike<number>, out: Float32Array, R: number, N: number): void {
    const { st } = this.#rows(a, R, N, false);
    const sums = new Float64Array(this.#memory.buffer, st, 2 * R), maxes = new Float32Array(this.#memory.buffer, st);
    for (let r = 0; r < R; r++) {
      const m = maxes[4 * r + 2];
      out[r] = m === -Infinity || m === Infinity || m !== m ? m : m + Math.log(sums[2 * r]);
    }
  }
}
