// Few-row products (decode's M = 1 and the like) that read B where it lies: B is copied as it is, a
// cache-sized chunk at a time, and multiplied without packing, so no packed copy of a weight is made.

import { F32, Func, I32, instantiate, moduleBytes, V128 } from "./asm.ts";

// SIMD opcodes (after the 0xfd prefix).
const V128_LOAD = 0x00, LOAD32_SPLAT = 0x09, V128_STORE = 0x0b, F32X4_EXTRACT = 0x1f;
const F32X4_ADD = 0xe4, F32X4_MUL = 0xe6, F32X4_RELAXED_MADD = 0x105;
const F32_LOAD = 0x2a, F32_STORE = 0x38, F32_ADD = 0x92, F32_MUL = 0x94;

/** Products of at most this many rows of A take the in-place path. */
export const FEW_ROWS = 8;

/** Floats of B copied into Wasm memory at a time (a chunk stays in the core's 1 MiB L2 beside A and C). */
export const CHUNK = 2 ** 16;

// R rows of A (R <= 4) at a time; every pointer and stride is in bytes.
const rowsOf = (R: number, p: string) => Array.from({ length: R }, (_, r) => `${p}${r}`);

// `acc = x * y + acc` as a relaxed FMA, or as a multiply then an add.
function madd(f: Func, fma: boolean, x: () => void, y: () => void, acc: string): void {
  if (fma) {
    x(), y(), f.get(acc).simd(F32X4_RELAXED_MADD).set(acc);
  } else {
    f.get(acc), x(), y(), f.simd(F32X4_MUL).simd(F32X4_ADD).set(acc);
  }
}

// K contraction, n columns of C: c[r, j] = sum_k a[r, k] * bt[j, k] for B^T's rows bt[j] (K floats
// each, one after another): dot products SIMD over k, two accumulators an output, then a scalar
// tail. J columns at a time (4 for one row of A, 2 for two: independent accumulators hide the
// multiply-add's latency, and A's vectors are loaded once for them), then one at a time; each
// output's sum is formed the same way whatever J, so J changes no bits.
function dotFunc(R: number, fma: boolean): Func {
  const f = new Func(["a", "b", "c", "n", "k", "lda", "ldc"]);
  const J = R === 1 ? 4 : R === 2 ? 2 : 1, ps = rowsOf(R, "p");
  const acc = (r: number, c: number, h: number) => `u${r}_${c}_${h}`, s = (r: number, c: number) => `s${r}_${c}`;
  const pb = (c: number) => `pb${c}`, av = (r: number, h: number) => `a${r}_${h}`;
  for (const n of ["j", "jn", "kk", "k8", "k4", "rowb", "cp", "kb", ...ps]) f.local(n, I32);
  for (let c = 0; c < J; c++) f.local(pb(c), I32);
  for (let r = 0; r < R; r++) {
    for (let c = 0; c < J; c++) f.local(acc(r, c, 0), V128).local(acc(r, c, 1), V128).local(s(r, c), F32);
    f.local(av(r, 0), V128).local(av(r, 1), V128);
  }
  f.get("k").i32(-8).op(0x71).set("k8").get("k").i32(-4).op(0x71).set("k4");
  f.get("k").i32(4).op(0x6c).set("kb"); // bytes of one row of B^T
  f.get("n").i32(-J).op(0x71).set("jn");
  f.i32(0).set("j").get("b").set("rowb").get("c").set("cp");
  // Columns j .. j + g - 1 at a time while j < limit.
  const cols = (g: number, limit: string) => {
    const cs = Array.from({ length: g }, (_, c) => c);
    f.whileLt("j", limit, () => {
      for (let r = 0; r < R; r++) {
        for (const c of cs) for (const h of [0, 1]) f.op(0x43, 0, 0, 0, 0).simd(0x13).set(acc(r, c, h)); // zero
      }
      f.i32(0).set("kk");
      for (const c of cs) f.get("rowb").get("kb").i32(c).op(0x6c).op(0x6a).set(pb(c));
      ps.forEach((p, r) => f.get("a").get("lda").i32(r).op(0x6c).op(0x6a).set(p));
      f.whileLt("kk", "k8", () => {
        ps.forEach((p, r) =>
          f.get(p).simd(V128_LOAD, [0, 0]).set(av(r, 0)).get(p).simd(V128_LOAD, [0, 16]).set(av(r, 1))
        );
        for (const c of cs) {
          for (const h of [0, 1]) {
            for (let r = 0; r < R; r++) {
              madd(f, fma, () => f.get(av(r, h)), () => f.get(pb(c)).simd(V128_LOAD, [0, 16 * h]), acc(r, c, h));
            }
          }
          f.bump(pb(c), 32);
        }
        f.bump("kk", 8);
        for (const p of ps) f.bump(p, 32);
      });
      f.whileLt("kk", "k4", () => {
        ps.forEach((p, r) => f.get(p).simd(V128_LOAD, [0, 0]).set(av(r, 0)));
        for (const c of cs) {
          for (let r = 0; r < R; r++) {
            madd(f, fma, () => f.get(av(r, 0)), () => f.get(pb(c)).simd(V128_LOAD, [0, 0]), acc(r, c, 0));
          }
          f.bump(pb(c), 16);
        }
        f.bump("kk", 4);
        for (const p of ps) f.bump(p, 16);
      });
      for (let r = 0; r < R; r++) {
        for (const c of cs) {
          const u = acc(r, c, 0);
          f.get(u).get(acc(r, c, 1)).simd(F32X4_ADD).set(u);
          f.get(u).simd(F32X4_EXTRACT).op(0).get(u).simd(F32X4_EXTRACT).op(1).op(F32_ADD);
          f.get(u).simd(F32X4_EXTRACT).op(2).op(F32_ADD);
          f.get(u).simd(F32X4_EXTRACT).op(3).op(F32_ADD).set(s(r, c));
        }
      }
      f.whileLt("kk", "k", () => {
        for (let r = 0; r < R; r++) {
          for (const c of cs) {
            f.get(s(r, c)).get(ps[r]).op(F32_LOAD, 2, 0).get(pb(c)).op(F32_LOAD, 2, 0).op(F32_MUL, F32_ADD).set(
              s(r, c),
            );
          }
        }
        for (const c of cs) f.bump(pb(c), 4);
        f.bump("kk", 1);
        for (const p of ps) f.bump(p, 4);
      });
      for (let r = 0; r < R; r++) {
        for (const c of cs) f.get("cp").get("ldc").i32(r).op(0x6c).op(0x6a).get(s(r, c)).op(F32_STORE, 2, 4 * c);
      }
      f.get("rowb").get("kb").i32(g).op(0x6c).op(0x6a).set("rowb");
      f.bump("cp", 4 * g).bump("j", g);
    });
  };
  if (J > 1) cols(J, "jn");
  cols(1, "n");
  return f;
}

// K contraction (a chunk of it), n columns: c[r, j] += sum_k a[r, k] * b[k, j] for B's rows `ldb`
// bytes apart. Four rows of B at a time, streamed in order (reading B down its columns in strips
// defeated the hardware prefetcher: 20 us for 1 x 128 x 512): each vector of C's rows is loaded,
// given the four rows' terms in k order, and stored; columns past the last multiple of four, then
// rows of B past the last multiple of four, one at a time. Each output adds its terms in k order in
// one accumulator.
function axpyFunc(R: number, fma: boolean): Func {
  const f = new Func(["a", "b", "c", "n", "k", "lda", "ldb", "ldc"]);
  const rows = Array.from({ length: R }, (_, r) => r);
  const x = (r: number, i: number) => `x${r}_${i}`, acc = (r: number) => `u${r}`, pb = (i: number) => `pb${i}`;
  for (const n of ["j", "n4", "k4", "kk", "jb", ...[0, 1, 2, 3].map(pb), ...rows.map((r) => `q${r}`)]) {
    f.local(n, I32);
  }
  for (const r of rows) {
    f.local(acc(r), V128).local(`s${r}`, F32);
    for (let i = 0; i < 4; i++) f.local(x(r, i), V128);
  }
  f.local("bv", V128).local("bs", F32);
  f.get("n").i32(-4).op(0x71).set("n4").get("k").i32(-4).op(0x71).set("k4");
  // `g` rows of B from row kk: their terms added to every column of C.
  const block = (g: number) => {
    for (const r of rows) {
      for (let i = 0; i < g; i++) {
        f.get("a").get("lda").i32(r).op(0x6c).op(0x6a).get("kk").i32(4).op(0x6c).op(0x6a);
        f.simd(LOAD32_SPLAT, [2, 4 * i]).set(x(r, i));
      }
    }
    for (let i = 0; i < g; i++) f.get("b").get("kk").i32(i).op(0x6a).get("ldb").op(0x6c).op(0x6a).set(pb(i));
    rows.forEach((r) => f.get("c").get("ldc").i32(r).op(0x6c).op(0x6a).set(`q${r}`));
    f.i32(0).set("j").i32(0).set("jb");
    f.whileLt("j", "n4", () => {
      for (const r of rows) f.get(`q${r}`).get("jb").op(0x6a).simd(V128_LOAD, [0, 0]).set(acc(r));
      for (let i = 0; i < g; i++) {
        f.get(pb(i)).get("jb").op(0x6a).simd(V128_LOAD, [0, 0]).set("bv");
        for (const r of rows) madd(f, fma, () => f.get(x(r, i)), () => f.get("bv"), acc(r));
      }
      for (const r of rows) f.get(`q${r}`).get("jb").op(0x6a).get(acc(r)).simd(V128_STORE, [0, 0]);
      f.bump("j", 4).bump("jb", 16);
    });
    // The last n mod 4 columns, as scalars: c = c + a * b, a rounded product then a rounded sum.
    f.whileLt("j", "n", () => {
      for (const r of rows) f.get(`q${r}`).get("jb").op(0x6a).op(F32_LOAD, 2, 0).set(`s${r}`);
      for (let i = 0; i < g; i++) {
        f.get(pb(i)).get("jb").op(0x6a).op(F32_LOAD, 2, 0).set("bs");
        for (const r of rows) {
          f.get(`s${r}`).get(x(r, i)).simd(F32X4_EXTRACT).op(0).get("bs").op(F32_MUL, F32_ADD).set(`s${r}`);
        }
      }
      for (const r of rows) f.get(`q${r}`).get("jb").op(0x6a).get(`s${r}`).op(F32_STORE, 2, 0);
      f.bump("j", 1).bump("jb", 4);
    });
    f.bump("kk", g);
  };
  f.i32(0).set("kk");
  f.whileLt("kk", "k4", () => block(4));
  f.whileLt("kk", "k", () => block(1));
  return f;
}

/** The in-place kernels' module bytes: `dot1`..`dot4` and `axpy1`..`axpy4` (R rows of A each). */
export function fewRowsBytes(fma: boolean, shared: boolean): Uint8Array<ArrayBuffer> {
  const funcs: [string, Func][] = [];
  for (let R = 1; R <= 4; R++) funcs.push([`dot${R}`, dotFunc(R, fma)], [`axpy${R}`, axpyFunc(R, fma)]);
  return moduleBytes(funcs, 1, shared);
}

type Dot = (a: number, b: number, c: number, n: number, k: number, lda: number, ldc: number) => void;
type Axpy = (a: number, b: number, c: number, n: number, k: number, lda: number, ldb: number, ldc: number) => void;

/** Where B's elements are: (k, j) at `base + k * rs + j * cs`. */
export interface Strided {
  readonly base: number;
  readonly rs: number;
  readonly cs: number;
}

/** How B can be read in place: by rows (contiguous along N), by columns (contiguous along K), or not. */
export function inPlaceLayout(K: number, N: number, rs: number, cs: number): "rows" | "cols" | null {
  const rows = (N === 1 || cs === 1) && rs >= 0, cols = (K === 1 || rs === 1) && cs >= 0;
  if (cols && (N === 1 || !rows)) return "cols";
  return rows ? "rows" : null;
}

/** The in-place kernels over one Wasm memory; `reserve` gives floats of their scratch (its byteOffset its address). */
export class FewRows {
  readonly #dot: Dot[];
  readonly #axpy: Axpy[];
  readonly #reserve: (bytes: number) => Float32Array;

  constructor(bytes: Uint8Array<ArrayBuffer>, memory: WebAssembly.Memory, reserve: (bytes: number) => Float32Array) {
    const e = instantiate(bytes, memory);
    this.#dot = [1, 2, 3, 4].map((R) => e[`dot${R}`] as Dot);
    this.#axpy = [1, 2, 3, 4].map((R) => e[`axpy${R}`] as Axpy);
    this.#reserve = reserve;
  }

  /**
   * C = A @ B for M <= FEW_ROWS rows of A where all three lie in the kernels' memory: A's rows `lda`
   * bytes apart from `a`; B by rows (`ldb` bytes apart) or, for "cols", B's transpose as rows of K
   * one after another; C's rows `ldc` bytes apart, which the rows kernel adds into (zero them first)
   * and the cols kernel overwrites. Nothing is copied.
   */
  runInPlace(
    [a, lda]: readonly [number, number],
    [b, ldb, how]: readonly [number, number, "rows" | "cols"],
    [c, ldc]: readonly [number, number],
    [M, K, N]: readonly [number, number, number],
  ): void {
    for (let i = 0; i < M; i += 4) {
      const R = Math.min(4, M - i);
      if (how === "cols") this.#dot[R - 1](a + i * lda, b, c + i * ldc, N, K, lda, ldc);
      else this.#axpy[R - 1](a + i * lda, b, c + i * ldc, N, K, lda, ldb, ldc);
    }
  }

  /**
   * `out[o .. o + M N] = A @ B` for M <= FEW_ROWS rows of A (element (i, k) at `ao + i * ars + k * acs`)
   * and B read as `how` says (see inPlaceLayout). Wasm memory holds A, C and one chunk of B.
   */
  run(
    a: ArrayLike<number>,
    [ao, ars, acs]: readonly [number, number, number],
    b: Float32Array,
    lb: Strided,
    how: "rows" | "cols",
    out: Float32Array | Float64Array,
    o: number,
    [M, K, N]: readonly [number, number, number],
  ): void {
    // Floats: A [M, K] at 0, C [M, N] at c0, the chunk of B at b0.
    const c0 = Math.ceil((M * K) / 4) * 4, b0 = c0 + Math.ceil((M * N) / 4) * 4;
    const chunkRows = Math.max(1, Math.floor(CHUNK / (how === "cols" ? K : N)));
    const mem = this.#reserve(4 * (b0 + chunkRows * (how === "cols" ? K : N) + 8)), at = mem.byteOffset;
    gather(mem, a, ao, ars, acs, M, K);
    const groups: [number, number][] = []; // [first row, rows] of at most 4
    for (let i = 0; i < M; i += 4) groups.push([i, Math.min(4, M - i)]);
    if (how === "cols") {
      // B^T's rows n (K floats, `cs` apart) are contiguous: a chunk of them, then their dot products.
      for (let n0 = 0; n0 < N; n0 += chunkRows) {
        const n = Math.min(chunkRows, N - n0);
        copyRows(mem, b0, b, lb.base + n0 * lb.cs, n, K, lb.cs);
        for (const [i, R] of groups) {
          this.#dot[R - 1](at + 4 * i * K, at + 4 * b0, at + 4 * (c0 + i * N + n0), n, K, 4 * K, 4 * N);
        }
      }
    } else {
      // B's rows k (N floats, `rs` apart): a chunk of them, added into C row by row of A's columns.
      mem.fill(0, c0, c0 + M * N);
      for (let k0 = 0; k0 < K; k0 += chunkRows) {
        const k = Math.min(chunkRows, K - k0);
        copyRows(mem, b0, b, lb.base + k0 * lb.rs, k, N, lb.rs);
        for (const [i, R] of groups) {
          this.#axpy[R - 1](at + 4 * (i * K + k0), at + 4 * b0, at + 4 * (c0 + i * N), N, k, 4 * K, 4 * N, 4 * N);
        }
      }
    }
    out.set(mem.subarray(c0, c0 + M * N), o);
  }
}

// `rows` rows of `len` floats, `stride` apart in src from `base`, to mem[at ..] one after another.
function copyRows(
  mem: Float32Array,
  at: number,
  src: Float32Array,
  base: number,
  rows: number,
  len: number,
  stride: number,
) {
  if (stride === len) return void mem.set(src.subarray(base, base + rows * len), at);
  for (let r = 0; r < rows; r++) mem.set(src.subarray(base + r * stride, base + r * stride + len), at + r * len);
}

// A's M x K into mem[0 ..] row-major.
function gather(mem: Float32Array, a: ArrayLike<number>, ao: number, ars: number, acs: number, M: number, K: number) {
  for (let i = 0; i < M; i++) {
    const row = ao + i * ars;
    if (acs === 1 && a instanceof Float32Array) mem.set(a.subarray(row, row + K), i * K);
    else for (let k = 0; k < K; k++) mem[i * K + k] = a[row + k * acs];
  }
}
