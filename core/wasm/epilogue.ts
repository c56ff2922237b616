// Matmul epilogues beyond an add: an elementwise chain whose only source of the product's shape is
// a product read by nothing else (a scale and mask of attention scores, a gradient times an
// activation's derivative, a sum of residuals) is computed as the kernel stores C's tiles, so the
// product is never written and read back. This file decides which chains qualify (the loop
// generator's read kinds that index C's rows and columns) and where their reads lie in the heap;
// epilogue_kernel.ts generates the kernel.

import type { Node } from "../graph.ts";
import type { CpuArray } from "../prim.ts";
import type { Expr, LoopRead } from "./fuse_loop.ts";
import type { WasmHeap } from "./heap.ts";
import { TILE_M, TILE_N } from "./matmul_kernel.ts";
import { type Epilogue, EPILOGUE_ARGS } from "./epilogue_kernel.ts";
import { bytesOf, exprKey, kindOf, lanesOf, type ReadKind } from "./simd_loop_gen.ts";
import { FEW_ROWS } from "./few_rows.ts";

const BITS = new Float32Array(1), BITS_I32 = new Int32Array(BITS.buffer);

// The read kinds an epilogue indexes by C's row and column (no tables of rows, no strided lanes).
const KINDS: ReadonlySet<ReadKind> = new Set(["same", "one", "row", "col", "tile"]);

/** An epilogue planned for one structure: its kernel's description and key, and its arguments from the reads' values. */
export interface EpiloguePlan {
  readonly key: string;
  readonly spec: Epilogue;
  /** The kernel's read arguments for the loop's sources' values, or null where one is not in the heap. */
  args(sources: readonly CpuArray[]): number[] | null;
}

/** A fused loop: its expression over its reads of its sources (fuse_loop.ts's fusedKernel). */
export interface FusedReads {
  readonly expr: Expr;
  readonly reads: readonly LoopRead[];
  readonly sources: readonly Node[];
}

/**
 * The epilogue computing `root` (an f32 elementwise chain, `fused`) from `product` as its matmul
 * stores C, or null where it does not qualify: no heap, C not whole tiles (rows a multiple of 4,
 * columns of 8), few rows (FEW_ROWS or less), the product read other than as it lies, another read not indexed by C's rows and
 * columns, or lanes that are not f32.
 */
export function planEpilogue(
  heap: WasmHeap | null,
  root: Node,
  fused: FusedReads,
  product: Node,
): EpiloguePlan | null {
  const { expr, reads, sources } = fused, shape = root.shape, R = shape.length;
  const M = shape[R - 2];
  // Few rows go to the few-row kernels (a decoded token's products), which have no epilogue.
  if (heap === null || R < 2 || shape[R - 1] % TILE_N !== 0 || M % TILE_M !== 0 || M <= FEW_ROWS) return null;
  if (root.dtype !== "f32" || lanesOf(expr, sources, reads) !== "f32") return null;
  const kinds = reads.map((rd) => kindOf(rd, shape)), bytes = reads.map((rd) => bytesOf(sources, rd));
  const isProduct = reads.map((rd) => sources[rd.src] === product);
  if (isProduct.some((p, r) => p && (kinds[r].kind !== "same" || reads[r].c !== 0))) return null;
  if (kinds.some((k, r) => !isProduct[r] && !KINDS.has(k.kind))) return null;
  const spans = kinds.flatMap((k) => (k.kind === "tile" ? [k.span] : []));
  if (isProduct.filter((p) => !p).length + spans.length > EPILOGUE_ARGS) return null;
  const ints = reads.map((rd) => sources[rd.src].dtype === "i32");
  const spec: Epilogue = { expr, product: isProduct, kinds, bytes, ints };
  const key = `${JSON.stringify(exprKey(expr))}|${kinds.map((k) => k.kind)}|${bytes}|${ints}|${isProduct}`;
  return {
    key,
    spec,
    args(values) {
      const out: number[] = [];
      for (let r = 0; r < reads.length; r++) {
        if (isProduct[r]) continue;
        const v = values[reads[r].src];
        if (kinds[r].kind === "one") {
          // The value's bits: f32 (rounded from a float64 one) or i32, or a bool's 0 or 1.
          BITS[0] = v[reads[r].c];
          out.push(bytes[r] === 1 ? v[reads[r].c] : v instanceof Int32Array ? v[reads[r].c] : BITS_I32[0]);
          continue;
        }
        const at = heap.offsetOf(v as ArrayBufferView);
        if (at < 0) return null;
        out.push(at + bytes[r] * reads[r].c);
      }
      return [...out, ...spans];
    },
  };
}
