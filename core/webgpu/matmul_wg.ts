// The workgroup-memory matmul kernel: a workgroup stages a block of A and of B in shared memory per
// step of the contraction, then each thread accumulates its register tile from the staged blocks.

import { sizeOf } from "../shape.ts";
import type { Node } from "../graph.ts";
import type { KernelBuilder } from "./emit.ts";
import { type Leaf, operandTrees, storeTile } from "./matmul.ts";
import type { KernelBody } from "./rules.ts";
import type { MatmulVariant } from "./variants.ts";

// How one staged element of an operand is computed: which axes of the operand are the tile's rows
// (or columns) and the contraction, and the operand's batch dimensions.
interface Staged {
  readonly tree: Node;
  readonly leaves: readonly Leaf[];
  readonly axisK: number;
  readonly axisMN: number;
  readonly batch: readonly number[];
}

// The operand at (its row or column `mn`, contraction index `kk`): each leaf loaded through its
// strided view, then the prologue (if any) evaluated on the loaded values. Emitted into k.lines.
function elementAt(k: KernelBuilder, s: Staged, zIdx: readonly string[], mn: string, kk: string): string {
  const idx = [...s.batch.map((d, i) => (d === 1 ? "0u" : zIdx[i])), "", ""];
  idx[s.axisMN] = mn;
  idx[s.axisK] = kk;
  s.leaves.forEach((leaf) => {
    const v = leaf.view, buf = k.bind(v.base);
    const terms = [
      k.u(v.offset),
      ...zIdx.flatMap((z, j) => (v.strides[j] === 0 ? [] : [`${z} * ${k.u(v.strides[j])}`])),
    ];
    for (const axis of [s.axisMN, s.axisK]) {
      if (v.strides[axis] !== 0) terms.push(`${idx[axis]} * ${k.u(v.strides[axis])}`);
    }
    k.provide(leaf.node, idx, k.let(`${buf}[${terms.join(" + ")}]`, "ld"));
  });
  return k.value(s.tree, idx);
}

// Scalar constants of a prologue, read once before the loop.
function readConstants(k: KernelBuilder, s: Staged): void {
  const visit = (t: Node): void => {
    if (k.src.isScalar(t)) k.value(t, []);
    else if (!s.leaves.some((l) => l.node === t)) t.src.forEach(visit);
  };
  visit(s.tree);
}

// Staging loads walk the block along the operand's contiguous axis, so neighbouring threads read
// neighbouring addresses.
function contiguousAlongK(s: Staged): boolean {
  return s.leaves.length > 0 && s.leaves[0].view.strides[s.axisK] === 1;
}

// Z batch, M rows, K contraction, N columns. A workgroup of WX x WY threads owns a BM x BN block of
// the output (BM = WY TM, BN = WX TN) and walks the contraction in steps of BK: its threads copy A's
// BM x BK block and B's BK x BN block into workgroup memory (zeros past K), wait, and each thread
// adds the block's products into its TM x TN accumulators, k ascending, as the register kernel
// does (so both give the same bits wherever the compiler contracts alike).
export function workgroupMatmul(k: KernelBuilder, out: Node, v: MatmulVariant & { kind: "workgroup" }): KernelBody {
  const [a, leavesA, b, leavesB] = operandTrees(k, out);
  const r = out.ndim, M = out.shape[r - 2], N = out.shape[r - 1], K = out.src[0].shape[r - 1];
  const batch = out.shape.slice(0, -2), Z = sizeOf(batch);
  const TM = v.rows, TN = 4 * v.groups, WX = v.wx, WY = v.wy, BK = v.depth, T = WX * WY;
  const BM = WY * TM, BN = WX * TN;
  const rowBlocks = Math.ceil(M / BM), colBlocks = Math.ceil(N / BN), groups = Z * rowBlocks * colBlocks;
  if (groups === 0) return { body: [], threads: 0, workgroupSize: T };
  const A: Staged = { tree: a, leaves: leavesA, axisK: r - 1, axisMN: r - 2, batch: out.src[0].shape.slice(0, -2) };
  const B: Staged = { tree: b, leaves: leavesB, axisK: r - 2, axisMN: r - 1, batch: out.src[1].shape.slice(0, -2) };
  k.workgroup.push(`var<workgroup> As: array<f32, ${BK * BM}>;`, `var<workgroup> Bs: array<f32, ${BK * BN}>;`);

  // wg is the same for the whole workgroup: the return keeps the barriers in uniform control flow.
  k.lines.push(`if (wg >= ${k.u(groups)}) { return; }`);
  const cb = k.let(`wg % ${k.u(colBlocks)}`, "cb"), rest = k.let(`wg / ${k.u(colBlocks)}`, "t");
  const rb = k.let(`${rest} % ${k.u(rowBlocks)}`, "rb"), z = k.let(`${rest} / ${k.u(rowBlocks)}`, "z");
  const zIdx = k.unravel(z, batch);
  const wrow = k.let(`${rb} * ${BM}u`, "wr"), wcol = k.let(`${cb} * ${BN}u`, "wc");
  const tx = k.let(`lid.x % ${WX}u`, "tx"), ty = k.let(`lid.x / ${WX}u`, "ty");
  const row0 = k.let(`${wrow} + ${ty} * ${TM}u`, "row"), col0 = k.let(`${wcol} + ${tx} * ${TN}u`, "col");
  readConstants(k, A);
  readConstants(k, B);
  const lastK = k.u(K - 1), nK = k.u(K);

  // One thread's share of a block: element e of the BMN x BK block, stored k-major.
  const stage = (s: Staged, name: string, BMN: number, first: string, last: string): string[] => {
    const lines: string[] = [];
    const alongK = contiguousAlongK(s);
    for (let e = 0; e < (BMN * BK) / T; e++) {
      lines.push(...k.block(() => {
        const at = k.let(`lid.x + ${e * T}u`, "e");
        const [mn, q] = alongK ? [`${at} / ${BK}u`, `${at} % ${BK}u`] : [`${at} % ${BMN}u`, `${at} / ${BMN}u`];
        const m = k.let(mn, "m"), kq = k.let(`k0 + ${q}`, "kq");
        const pos = k.let(`min(${first} + ${m}, ${last})`, "p");
        const value = elementAt(k, s, zIdx, pos, `min(${kq}, ${lastK})`);
        k.lines.push(`${name}[(${kq} - k0) * ${BMN}u + ${m}] = select(0.0, ${value}, ${kq} < ${nK});`);
      }));
    }
    return lines;
  };
  const compute: string[] = [];
  for (let q = 0; q < BK; q++) {
    for (let i = 0; i < TM; i++) compute.push(`let a${q}_${i} = As[${q * BM}u + ${ty} * ${TM}u + ${i}u];`);
    for (let g = 0; g < v.groups; g++) {
      const at = (c: number) => `Bs[${q * BN}u + ${tx} * ${TN}u + ${4 * g + c}u]`;
      compute.push(`let b${q}_${g} = vec4<f32>(${[0, 1, 2, 3].map(at).join(", ")});`);
    }
    for (let i = 0; i < TM; i++) {
      for (let g = 0; g < v.groups; g++) compute.push(`acc${i}_${g} = acc${i}_${g} + a${q}_${i} * b${q}_${g};`);
    }
  }
  for (let i = 0; i < TM; i++) for (let g = 0; g < v.groups; g++) k.lines.push(`var acc${i}_${g} = vec4<f32>(0.0);`);
  const body = [
    ...stage(A, "As", BM, wrow, k.u(M - 1)),
    ...stage(B, "Bs", BN, wcol, k.u(N - 1)),
    "workgroupBarrier();",
    ...compute,
    "workgroupBarrier();",
  ];
  k.lines.push(`for (var k0 = 0u; k0 < ${nK}; k0 += ${BK}u) {`, ...body.map((l) => `  ${l}`), "}");
  storeTile(k, out, { z, zIdx, row0, col0, rows: TM, cols: TN, whole: N % BN === 0 });
  return { body: k.lines, threads: groups * T, workgroupSize: T };
}
