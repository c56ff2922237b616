// The batched matmul kernel: each thread computes a TM x 4 tile, with vec4 loads where layout allows.

import { sizeOf } from "../shape.ts";
import type { Tensor } from "../tensor.ts";
import type { KernelBuilder } from "./emit.ts";
import type { KernelBody } from "./rules.ts";

/** Rows of the output tile each thread computes (the FMAs-per-load lever). */
export const TILE_ROWS = 4;

/** A tensor read as `base[offset + sum(index[i] * strides[i])]` from a device buffer. */
export interface StridedView {
  readonly base: Tensor;
  readonly offset: number;
  readonly strides: readonly number[];
}

// Z batch, M rows, K contraction, N columns; a thread owns rows row0..row0+TM-1, columns col0..col0+3.
export function matmulKernel(k: KernelBuilder, out: Tensor): KernelBody {
  const [a, b] = out._src!.inputs;
  const A = k.src.strided(a), B = k.src.strided(b);
  if (A === null || B === null) throw new Error("webgpu: matmul operands must be strided views of buffers");
  const r = out.ndim, M = out.shape[r - 2], N = out.shape[r - 1], K = a.shape[r - 1];
  const batch = out.shape.slice(0, -2), TM = TILE_ROWS;
  const rowBlocks = Math.ceil(M / TM), colBlocks = Math.ceil(N / 4);
  const threads = sizeOf(batch) * rowBlocks * colBlocks;
  if (threads === 0) return { body: [], threads: 0, workgroupSize: 64 };
  const aligned = (v: StridedView, axis: number) =>
    v.strides[axis] === 1 && v.offset % 4 === 0 && v.strides.every((s, i) => i === axis || s % 4 === 0);
  const vecA = K % 4 === 0 && aligned(A, r - 1), vecB = N % 4 === 0 && aligned(B, r - 1);

  k.lines.push(`if (tid >= ${k.u(threads)}) { return; }`);
  const cb = k.let(`tid % ${k.u(colBlocks)}`, "cb"), rest = k.let(`tid / ${k.u(colBlocks)}`, "t");
  const rb = k.let(`${rest} % ${k.u(rowBlocks)}`, "rb"), z = k.let(`${rest} / ${k.u(rowBlocks)}`, "z");
  const zIdx = k.unravel(z, batch);
  const base = (v: StridedView) =>
    k.let(
      [k.u(v.offset), ...zIdx.map((i, j) => (batch[j] === 1 ? "" : `${i} * ${k.u(v.strides[j])}`))].filter((s) => s)
        .join(" + "),
      "base",
    );
  const aBase = base(A), bBase = base(B);
  const [sAm, sAk, sBk, sBn] = [A.strides[r - 2], A.strides[r - 1], B.strides[r - 2], B.strides[r - 1]].map((s) =>
    k.u(s)
  );
  const row0 = k.let(`${rb} * ${TM}u`, "row"), col0 = k.let(`${cb} * 4u`, "col");
  const lastRow = k.u(M - 1), lastCol = k.u(N - 1);
  const aRow = Array.from(
    { length: TM },
    (_, i) => k.let(`${aBase} + min(${row0} + ${i}u, ${lastRow}) * ${sAm}`, "ar"),
  );
  const bufA = vecA ? k.bind(A.base, "array<vec4<f32>>") : k.bind(A.base);
  const bufB = vecB ? k.bind(B.base, "array<vec4<f32>>") : k.bind(B.base);
  for (let i = 0; i < TM; i++) k.lines.push(`var acc${i} = vec4<f32>(0.0);`);

  const loadB = (kk: string) =>
    vecB
      ? `${bufB}[(${bBase} + ${kk} * ${sBk} + ${col0}) / 4u]`
      : `vec4<f32>(${
        [0, 1, 2, 3].map((c) => `${bufB}[${bBase} + ${kk} * ${sBk} + min(${col0} + ${c}u, ${lastCol}) * ${sBn}]`).join(
          ", ",
        )
      })`;
  const inner: string[] = [];
  if (vecA) {
    // Four steps of k per iteration: 4 vec4 loads of B and TM vec4 loads of A feed 4*TM vec4 FMAs.
    for (let q = 0; q < 4; q++) inner.push(`let bv${q} = ${loadB(`(kk + ${q}u)`)};`);
    for (let i = 0; i < TM; i++) {
      inner.push(`let av${i} = ${bufA}[(${aRow[i]} + kk) / 4u];`);
      inner.push(`acc${i} = acc${i} + av${i}.x * bv0 + av${i}.y * bv1 + av${i}.z * bv2 + av${i}.w * bv3;`);
    }
    k.lines.push(`for (var kk = 0u; kk < ${k.u(K)}; kk += 4u) {`, ...inner.map((l) => `  ${l}`), "}");
  } else {
    inner.push(`let bv = ${loadB("kk")};`);
    for (let i = 0; i < TM; i++) inner.push(`acc${i} = acc${i} + ${bufA}[${aRow[i]} + kk * ${sAk}] * bv;`);
    k.lines.push(`for (var kk = 0u; kk < ${k.u(K)}; kk++) {`, ...inner.map((l) => `  ${l}`), "}");
  }
  const outRow = k.let(`(${z} * ${k.u(M)} + ${row0}) * ${k.u(N)} + ${col0}`, "o");
  const n = k.u(N);
  for (let i = 0; i < TM; i++) {
    const stores = [0, 1, 2, 3].map((c) => {
      const store = `out[${outRow} + ${i}u * ${n} + ${c}u] = acc${i}[${c}];`;
      return N % 4 === 0 ? store : `if (${col0} + ${c}u < ${n}) { ${store} }`;
    });
    k.lines.push(`if (${row0} + ${i}u < ${k.u(M)}) {`, ...stores.map((s) => `  ${s}`), "}");
  }
  return { body: k.lines, threads, workgroupSize: 64 };
}
