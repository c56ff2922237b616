// The Wasm matmul's batched paths (matmul.ts): walking a batch's operand offsets, the arguments of
// a batch split by products across the threads, and batches of few-row products run in place.

import type { Layout } from "./matmul.ts";
import { TILE_M, TILE_N } from "./matmul_kernel.ts";
import type { FewRows } from "./few_rows.ts";
import type { WasmHeap } from "./heap.ts";
import type { BatchCall } from "./threads.ts";

// Calls `fn` with each of the Z products' operand offsets (element offsets into A and B), walking the
// batch of shape `batch` odometer style.
export function eachProduct(
  la: Layout,
  lb: Layout,
  batch: readonly number[],
  Z: number,
  fn: (ao: number, bo: number, z: number) => void,
): void {
  const nb = batch.length, idx = new Array<number>(nb).fill(0);
  let ao = la.c, bo = lb.c;
  for (let z = 0; z < Z; z++) {
    fn(ao, bo, z);
    for (let d = nb - 1; d >= 0; d--) {
      ao += la.strides[d], bo += lb.strides[d];
      if (++idx[d] < batch[d]) break;
      ao -= la.strides[d] * batch[d], bo -= lb.strides[d] * batch[d];
      idx[d] = 0;
    }
  }
}

/**
 * The arguments of a batch split by products (threads.ts's callBatch), each thread packing its
 * products' operands into space of its own (`space(bytes)`: scratch, for `count` threads and the
 * table of every product's operand addresses) and writing their C in place; null unless the
 * operands and C lie in the heap, the Wasm packers read the operands where they are (rows or their
 * transposes' at any stride, in whole strips and panels) and C fills whole tiles.
 */
export function batchCall(
  heap: WasmHeap,
  count: number,
  [a, b, out]: readonly [ArrayLike<number>, ArrayLike<number>, ArrayLike<number>],
  [Z, M, K, N]: readonly number[],
  [la, lb]: readonly [Layout, Layout],
  batch: readonly number[],
  space: (bytes: number) => Float32Array,
): BatchCall | null {
  if (M % TILE_M !== 0 || N % TILE_N !== 0) return null;
  if (!(a instanceof Float32Array && b instanceof Float32Array && out instanceof Float32Array)) return null;
  const ha = heap.offsetOf(a), hb = heap.offsetOf(b), hc = heap.offsetOf(out), nb = batch.length;
  if (ha < 0 || hb < 0 || hc < 0) return null;
  const [ars, acs] = [la.strides[nb], la.strides[nb + 1]], [brs, bcs] = [lb.strides[nb], lb.strides[nb + 1]];
  // Rows or their transposes' at any stride: the packers read them where they lie.
  const aFrom = acs === 1 ? 0 : ars === 1 ? 1 : -1, bFrom = bcs === 1 ? 0 : brs === 1 ? 1 : -1;
  if (aFrom === -1 || bFrom === -1) return null;
  const aWidth = aFrom === 0 ? ars : acs, bWidth = bFrom === 0 ? brs : bcs;
  // Each thread's packed A and B, then the table.
  const spaceEach = 4 * K * (M + N), mem = space(count * spaceEach + 8 * Z), at = mem.byteOffset;
  const table = new Int32Array(mem.buffer, at + count * spaceEach, 2 * Z);
  eachProduct(la, lb, batch, Z, (ao, bo, z) => (table[2 * z] = ha + 4 * ao, table[2 * z + 1] = hb + 4 * bo));
  return { table: table.byteOffset, z: Z, aFrom, bFrom, aWidth, bWidth, m: M, k: K, n: N, c: hc, space: at, spaceEach };
}

/**
 * A batch of few-row products (a state read out per token: 1 x K by K x N each) whose operands and
 * C lie in the heap, on the in-place kernels where they are, with no copy in or out (the general
 * path gathers A, copies B and writes C back for every product); false where that does not hold.
 */
export function fewInHeap(
  few: FewRows,
  heap: WasmHeap,
  [a, b, out]: readonly [ArrayLike<number>, ArrayLike<number>, ArrayLike<number>],
  [Z, M, K, N]: readonly number[],
  [la, lb]: readonly [Layout, Layout],
  batch: readonly number[],
  how: "rows" | "cols",
): boolean {
  if (!(a instanceof Float32Array && b instanceof Float32Array && out instanceof Float32Array)) return false;
  const ha = heap.offsetOf(a), hb = heap.offsetOf(b), hc = heap.offsetOf(out), nb = batch.length;
  const [ars, acs] = [la.strides[nb], la.strides[nb + 1]], [brs, bcs] = [lb.strides[nb], lb.strides[nb + 1]];
  // A's rows contiguous; B's transpose's rows one after another for the dot kernel, or B's rows contiguous.
  const ok = acs === 1 || K === 1, bOk = how === "cols" ? bcs === K || N === 1 : bcs === 1 || N === 1;
  if (ha < 0 || hb < 0 || hc < 0 || !ok || !bOk) return false;
  const mkn = [M, K, N] as const;
  if (how === "rows") out.fill(0, 0, Z * M * N); // the rows kernel adds into C
  eachProduct(la, lb, batch, Z, (ao, bo, z) => {
    few.runInPlace([ha + 4 * ao, 4 * ars], [hb + 4 * bo, 4 * brs, how], [hc + 4 * z * M * N, 4 * N], mkn);
  });
  return true;
}
