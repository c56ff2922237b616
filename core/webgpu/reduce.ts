// Reduction kernels: a thread or a workgroup per output, with pluggable accumulators (sum, max,
// online logsumexp), and the two-pass softmax row kernel built on the same pieces.

import { type DType, sizeOf } from "../shape.ts";
import type { Node } from "../graph.ts";
import type { KernelBuilder } from "./emit.ts";
import { nest, VALUE_TYPE, zero } from "./wgsl.ts";
import type { KernelBody } from "./rules.ts";

// -Infinity at run time: a constant expression may not evaluate to it (see jf_f32bits).
const NEG_INF = "jf_f32bits(0xff800000u)";

// Reductions go wide (a workgroup per output) only when outputs are few and each reduces many values.
// Software adapters also cap the loop iterations of one invocation (llvmpipe: 65535 over all loops),
// so long reductions always go wide: 64 threads share them.
const wide = (nr: number, nOut: number) => nr >= 256 && (nOut < 4096 || nr > 8192);

// A reduction's running state: how it starts, absorbs a value, merges in workgroup memory, ends.
export interface Accumulator {
  readonly init: string[];
  update(v: string): string[];
  /** Blocked sums: lines before each block of BLOCK values, and after it (see `blockedLoop`). */
  readonly block?: { readonly open: string[]; readonly close: string[] };
  /** Lines after the last update, before the result is read or shared (folds partial sums in). */
  readonly finish: string[];
  readonly shared: string[];
  readonly toShared: string[];
  merge(other: string): string[];
  result(fromShared: boolean): string;
}

// Long f32 sums are blocked: values go into a sum of at most BLOCK (acc0), those into a sum of at
// most BLOCK blocks (acc1), those into the total (acc), so each partial sum rounds over at most
// ~32 terms of its own size and the error grows like (64 + n / 1024) ulps, not n (a sum of 3M values
// of 0.1 drifted by 1.4e-4 relative one value at a time, 6e-7 blocked). Plain adds, nothing a
// compiler may fold away (as it may Kahan's compensation). The block is an inner loop, so the
// values still stream through a tight add; llvmpipe counts its extra iterations (one per block
// and one failing test) against its 65535, which lower.ts's budgets leave room for.
const BLOCK = 32;

// Carries a finished block (acc0) into acc1, and every BLOCK blocks acc1 into acc.
const CARRY = [
  "acc1 = acc1 + acc0;",
  "nacc = nacc + 1u;",
  ...nest(`if ((nacc & ${BLOCK - 1}u) == 0u) {`, ["acc = acc + acc1;", "acc1 = 0.0;"]),
];
const LEVELS = ["var acc: f32 = 0.0;", "var acc1: f32 = 0.0;", "var nacc = 0u;"];

/**
 * `for (var r = start; r < bound; r += step)` around `body`, in blocks of BLOCK iterations with the
 * accumulator's block lines around each when it has them. `step` is a u32 literal ("1u", "64u").
 */
export function blockedLoop(acc: Accumulator, start: string, bound: string, step: string, body: string[]): string[] {
  if (acc.block === undefined) return nest(`for (var r = ${start}; r < ${bound}; r += ${step}) {`, body);
  const span = `${BLOCK * parseInt(step)}u`;
  return nest(`for (var rb = ${start}; rb < ${bound}; rb += ${span}) {`, [
    ...acc.block.open,
    `let re = min(${bound}, rb + ${span});`,
    ...nest(`for (var r = rb; r < re; r += ${step}) {`, body),
    ...acc.block.close,
  ]);
}

export function simpleAcc(k: KernelBuilder, op: "sum" | "max", dtype: DType): Accumulator {
  const T = VALUE_TYPE[dtype];
  const init = op === "sum" ? zero(dtype) : dtype === "f32" ? NEG_INF : "bitcast<i32>(0x80000000u)";
  const combine = (a: string, b: string) =>
    op === "sum" ? `${a} + ${b}` : dtype === "f32" ? `${k.helper("jf_max")}(${a}, ${b})` : `max(${a}, ${b})`;
  const shared = {
    shared: [`var<workgroup> sh: array<${T}, 64>;`],
    toShared: ["sh[lid.x] = acc;"],
    merge: (o: string) => [`sh[lid.x] = ${combine("sh[lid.x]", `sh[${o}]`)};`],
    result: (fromShared: boolean) => (fromShared ? "sh[0]" : "acc"),
  };
  if (op === "max" || dtype !== "f32") {
    // Maxima round nothing, and integer sums are exact (modulo 2^32, as on the CPU).
    return {
      init: [`var acc: ${T} = ${init};`],
      update: (v) => [`acc = ${combine("acc", v)};`],
      finish: [],
      ...shared,
    };
  }
  return {
    init: LEVELS,
    update: (v) => [`acc0 = acc0 + ${v};`],
    block: { open: ["var acc0: f32 = 0.0;"], close: CARRY },
    finish: ["acc = acc + acc1;"],
    ...shared,
  };
}

// Running (max, sum of exp(v - max)): one pass, never exponentiates anything above 0. The sum is
// blocked as in simpleAcc (acc0 into acc1 into acc); a new maximum rescales every partial.
export const lseAcc: Accumulator = {
  init: [`var m: f32 = ${NEG_INF};`, ...LEVELS],
  // NaN (caught by its bits: compilers may fold v != v away) makes the running max NaN, as on the CPU.
  update: (v) => [
    ...nest(`if (jf_isnan(${v})) { m = ${v}; } else if (${v} > m) {`, [
      `let f = exp(m - ${v});`,
      "acc = acc * f;",
      "acc1 = acc1 * f;",
      "acc0 = acc0 * f + 1.0;",
      `m = ${v};`,
    ]),
    ...nest(`else if (${v} > ${NEG_INF}) {`, [`acc0 = acc0 + select(exp(${v} - m), 1.0, ${v} == m);`]),
  ],
  block: { open: ["var acc0: f32 = 0.0;"], close: CARRY },
  finish: ["acc = acc + acc1;"],
  shared: ["var<workgroup> shm: array<f32, 64>;", "var<workgroup> shs: array<f32, 64>;"],
  toShared: ["shm[lid.x] = m;", "shs[lid.x] = acc;"],
  merge: (o) => [
    `let mm = max(shm[lid.x], shm[${o}]);`,
    // exp(a - mm) with equal terms is 1 even when both are +inf (where the subtraction gives NaN).
    `if (mm > ${NEG_INF}) { shs[lid.x] = shs[lid.x] * select(exp(shm[lid.x] - mm), 1.0, shm[lid.x] == mm) + shs[${o}] * select(exp(shm[${o}] - mm), 1.0, shm[${o}] == mm); }`,
    "shm[lid.x] = mm;",
  ],
  result: (fromShared) => (fromShared ? "shm[0] + log(shs[0])" : "m + log(acc)"),
};

export function reduceKernel(k: KernelBuilder, out: Node, axes: readonly number[], acc: Accumulator): KernelBody {
  const x = out.src[0];
  const red = axes.map((a) => x.shape[a]);
  const nr = sizeOf(red), nOut = sizeOf(out.shape);
  const inputIndex = (oIdx: string[], rIdx: string[]) => {
    let i = 0, j = 0;
    return x.shape.map((_, a) => (axes.includes(a) ? rIdx[j++] : oIdx[i++]));
  };
  const loop = (oIdx: string[], start: string, bound: string, step: string) =>
    blockedLoop(
      acc,
      start,
      bound,
      step,
      k.block(() => k.lines.push(...acc.update(k.value(x, inputIndex(oIdx, k.unravel("r", red)))))),
    );
  if (!wide(nr, nOut)) {
    // One thread per output: enough parallelism already, no synchronization.
    k.lines.push(`if (tid >= ${k.u(nOut)}) { return; }`);
    const oIdx = k.unravel("tid", out.shape);
    k.lines.push(...acc.init, ...loop(oIdx, "0u", k.u(nr), "1u"), ...acc.finish);
    k.lines.push(`out[tid] = ${k.toStore(acc.result(false), out.dtype)};`);
    return { body: k.lines, threads: nOut, workgroupSize: 64 };
  }
  // One workgroup of 64 per output: strided partial results, then a tree in workgroup memory.
  k.workgroup.push(...acc.shared);
  k.lines.push(`let valid = wg < ${k.u(nOut)};`);
  const oIdx = k.unravel("wg", out.shape);
  k.lines.push(...acc.init, ...loop(oIdx, "lid.x", `select(0u, ${k.u(nr)}, valid)`, "64u"), ...acc.finish);
  k.lines.push(
    ...acc.toShared,
    "workgroupBarrier();",
    ...nest("for (var w = 32u; w > 0u; w >>= 1u) {", [
      ...nest("if (lid.x < w) {", acc.merge("lid.x + w")),
      "workgroupBarrier();",
    ]),
    `if (valid && lid.x == 0u) { out[wg] = ${k.toStore(acc.result(true), out.dtype)}; }`,
  );
  return { body: k.lines, threads: nOut * 64, workgroupSize: 64 };
}

// Softmax rows: one pass for (max, sum), a second that writes exp(x - max) / sum.
export function softmaxKernel(k: KernelBuilder, out: Node): KernelBody {
  const x = out.src[0];
  const n = x.shape[x.ndim - 1], rows = sizeOf(out.shape.slice(0, -1)), lead = out.shape.slice(0, -1);
  // The first pass sums (blocked, as lseAcc wants); the second only writes.
  const sums = (v: string) => lseAcc.update(v);
  const pass = (row: string, start: string, bound: string, step: string, body: (v: string, at: string) => string[]) =>
    blockedLoop(
      body === sums ? lseAcc : { ...lseAcc, block: undefined },
      start,
      bound,
      step,
      k.block(() => k.lines.push(...body(k.value(x, [...k.unravel(row, lead), "r"]), `${row} * ${k.u(n)} + r`))),
    );
  const write = (m: string, s: string) => (v: string, at: string) => [`out[${at}] = exp(${v} - ${m}) / ${s};`];
  if (!wide(n, rows)) {
    k.lines.push(`if (tid >= ${k.u(rows)}) { return; }`, ...lseAcc.init);
    k.lines.push(...pass("tid", "0u", k.u(n), "1u", sums), ...lseAcc.finish);
    k.lines.push(...pass("tid", "0u", k.u(n), "1u", write("m", "acc")));
    return { body: k.lines, threads: rows, workgroupSize: 64 };
  }
  k.workgroup.push(...lseAcc.shared);
  k.lines.push(`let valid = wg < ${k.u(rows)};`, `let lim = select(0u, ${k.u(n)}, valid);`, ...lseAcc.init);
  k.lines.push(...pass("wg", "lid.x", "lim", "64u", sums), ...lseAcc.finish);
  k.lines.push(
    ...lseAcc.toShared,
    "workgroupBarrier();",
    ...nest("for (var w = 32u; w > 0u; w >>= 1u) {", [
      ...nest("if (lid.x < w) {", lseAcc.merge("lid.x + w")),
      "workgroupBarrier();",
    ]),
    "let rm = shm[0];",
    "let rs = shs[0];",
  );
  k.lines.push(...pass("wg", "lid.x", "lim", "64u", write("rm", "rs")));
  return { body: k.lines, threads: rows * 64, workgroupSize: 64 };
}
