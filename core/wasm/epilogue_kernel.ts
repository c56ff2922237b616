// The matmul epilogue's kernel (epilogue.ts plans which chains qualify): the tile kernel of
// matmul_kernel.ts with its stores evaluating the chain, compiled once per chain and kept with its
// bytes in the heap for the worker threads; and how a call stores C (Store), as the threads take it.

import { type Func, I32, instantiate, moduleBytes, V128 } from "./asm.ts";
import type { Expr } from "./fuse_loop.ts";
import { type Kernel, kernelFunc, type KernelKit, TILE_M, type TileStore } from "./matmul_kernel.ts";
import { emitExpr, type Kind, loadLanes, splatLanes } from "./simd_loop_gen.ts";
import { SCRATCH } from "./vmath.ts";
import type { WasmHeap } from "./heap.ts";
import { liveStats } from "../stats.ts";

// SIMD opcodes (after the 0xfd prefix).
const V128_STORE = 0x0b, I32X4_SPLAT = 0x11, I32X4_NE = 0x38;

/** The most arguments of an epilogue's reads. */
export const EPILOGUE_ARGS = 32;

/**
 * An elementwise expression computed as C's tiles are stored (the matmul's epilogue): each read
 * flagged `product` is the product's own value, the others are read from memory by their kinds
 * (simd_loop_gen.ts: "same", "one", "row", "col" or "tile", f32, i32 or bool) over C's rows and
 * columns. The expression yields f32 lanes.
 */
export interface Epilogue {
  readonly expr: Expr;
  readonly product: readonly boolean[];
  readonly kinds: readonly Kind[];
  readonly bytes: readonly number[];
  readonly ints: readonly boolean[];
}

// The arguments of an epilogue's reads after the row and column: each read's region (a byte
// offset; for "one", its value's bits) but the product's, then each tile's span in rows.
function epilogueParams(e: Epilogue): string[] {
  const regions = e.kinds.flatMap((_, r) => (e.product[r] ? [] : [`e${r}`]));
  return [...regions, ...e.kinds.flatMap((k, r) => (k.kind === "tile" ? [`t${r}`] : []))];
}

// An epilogue as the tile kernel's store (matmul_kernel.ts's TileStore).
function tileStore(epi: Epilogue): TileStore {
  return { params: ["row0", "col0", ...epilogueParams(epi)], setup: (f) => epilogueStore(f, epi) };
}

// Declares an epilogue's locals and sets its single values, and returns the code that stores a
// tile (the accumulators `accs`, row r's halves 2r and 2r + 1) at cp through the epilogue. A read's
// element (row i, column j) of C is at its region plus, in elements: i * N + j ("same"), j ("row"),
// i ("col"), (i mod span) * N + j ("tile").
function epilogueStore(f: Func, epi: Epilogue): (accs: readonly string[]) => void {
  for (const n of ["nC", "ri", "ci"]) f.local(n, I32);
  for (const l of SCRATCH) f.local(l, V128);
  f.get("cpanels").i32(8).op(0x6c).set("nC");
  // A single value comes as its bits: f32 or i32 splat, a bool compared with 0 into a mask.
  epi.kinds.forEach((k, r) => {
    if (epi.product[r] || k.kind !== "one") return;
    f.local(`w${r}`, V128).get(`e${r}`).simd(I32X4_SPLAT);
    if (epi.bytes[r] === 1) f.v128(new Array(16).fill(0)).simd(I32X4_NE);
    f.set(`w${r}`);
  });
  return (accs) => {
    // ci: the tile's first column in C; ri: the row being stored.
    f.get("col0").get("p").i32(8).op(0x6c).op(0x6a).set("ci");
    for (let r = 0; r < TILE_M; r++) {
      f.get("row0").get("strip").i32(4).op(0x6c).op(0x6a).i32(r).op(0x6a).set("ri");
      for (let j = 0; j < 2; j++) {
        const read = (q: number) => {
          if (epi.product[q]) return void f.get(accs[2 * r + j]);
          const k = epi.kinds[q].kind, b = epi.bytes[q];
          if (k === "one") return void f.get(`w${q}`);
          f.get(`e${q}`);
          if (k === "col") return void f.get("ri").i32(b).op(0x6c).op(0x6a), splatLanes(f, b);
          if (k === "same") f.get("ri").get("nC").op(0x6c);
          else if (k === "tile") f.get("ri").get(`t${q}`).op(0x70).get("nC").op(0x6c);
          else f.i32(0); // row
          f.get("ci").op(0x6a).i32(4 * j).op(0x6a).i32(b).op(0x6c).op(0x6a);
          loadLanes(f, b);
        };
        f.get("cp");
        emitExpr(f, epi.expr, read, epi.ints);
        f.simd(V128_STORE, [4, 16 * j]);
      }
      f.bump("cp", "cstride");
    }
  };
}

/** The bytes of a module exporting `matmul`: the tile kernel with `epi` as its epilogue. */
export function epilogueBytes(fma: boolean, shared: boolean, epi: Epilogue): Uint8Array<ArrayBuffer> {
  return moduleBytes([["matmul", kernelFunc(fma, tileStore(epi))]], 1, shared);
}

/**
 * An epilogue's kernel as the threads run it: its id (from 1), its function on the calling thread,
 * and its module's bytes in the shared memory, from which a worker compiles it the first time a
 * share of it reaches it (its event loop is busy serving, so no message could bring them).
 */
export interface EpilogueKernel {
  readonly id: number;
  readonly fn: Kernel;
  readonly bytes: readonly [number, number];
}

/** Epilogue kernels by chain, compiled the first time over one heap's memory. */
export class EpilogueKernels {
  readonly #kernels = new Map<string, EpilogueKernel>();
  readonly #fma: boolean;
  readonly #heap: WasmHeap;

  constructor(fma: boolean, heap: WasmHeap) {
    this.#fma = fma;
    this.#heap = heap;
  }

  /** The kernel of the chain `spec` (its structure `key`). */
  get(key: string, spec: Epilogue): EpilogueKernel {
    let k = this.#kernels.get(key);
    if (k === undefined) {
      const bytes = epilogueBytes(this.#fma, true, spec), at = this.#heap.keep(bytes);
      const fn = instantiate(bytes, this.#heap.memory).matmul as Kernel;
      liveStats.shaderModules++;
      this.#kernels.set(key, k = { id: this.#kernels.size + 1, fn, bytes: [at, bytes.length] });
    }
    return k;
  }

  /** Kernels compiled so far. */
  get size(): number {
    return this.#kernels.size;
  }
}

/**
 * How a product's C is stored: plus the addend `d` bytes from it (0: as it is), or through an
 * epilogue's kernel with its read arguments `args`; `row0` is C's first row among the rows its
 * epilogue's reads index.
 */
export interface Store {
  readonly d: number;
  readonly epilogue: EpilogueKernel | null;
  readonly args: readonly number[];
  readonly row0: number;
}

/** C stored as it is. */
export const PLAIN: Store = { d: 0, epilogue: null, args: [], row0: 0 };

/**
 * The kernel of `store` called on tiles: (packed A, packed B, C, strips, panels, C's panels a row,
 * the first tile's row and column within the product), with K from the call.
 */
export type Tiles = (
  a: number,
  b: number,
  c: number,
  strips: number,
  panels: number,
  cp: number,
  r: number,
  j: number,
) => void;

/** `store`'s kernel (the plain one of `kit`, or its epilogue's) over tiles of products of contraction K. */
export function storeTiles(kit: KernelKit, store: Store, k: number): Tiles {
  const fn = store.epilogue?.fn ?? kit.matmul, { d, row0, args } = store;
  return (a, b, c, strips, panels, cp, r, j) => fn(a, b, c, strips, panels, k, cp, d, row0 + r, j, ...args);
}
