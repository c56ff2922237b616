// The batched matmul kernel: each thread computes a TM x 4 output tile from 4x4 operand blocks,
// loading each operand as vec4 along whichever axis is contiguous (so transposes cost nothing).

import { sizeOf } from "../shape.ts";
import type { Node } from "../graph.ts";
import type { KernelBuilder } from "./emit.ts";
import { nest } from "./wgsl.ts";
import type { KernelBody } from "./rules.ts";

/**
 * The output tile each thread computes: rows, and column groups of 4. Bigger tiles mean more FMAs
 * per load (the lever on load-bound adapters) but fewer threads and longer shader compiles, so
 * large products take 16 rows, small ones 8 or 4; 8 columns where N allows (measured on llvmpipe:
 * 1024^3 went from 12 to 25 GFLOP/s; 16 columns gained 5% more for a much slower compile).
 */
export function tile(batch: number, M: number, N: number): [rows: number, colGroups: number] {
  const G = N >= 8 ? 2 : 1;
  const threads = (tm: number) => batch * Math.ceil(M / tm) * Math.ceil(N / (4 * G));
  return [M >= 16 && threads(16) >= 8192 ? 16 : M >= 8 ? 8 : 4, G];
}

/** A tensor read as `base[offset + sum(index[i] * strides[i])]` from a device buffer. */
export interface StridedView {
  readonly base: Node;
  readonly offset: number;
  readonly strides: readonly number[];
}

// How an operand's 4x4 block is loaded: vec4 along the contraction axis, vec4 along its other
// (row or column) axis, or element by element.
type Mode = "k" | "mn" | "scalar";

function alignedAlong(v: StridedView, axis: number): boolean {
  return v.strides[axis] === 1 && v.offset % 4 === 0 && v.strides.every((s, i) => i === axis || s % 4 === 0);
}

// Z batch, M rows, K contraction, N columns; a thread owns rows row0..row0+TM-1 and columns
// col0..col0+4G-1 (G groups of 4), accumulating one vec4 per row and column group.
export function matmulKernel(k: KernelBuilder, out: Node): KernelBody {
  const [a, b] = out.src;
  const A = k.src.strided(a), B = k.src.strided(b);
  if (A === null || B === null) throw new Error("webgpu: matmul operands must be strided views of buffers");
  const r = out.ndim, M = out.shape[r - 2], N = out.shape[r - 1], K = a.shape[r - 1];
  const batch = out.shape.slice(0, -2), Z = sizeOf(batch);
  const [TM, G] = tile(Z, M, N), TN = 4 * G;
  const rowBlocks = Math.ceil(M / TM), colBlocks = Math.ceil(N / TN);
  const threads = Z * rowBlocks * colBlocks;
  if (threads === 0) return { body: [], threads: 0, workgroupSize: 64 };
  const chunk = K % 4 === 0 ? 4 : 1;
  const modeA: Mode = chunk === 4 && alignedAlong(A, r - 1)
    ? "k"
    : M % 4 === 0 && alignedAlong(A, r - 2)
    ? "mn"
    : "scalar";
  const modeB: Mode = chunk === 4 && alignedAlong(B, r - 2)
    ? "k"
    : N % 4 === 0 && alignedAlong(B, r - 1)
    ? "mn"
    : "scalar";

  k.lines.push(`if (tid >= ${k.u(threads)}) { return; }`);
  const cb = k.let(`tid % ${k.u(colBlocks)}`, "cb"), rest = k.let(`tid / ${k.u(colBlocks)}`, "t");
  const rb = k.let(`${rest} % ${k.u(rowBlocks)}`, "rb"), z = k.let(`${rest} / ${k.u(rowBlocks)}`, "z");
  const zIdx = k.unravel(z, batch);
  const base = (v: StridedView) =>
    k.let(
      [k.u(v.offset), ...zIdx.flatMap((i, j) => (batch[j] === 1 ? [] : [`${i} * ${k.u(v.strides[j])}`]))].join(" + "),
      "base",
    );
  const aBase = base(A), bBase = base(B);
  const [sAm, sAk, sBk, sBn] = [A.strides[r - 2], A.strides[r - 1], B.strides[r - 2], B.strides[r - 1]].map((s) =>
    k.u(s)
  );
  const row0 = k.let(`${rb} * ${TM}u`, "row"), col0 = k.let(`${cb} * ${TN}u`, "col");
  const lastRow = k.u(M - 1), lastCol = k.u(N - 1);
  // Clamped positions keep every load in bounds; the stores skip rows and columns past the edge.
  const rowAt = (i: number) => k.let(`${aBase} + min(${row0} + ${i}u, ${lastRow}) * ${sAm}`, "ar");
  const colAt = (c: number) => k.let(`${bBase} + min(${col0} + ${c}u, ${lastCol}) * ${sBn}`, "bc");
  const aRows = modeA === "mn" ? [] : Array.from({ length: TM }, (_, i) => rowAt(i));
  const bCols = modeB === "mn" ? [] : Array.from({ length: TN }, (_, c) => colAt(c));
  const aVec = modeA === "scalar" ? "" : k.bind(A.base, "array<vec4<f32>>");
  const aSc = modeA === "scalar" ? k.bind(A.base) : "";
  const bVec = modeB === "scalar" ? "" : k.bind(B.base, "array<vec4<f32>>");
  const bSc = modeB === "scalar" ? k.bind(B.base) : "";
  for (let i = 0; i < TM; i++) for (let g = 0; g < G; g++) k.lines.push(`var acc${i}_${g} = vec4<f32>(0.0);`);

  const inner: string[] = [];
  // elemA(i, q): element (row0 + i, kk + q) of A. bk<q>_<g>: B's row kk + q over column group g.
  const elemA = (i: number, q: number): string => {
    if (modeA === "k") return `av${i}[${q}]`;
    if (modeA === "mn") return `am${q}_${i >> 2}[${i & 3}]`;
    return `${aSc}[${aRows[i]} + (kk + ${q}u) * ${sAk}]`;
  };
  if (modeA === "k") { for (let i = 0; i < TM; i++) inner.push(`let av${i} = ${aVec}[(${aRows[i]} + kk) / 4u];`); }
  if (modeA === "mn") {
    for (let q = 0; q < chunk; q++) {
      for (let h = 0; h < TM / 4; h++) {
        inner.push(`let am${q}_${h} = ${aVec}[(${aBase} + (kk + ${q}u) * ${sAk} + ${row0} + ${4 * h}u) / 4u];`);
      }
    }
  }
  if (modeB === "k") { for (let c = 0; c < TN; c++) inner.push(`let bt${c} = ${bVec}[(${bCols[c]} + kk) / 4u];`); }
  for (let q = 0; q < chunk; q++) {
    for (let g = 0; g < G; g++) {
      const cols = [0, 1, 2, 3].map((c) => 4 * g + c);
      const bq = modeB === "mn"
        ? `${bVec}[(${bBase} + (kk + ${q}u) * ${sBk} + ${col0} + ${4 * g}u) / 4u]`
        : modeB === "k"
        ? `vec4<f32>(${cols.map((c) => `bt${c}[${q}]`).join(", ")})`
        : `vec4<f32>(${cols.map((c) => `${bSc}[${bCols[c]} + (kk + ${q}u) * ${sBk}]`).join(", ")})`;
      inner.push(`let bk${q}_${g} = ${bq};`);
    }
  }
  for (let i = 0; i < TM; i++) {
    for (let g = 0; g < G; g++) {
      const terms = Array.from({ length: chunk }, (_, q) => `${elemA(i, q)} * bk${q}_${g}`);
      inner.push(`acc${i}_${g} = acc${i}_${g} + ${terms.join(" + ")};`);
    }
  }
  k.lines.push(`for (var kk = 0u; kk < ${k.u(K)}; kk += ${chunk}u) {`, ...inner.map((l) => `  ${l}`), "}");

  const n = k.u(N);
  const outRow = k.let(`(${z} * ${k.u(M)} + ${row0}) * ${n} + ${col0}`, "o");
  // With an epilogue, the elementwise consumer is evaluated here with this tile's sums as its input.
  const epilogue = k.outputs[0] !== out ? k.outputs[0] : null;
  for (let i = 0; i < TM; i++) {
    const stores = Array.from({ length: TN }, (_, c) => c).flatMap((c) => {
      const at = `${outRow} + ${i}u * ${n} + ${c}u`, acc = `acc${i}_${c >> 2}[${c & 3}]`;
      const store = epilogue === null ? [`out[${at}] = ${acc};`] : k.block(() => {
        const idx = [...zIdx, `(${row0} + ${i}u)`, `(${col0} + ${c}u)`];
        k.provide(out, idx, acc);
        k.lines.push(`out[${at}] = ${k.toStore(k.value(epilogue, idx), epilogue.dtype)};`);
      });
      return N % TN === 0 ? store : nest(`if (${col0} + ${c}u < ${n}) {`, store);
    });
    k.lines.push(...nest(`if (${row0} + ${i}u < ${k.u(M)}) {`, stores));
  }
  return { body: k.lines, threads, workgroupSize: 64 };
}
