// WGSL lowering of every primitive: inline expressions, index views, or kernels of their own.

import type { Prim, PrimParams } from "../prim.ts";
import { type DType, sizeOf } from "../shape.ts";
import type { Tensor } from "../tensor.ts";
import { type KernelBuilder, nest, VALUE_TYPE, zero } from "./emit.ts";
import { matmulKernel } from "./matmul.ts";

/** A kernel body and its launch size. */
export interface KernelBody {
  readonly body: string[];
  readonly threads: number;
  readonly workgroupSize: number;
}

/**
 * How a primitive lowers: `map` combines its inputs' values at the same index; `view` reads its
 * input at another index (optionally masked); `expr` emits custom inline code; `kernel` is a root
 * that gets a kernel of its own (its inputs may still be inlined into it).
 */
export type WgslRule<P extends Prim> =
  | {
    readonly kind: "map";
    readonly expr: (k: KernelBuilder, args: string[], ins: readonly Tensor[], out: Tensor, p: PrimParams[P]) => string;
  }
  | {
    readonly kind: "view";
    readonly index: (
      k: KernelBuilder,
      idx: readonly string[],
      x: Tensor,
      out: Tensor,
      p: PrimParams[P],
    ) => { idx: string[]; valid?: string };
  }
  | {
    readonly kind: "expr";
    readonly emit: (k: KernelBuilder, idx: readonly string[], out: Tensor, p: PrimParams[P]) => string;
  }
  | { readonly kind: "kernel"; readonly build: (k: KernelBuilder, out: Tensor, p: PrimParams[P]) => KernelBody };

const map = <P extends Prim>(f: (args: string[], k: KernelBuilder, ins: readonly Tensor[], out: Tensor) => string) =>
  ({ kind: "map", expr: (k, args, ins, out) => f(args, k, ins, out) }) as WgslRule<P>;

const isF32 = (ins: readonly Tensor[]) => ins[0].dtype === "f32";

function castExpr(v: string, from: Tensor["dtype"], to: Tensor["dtype"]): string {
  if (from === to) return v;
  if (to === "bool") return from === "f32" ? `(${v} != 0.0)` : `(${v} != 0i)`;
  if (from === "bool") return to === "f32" ? `select(0.0, 1.0, ${v})` : `select(0i, 1i, ${v})`;
  return `${to}(${v})`;
}

const NEG_INF = "bitcast<f32>(0xff800000u)";

// Reductions go wide (a workgroup per output) only when outputs are few and each reduces many values.
const wide = (nr: number, nOut: number) => nr >= 256 && nOut < 4096;

// A reduction's running state: how it starts, absorbs a value, merges in workgroup memory, ends.
interface Accumulator {
  readonly init: string[];
  update(v: string): string[];
  readonly shared: string[];
  readonly toShared: string[];
  merge(other: string): string[];
  result(fromShared: boolean): string;
}

function simpleAcc(k: KernelBuilder, op: "sum" | "max", dtype: DType): Accumulator {
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
const lseAcc: Accumulator = {
  init: [`var m: f32 = ${NEG_INF};`, "var s: f32 = 0.0;"],
  update: (v) => [
    `if (${v} > m) { s = s * exp(m - ${v}) + 1.0; m = ${v}; } else if (${v} > ${NEG_INF}) { s = s + exp(${v} - m); }`,
  ],
  shared: ["var<workgroup> shm: array<f32, 64>;", "var<workgroup> shs: array<f32, 64>;"],
  toShared: ["shm[lid.x] = m;", "shs[lid.x] = s;"],
  merge: (o) => [
    `let mm = max(shm[lid.x], shm[${o}]);`,
    `if (mm > ${NEG_INF}) { shs[lid.x] = shs[lid.x] * exp(shm[lid.x] - mm) + shs[${o}] * exp(shm[${o}] - mm); }`,
    "shm[lid.x] = mm;",
  ],
  result: (fromShared) => (fromShared ? "shm[0] + log(shs[0])" : "m + log(s)"),
};

function reduceKernel(k: KernelBuilder, out: Tensor, axes: readonly number[], acc: Accumulator): KernelBody {
  const x = out._src!.inputs[0];
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
function softmaxKernel(k: KernelBuilder, out: Tensor): KernelBody {
  const x = out._src!.inputs[0];
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

/** Every primitive's WGSL rule; a primitive without one is a type error. */
export const WGSL_RULES: { readonly [P in Prim]: WgslRule<P> } = {
  neg: map(([a]) => `(-${a})`),
  exp: map(([a]) => `exp(${a})`),
  log: map(([a]) => `log(${a})`),
  sqrt: map(([a]) => `sqrt(${a})`),
  sin: map(([a]) => `sin(${a})`),
  cos: map(([a]) => `cos(${a})`),
  tanh: map(([a], k) => `${k.helper("jf_tanh")}(${a})`),
  add: map(([a, b]) => `(${a} + ${b})`),
  sub: map(([a, b]) => `(${a} - ${b})`),
  mul: map(([a, b]) => `(${a} * ${b})`),
  div: map(([a, b], k, ins) => (isF32(ins) ? `(${a} / ${b})` : `${k.helper("jf_idiv")}(${a}, ${b})`)),
  maximum: map(([a, b], k, ins) => (isF32(ins) ? `${k.helper("jf_max")}(${a}, ${b})` : `max(${a}, ${b})`)),
  pow: map(([a, b], k) => `${k.helper("jf_pow")}(${a}, ${b})`),
  lt: map(([a, b]) => `(${a} < ${b})`),
  eq: map(([a, b]) => `(${a} == ${b})`),
  where: map(([c, a, b]) => `select(${b}, ${a}, ${c})`),
  cast: map(([a], _k, ins, out) => castExpr(a, ins[0].dtype, out.dtype)),
  stopGradient: map(([a]) => a),

  sum: { kind: "kernel", build: (k, out, { axes }) => reduceKernel(k, out, axes, simpleAcc(k, "sum", out.dtype)) },
  max: { kind: "kernel", build: (k, out, { axes }) => reduceKernel(k, out, axes, simpleAcc(k, "max", out.dtype)) },
  logsumexp: { kind: "kernel", build: (k, out) => reduceKernel(k, out, [out.ndim], lseAcc) },
  softmax: { kind: "kernel", build: softmaxKernel },

  reshape: {
    kind: "view",
    index(k, idx, x, out) {
      if (x.shape.length === out.shape.length && x.shape.every((d, i) => d === out.shape[i])) return { idx: [...idx] };
      return { idx: k.unravel(k.let(k.linear(idx, out.shape), "l"), x.shape) };
    },
  },
  permute: {
    kind: "view",
    index(_k, idx, _x, _out, { perm }) {
      const inner = new Array<string>(perm.length);
      perm.forEach((p, i) => (inner[p] = idx[i]));
      return { idx: inner };
    },
  },
  broadcast: {
    kind: "view",
    index(_k, idx, x, out) {
      const lead = out.shape.length - x.shape.length;
      return { idx: x.shape.map((d, j) => (d === 1 ? "0u" : idx[lead + j])) };
    },
  },
  slice: {
    kind: "view",
    index: (k, idx, _x, _out, { starts }) => ({
      idx: idx.map((i, j) => (starts[j] === 0 ? i : `(${i} + ${k.u(starts[j])})`)),
    }),
  },
  pad: {
    kind: "view",
    index(k, idx, x, _out, { lo, hi }) {
      const checks: string[] = [];
      const inner = idx.map((i, j) => {
        if (lo[j] === 0 && hi[j] === 0) return i;
        const d = x.shape[j];
        if (d === 0) {
          checks.push("false"); // an empty axis: every position is padding (and the input buffer holds no data)
          return "0u";
        }
        // Below `lo` the u32 subtraction wraps to a huge value, which both checks reject.
        const shifted = lo[j] === 0 ? i : k.let(`${i} - ${k.u(lo[j])}`, "p");
        checks.push(`${shifted} < ${k.u(d)}`);
        return `min(${shifted}, ${k.u(d - 1)})`;
      });
      return { idx: inner, valid: checks.length ? `(${checks.join(" && ")})` : undefined };
    },
  },
  concat: {
    kind: "expr",
    emit(k, idx, out, { axis }) {
      const xs = out._src!.inputs;
      let at = 0;
      const parts = xs.map((x) => {
        const start = at;
        at += x.shape[axis];
        return { x, start };
      }).filter(({ x }) => x.shape[axis] > 0);
      let acc = "";
      for (let j = parts.length - 1; j >= 0; j--) {
        const { x, start } = parts[j];
        const local = start === 0 ? idx[axis] : k.let(`${idx[axis]} - ${k.u(start)}`, "p");
        const inner = idx.map((i, a) => (a === axis ? `min(${local}, ${k.u(x.shape[axis] - 1)})` : i));
        const v = k.value(x, inner);
        acc = acc === "" ? v : k.let(`select(${acc}, ${v}, ${idx[axis]} < ${k.u(start + x.shape[axis])})`);
      }
      return acc === "" ? zero(out.dtype) : acc;
    },
  },
  matmul: { kind: "kernel", build: matmulKernel },
  gather: {
    kind: "expr",
    emit(k, idx, out, { axis }) {
      const [x, indices] = out._src!.inputs;
      const m = indices.ndim;
      const j = k.value(indices, idx.slice(axis, axis + m));
      const pos = k.let(`u32(clamp(${j}, 0i, ${k.constant(Math.max(x.shape[axis] - 1, 0), "i32")}))`, "g");
      return k.value(x, [...idx.slice(0, axis), pos, ...idx.slice(axis + m)]);
    },
  },
  scatterAdd: {
    kind: "kernel",
    build(k, out, { axis }) {
      const [g, indices] = out._src!.inputs;
      const nOut = sizeOf(out.shape), T = VALUE_TYPE[out.dtype];
      k.lines.push(`if (tid >= ${k.u(nOut)}) { return; }`);
      const oIdx = k.unravel("tid", out.shape);
      k.lines.push(`var acc: ${T} = ${zero(out.dtype)};`);
      const body = k.block(() => {
        const jIdx = k.unravel("j", indices.shape);
        const hit = k.value(indices, jIdx);
        const add = k.block(() => {
          const v = k.value(g, [...oIdx.slice(0, axis), ...jIdx, ...oIdx.slice(axis + 1)]);
          k.lines.push(`acc = acc + ${v};`);
        });
        k.lines.push(...nest(`if (u32(${hit}) == ${oIdx[axis]}) {`, add));
      });
      // Each output sums its own matches in index order: deterministic, no atomics.
      k.lines.push(...nest(`for (var j = 0u; j < ${k.u(sizeOf(indices.shape))}; j++) {`, body));
      k.lines.push(`out[tid] = ${k.toStore("acc", out.dtype)};`);
      return { body: k.lines, threads: nOut, workgroupSize: 64 };
    },
  },
  iota: { kind: "expr", emit: (_k, idx, out, { axis }) => `${out.dtype}(${idx[axis]})` },
  cumsum: {
    kind: "kernel",
    build(k, out, { axis, reverse }) {
      const x = out._src!.inputs[0];
      const pre = x.shape.slice(0, axis), post = x.shape.slice(axis + 1), n = x.shape[axis];
      const cols = sizeOf(pre) * sizeOf(post);
      k.lines.push(`if (tid >= ${k.u(cols)}) { return; }`);
      const preIdx = k.unravel(sizeOf(post) === 1 ? "tid" : `(tid / ${k.u(sizeOf(post))})`, pre);
      const postIdx = k.unravel(sizeOf(post) === 1 ? "0u" : `(tid % ${k.u(sizeOf(post))})`, post);
      k.lines.push(`var s: ${VALUE_TYPE[out.dtype]} = ${zero(out.dtype)};`);
      const body = k.block(() => {
        const t = reverse ? k.let(`${k.u(n - 1)} - t`, "t") : "t";
        const idx = [...preIdx, t, ...postIdx];
        k.lines.push(`s = s + ${k.value(x, idx)};`, `out[${k.linear(idx, x.shape)}] = ${k.toStore("s", out.dtype)};`);
      });
      k.lines.push(...nest(`for (var t = 0u; t < ${k.u(n)}; t++) {`, body));
      return { body: k.lines, threads: cols, workgroupSize: 64 };
    },
  },
};
