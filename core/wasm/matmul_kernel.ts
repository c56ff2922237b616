// The Wasm SIMD matmul's generated code: the 4 x 8 register-tile kernel (relaxed-SIMD FMA or
// plain multiply-add) and the packers of operands into strips and panels, written as WebAssembly
// bytes at run time; and the host packers for operands the Wasm ones do not read (views).

import { F32, Func, I32, instantiate, moduleBytes, V128 } from "./asm.ts";

// SIMD opcodes (after the 0xfd prefix).
const V128_LOAD = 0x00, V128_STORE = 0x0b, I8X16_SHUFFLE = 0x0d, F32X4_SPLAT = 0x13;
const F32X4_ADD = 0xe4, F32X4_MUL = 0xe6, F32X4_RELAXED_MADD = 0x105;
const MEM16 = [4, 0] as const; // 16-byte aligned, offset 0

/** Rows and columns of the register tile: A is packed in 4-row strips, B in 8-column panels. */
export const TILE_M = 4, TILE_N = 8;

// The kernel's parameters: packed A and B, C (byte offsets), sizes, the addend's bytes from C (0:
// none); a tile store's own parameters follow them.
const PARAMS = ["pA", "pB", "pC", "strips", "panels", "kn", "cpanels", "toD"];

/**
 * Another way to store C's tiles (an epilogue: epilogue_kernel.ts): its parameters after the
 * kernel's, and `setup(f)`, which declares its locals, emits its start and returns the code that
 * stores one tile, the accumulators `accs` (row r's halves 2r and 2r + 1) at `cp`. The kernel's
 * locals it may read: `p` (the panel), `strip`, `cp` and `cstride` (bumped row by row by the store),
 * and its parameters by name.
 */
export interface TileStore {
  readonly params: readonly string[];
  setup(f: Func): (accs: readonly string[]) => void;
}

/**
 * The tile kernel. Z batch, M rows, K contraction, N columns; after packing, a strip holds 4 rows
 * of A interleaved per k ([K][4]) and a panel 8 columns of B per k ([K][8]); C is written [Mp, Np]
 * row-major, each tile as it is (or plus the addend), or as `tileStore` stores it.
 */
export function kernelFunc(fma: boolean, tileStore: TileStore | null = null): Func {
  const f = new Func(tileStore === null ? PARAMS : [...PARAMS, ...tileStore.params]);
  for (const n of ["p", "strip", "kk", "ap", "bp", "pa", "pb", "cp", "cstride", "astrip", "bpanel"]) f.local(n, I32);
  const accs = Array.from({ length: 8 }, (_, i) => `acc${i}`);
  for (const n of [...accs, "va", "b0", "b1", "bx"]) f.local(n, V128);
  f.local("zero", F32);
  // Strides in bytes: a strip is K*16, a panel K*32, a row of C cpanels*32 (a thread may compute
  // only some of a row's panels: b and c then point at its first one).
  f.get("kn").i32(16).op(0x6c).set("astrip");
  f.get("kn").i32(32).op(0x6c).set("bpanel");
  f.get("cpanels").i32(32).op(0x6c).set("cstride");
  const store = tileStore === null ? null : tileStore.setup(f);
  f.i32(0).set("p").get("pB").set("bp");
  f.loopWhile("p", "panels", () => {
    f.i32(0).set("strip").get("pA").set("ap");
    f.loopWhile("strip", "strips", () => {
      for (const acc of accs) f.op(0x43, 0, 0, 0, 0).simd(F32X4_SPLAT).set(acc); // f32.const 0; splat
      f.get("ap").set("pa").get("bp").set("pb").i32(0).set("kk");
      f.loopWhile("kk", "kn", () => {
        f.get("pa").simd(V128_LOAD, MEM16).set("va");
        f.get("pb").simd(V128_LOAD, MEM16).set("b0");
        f.get("pb").simd(V128_LOAD, [4, 16]).set("b1");
        for (let r = 0; r < TILE_M; r++) {
          // Broadcast lane r of the A vector to all four lanes.
          f.get("va").get("va").simd(I8X16_SHUFFLE);
          for (let l = 0; l < 4; l++) f.op(4 * r, 4 * r + 1, 4 * r + 2, 4 * r + 3);
          f.set("bx");
          for (const [j, b] of [[0, "b0"], [1, "b1"]] as const) {
            const acc = accs[2 * r + j];
            if (fma) f.get("bx").get(b).get(acc).simd(F32X4_RELAXED_MADD).set(acc);
            else f.get(acc).get("bx").get(b).simd(F32X4_MUL).simd(F32X4_ADD).set(acc);
          }
        }
        f.bump("pa", 16).bump("pb", 32).bump("kk", 1);
      });
      // cp = c + (4 s) * cstride + p * 32: the tile's top-left corner.
      f.get("strip").i32(4).op(0x6c).get("cstride").op(0x6c).get("pC").op(0x6a).get("p").i32(32).op(0x6c).op(0x6a);
      f.set("cp");
      if (store !== null) store(accs);
      else {
        // With an addend (toD: its bytes from C, the same layout), C = A B + D: the epilogue of a
        // residual or a gradient's sum, rounded as the separate add would be.
        f.get("toD").op(0x04, 0x40); // if (toD)
        for (let r = 0; r < TILE_M; r++) {
          for (const [j, off] of [[0, 0], [1, 16]] as const) {
            f.get("cp").get(accs[2 * r + j]).get("cp").get("toD").op(0x6a).simd(V128_LOAD, [4, off]).simd(F32X4_ADD);
            f.simd(V128_STORE, [4, off]);
          }
          f.bump("cp", "cstride");
        }
        f.op(0x05); // else
        for (let r = 0; r < TILE_M; r++) {
          f.get("cp").get(accs[2 * r]).simd(V128_STORE, MEM16);
          f.get("cp").get(accs[2 * r + 1]).simd(V128_STORE, [4, 16]);
          f.bump("cp", "cstride");
        }
        f.op(0x0b); // end
      }
      f.bump("ap", "astrip").bump("strip", 1);
    });
    f.bump("bp", "bpanel").bump("p", 1);
  });
  return f;
}

// Lanes of two f32x4 operands (0-3 the first, 4-7 the second) as an i8x16.shuffle's byte indices.
const lanes = (...ls: number[]) => ls.flatMap((l) => [4 * l, 4 * l + 1, 4 * l + 2, 4 * l + 3]);

// Packs `group` (4 or 8) rows at a time of a matrix already in memory at `src` (rows `width`
// floats apart, each K long; rows up to the last group's readable) into [groups][K][group]: each
// 4 x 4 block is transposed in registers. With 4 that is packA of A; with 8 it is packB of B's
// transpose (B's panels are 8 of its columns, which are rows there).
function packRowsFunc(group: 4 | 8): Func {
  const f = new Func(["src", "dst", "k", "groups", "width"]);
  const rows = Array.from({ length: group }, (_, r) => `r${r}`);
  for (const n of ["s", "kk", "k4", "d", "row", "first", ...rows]) f.local(n, I32);
  for (const n of ["a0", "a1", "a2", "a3", "t0", "t1", "t2", "t3"]) f.local(n, V128);
  f.get("k").i32(-4).op(0x71).set("k4"); // k & ~3
  f.get("width").i32(4).op(0x6c).set("row");
  f.i32(0).set("s").get("dst").set("d").get("src").set("first");
  f.whileLt("s", "groups", () => {
    f.get("first").set("r0");
    for (let r = 1; r < group; r++) f.get(rows[r - 1]).get("row").op(0x6a).set(rows[r]);
    f.i32(0).set("kk");
    f.whileLt("kk", "k4", () => {
      for (let g = 0; g < group / 4; g++) {
        for (let i = 0; i < 4; i++) f.get(rows[4 * g + i]).simd(V128_LOAD, [0, 0]).set(`a${i}`);
        const shuffle = (x: string, y: string, ls: number[], to: string) =>
          f.get(x).get(y).simd(I8X16_SHUFFLE).op(...lanes(...ls)).set(to);
        shuffle("a0", "a1", [0, 4, 1, 5], "t0");
        shuffle("a0", "a1", [2, 6, 3, 7], "t1");
        shuffle("a2", "a3", [0, 4, 1, 5], "t2");
        shuffle("a2", "a3", [2, 6, 3, 7], "t3");
        // Column c of the block (k = kk + c) goes to the group's slot of that k's row of the output.
        const out = (x: string, y: string, ls: number[], c: number) =>
          f.get("d").get(x).get(y).simd(I8X16_SHUFFLE).op(...lanes(...ls))
            .simd(V128_STORE, [0, c * 4 * group + 16 * g]);
        out("t0", "t2", [0, 1, 4, 5], 0);
        out("t0", "t2", [2, 3, 6, 7], 1);
        out("t1", "t3", [0, 1, 4, 5], 2);
        out("t1", "t3", [2, 3, 6, 7], 3);
      }
      f.bump("d", 16 * group).bump("kk", 4);
      for (const r of rows) f.bump(r, 16);
    });
    f.whileLt("kk", "k", () => {
      rows.forEach((r, i) => f.get("d").get(r).op(0x2a, 2, 0).op(0x38, 2, 4 * i)); // f32.load; f32.store
      f.bump("d", 4 * group).bump("kk", 1);
      for (const r of rows) f.bump(r, 4);
    });
    // The next group starts `group` rows on.
    f.get("first").get("row").i32(group).op(0x6c).op(0x6a).set("first");
    f.bump("s", 1);
  });
  return f;
}

// A strided copy into panels of `vectors` x 4 floats: the k-th row of panel p is that many
// consecutive elements of row k of the row-major source, whose rows are `width` floats apart.
// With one vector it packs A from its transpose in memory (K x M); with two, B as it is (K x N).
function packStridedFunc(vectors: 1 | 2): Func {
  const f = new Func(["src", "dst", "k", "panels", "width"]);
  for (const n of ["p", "kk", "d", "q", "stride"]) f.local(n, I32);
  f.get("width").i32(4).op(0x6c).set("stride");
  f.i32(0).set("p").get("dst").set("d");
  f.whileLt("p", "panels", () => {
    f.get("src").get("p").i32(16 * vectors).op(0x6c).op(0x6a).set("q").i32(0).set("kk");
    f.whileLt("kk", "k", () => {
      for (let v = 0; v < vectors; v++) {
        f.get("d").get("q").simd(V128_LOAD, [0, 16 * v]).simd(V128_STORE, [4, 16 * v]);
      }
      f.bump("d", 16 * vectors).bump("q", "stride").bump("kk", 1);
    });
    f.bump("p", 1);
  });
  return f;
}

/** The kernel module's bytes, with relaxed-SIMD FMA or plain multiply-add, over shared memory or not. */
export function kernelBytes(fma: boolean, shared: boolean): Uint8Array<ArrayBuffer> {
  return moduleBytes(
    [
      ["matmul", kernelFunc(fma)],
      ["pack_rows", packRowsFunc(4)],
      ["pack_rows8", packRowsFunc(8)],
      ["pack_cols", packStridedFunc(1)],
      ["pack_panels", packStridedFunc(2)],
    ],
    1,
    shared,
  );
}

/** Copies `M x K` of a matrix (element (i, k) at `base + i * rs + k * cs`) into 4-row strips [strips][K][4], zero-padded. */
export function packA(
  dst: Float32Array,
  src: ArrayLike<number>,
  base: number,
  M: number,
  K: number,
  rs = K,
  cs = 1,
): void {
  const strips = Math.ceil(M / TILE_M);
  dst.fill(0, 0, strips * K * TILE_M);
  for (let i = 0; i < M; i++) {
    const s = i >> 2, r = i & 3, row = base + i * rs, out = s * K * 4 + r;
    if (cs === 1) {
      for (let k = 0; k < K; k++) dst[out + 4 * k] = src[row + k];
    } else {
      for (let k = 0; k < K; k++) dst[out + 4 * k] = src[row + k * cs];
    }
  }
}

/** Copies `K x N` of a matrix (element (k, j) at `base + k * rs + j * cs`) into 8-column panels [panels][K][8], zero-padded. */
export function packB(
  dst: Float32Array,
  src: ArrayLike<number>,
  base: number,
  K: number,
  N: number,
  rs = N,
  cs = 1,
): void {
  const panels = Math.ceil(N / TILE_N);
  dst.fill(0, 0, panels * K * TILE_N);
  if (cs === 1) {
    for (let k = 0; k < K; k++) {
      const row = base + k * rs;
      for (let j = 0; j < N; j++) dst[(j >> 3) * K * 8 + k * 8 + (j & 7)] = src[row + j];
    }
    return;
  }
  // Columns are read along their own stride (contiguous for a transposed operand).
  for (let j = 0; j < N; j++) {
    const col = base + j * cs, out = (j >> 3) * K * 8 + (j & 7);
    for (let k = 0; k < K; k++) dst[out + k * 8] = src[col + k * rs];
  }
}

/**
 * The kernel's signature: byte offsets of packed A, packed B and C, then sizes, then the addend's
 * bytes from C (0: none); an epilogue's kernel (epilogue_kernel.ts) then takes the first tile's row and
 * column in C and its reads' arguments (each region but the product's, a single value's bits in
 * its place, then each tile's span).
 */
export type Kernel = (
  a: number,
  b: number,
  c: number,
  strips: number,
  panels: number,
  k: number,
  cpanels: number,
  d: number,
  ...epilogue: number[]
) => void;

/**
 * The packing functions of the module: raw operands in memory to strips and panels (see packA,
 * packB). Each takes the floats between its source's rows last: A's rows (`rows`), B's columns
 * (`rows8`, B's transpose's rows), A's columns (`cols`, A's transpose's rows) or B's rows (`panels`).
 */
export interface Packers {
  readonly rows: (src: number, dst: number, k: number, strips: number, width: number) => void;
  readonly rows8: (src: number, dst: number, k: number, panels: number, width: number) => void;
  readonly cols: (src: number, dst: number, k: number, strips: number, width: number) => void;
  readonly panels: (src: number, dst: number, k: number, panels: number, width: number) => void;
}

/** The kernel module instantiated over a memory: the kernel, its packers and the memory. */
export interface KernelKit {
  readonly matmul: Kernel;
  readonly pack: Packers;
  readonly memory: WebAssembly.Memory;
}

/** Instantiates the kernel module's bytes (kernelBytes) over `memory`. */
export function instantiateKernel(bytes: Uint8Array<ArrayBuffer>, memory: WebAssembly.Memory): KernelKit {
  const e = instantiate(bytes, memory);
  const pack = { rows: e.pack_rows, rows8: e.pack_rows8, cols: e.pack_cols, panels: e.pack_panels } as Packers;
  return { matmul: e.matmul as Kernel, pack, memory };
}
