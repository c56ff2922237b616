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
  readonly shared: string[];
  readonly toShared: string[];
  merge(other: string): string[];
  result(fromShared: boolean): string;
}

export function simpleAcc(k: KernelBuilder, op: "sum" | "max", dtype: DType): Accumulator {
  const T = VALUE_TYPE[dtype];
  const init = op === "sum" ? zero(dtype) : dtype === "f32" ? NEG_INF : "bitcast<i32>(0x80000000u)";
  const combine = (a: string, b: string) =>
    op === "sum" ? `${a} + ${b}` : dtype === "f32" ? `${k.helper("jf_max")}(${a}, ${b})` : `max(${a}, ${b})`;
  return {
    init: [`var acc: ${T} = ${init};`],
    update: (v) => [`acc = ${combine("acc", v)};`],
    shared: [`var<workgroup> sh: array<${T}, 64>;`],
    toShared: ["sh[lid.x] = acc;"],
    merge: (o) => [`sh[lid.x] = ${combine("sh[lid.x]", `sh[${o}]`)};`],
    result: (fromShared) => (fromShared ? "sh[0]" : "acc"),
  };
}

// Running (max, sum of exp(v - max)): one pass, never exponentiates anything above 0.
export const lseAcc: Accumulator = {
  init: [`var m: f32 = ${NEG_INF};`, "var s: f32 = 0.0;"],
  // NaN (caught by its bits: compilers may fold v != v away) makes the running max NaN, as on the CPU.
  update: (v) => [
    `if (jf_isnan(${v})) { m = ${v}; } else if (${v} > m) { s = s * exp(m - ${v}) + 1.0; m = ${v}; } else if (${v} > ${NEG_INF}) { s = s + select(exp(${v} - m), 1.0, ${v} == m); }`,
  ],
  shared: ["var<workgroup> shm: array<f32, 64>;", "var<workgroup> shs: array<f32, 64>;"],
  toShared: ["shm[lid.x] = m;", "shs[lid.x] = s;"],
  merge: (o) => [
    `let mm = max(shm[lid.x], shm[${o}]);`,
    // exp(a - mm) with equal terms is 1 even when both are +inf (where the subtraction gives NaN).
    `if (mm > ${NEG_INF}) { shs[lid.x] = shs[lid.x] * select(exp(shm[lid.x] - mm), 1.0, shm[lid.x] == mm) + shs[${o}] * select(exp(shm[${o}] - mm), 1.0, shm[${o}] == mm); }`,
    "shm[lid.x] = mm;",
  ],
  result: (fromShared) => (fromShared ? "shm[0] + log(shs[0])" : "m + log(s)"),
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
    nest(
      `for (var r = ${start}; r < ${bound}; r += ${step}) {`,
      k.block(() => k.lines.push(...acc.update(k.value(x, inputIndex(oIdx, k.unravel("r", red)))))),
    );
  if (!wide(nr, nOut)) {
    // One thread per output: enough parallelism already, no synchronization.
    k.lines.push(`if (tid >= ${k.u(nOut)}) { return; }`);
    const oIdx = k.unravel("tid", out.shape);
    k.lines.push(...acc.init, ...loop(oIdx, "0u", k.u(nr), "1u"));
    k.lines.push(`out[tid] = ${k.toStore(acc.result(false), out.dtype)};`);
    return { body: k.lines, threads: nOut, workgroupSize: 64 };
  }
  // One workgroup of 64 per output: strided partial results, then a tree in workgroup memory.
  k.workgroup.push(...acc.shared);
  k.lines.push(`let valid = wg < ${k.u(nOut)};`);
  const oIdx = k.unravel("wg", out.shape);
  k.lines.push(...acc.init, ...loop(oIdx, "lid.x", `select(0u, ${k.u(nr)}, valid)`, "64u"));
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
  const pass = (row: string, start: string, bound: string, step: string, body: (v: string, at: string) => string[]) =>
    nest(
      `for (var r = ${start}; r < ${bound}; r += ${step}) {`,
      k.block(() => k.lines.push(...body(k.value(x, [...k.unravel(row, lead), "r"]), `${row} * ${k.u(n)} + r`))),
    );
  const write = (m: string, s: string) => (v: string, at: string) => [`out[${at}] = exp(${v} - ${m}) / ${s};`];
  if (!wide(n, rows)) {
    k.lines.push(`if (tid >= ${k.u(rows)}) { return; }`, ...lseAcc.init);
    k.lines.push(...pass("tid", "0u", k.u(n), "1u", (v) => lseAcc.update(v)));
    k.lines.push(...pass("tid", "0u", k.u(n), "1u", write("m", "s")));
    return { body: k.lines, threads: rows, workgroupSize: 64 };
  }
  k.workgroup.push(...lseAcc.shared);
  k.lines.push(`let valid = wg < ${k.u(rows)};`, `let lim = select(0u, ${k.u(n)}, valid);`, ...lseAcc.init);
  k.lines.push(...pass("wg", "lid.x", "lim", "64u", (v) => lseAcc.update(v)));
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
