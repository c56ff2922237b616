// WGSL lowering of every primitive: inline expressions, index views, or kernels of their own.

import type { Node } from "../graph.ts";
import type { Prim, PrimParams } from "../prim.ts";
import { sizeOf } from "../shape.ts";
import type { KernelBuilder } from "./emit.ts";
import { nest, VALUE_TYPE, zero } from "./wgsl.ts";
import { matmulKernel, variantFor } from "./matmul.ts";
import { workgroupMatmul } from "./matmul_wg.ts";
import { lseAcc, reduceKernel, simpleAcc, softmaxKernel } from "./reduce.ts";
import { deltaScanGradKernel, deltaScanKernel } from "./scan.ts";

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
    readonly expr: (k: KernelBuilder, args: string[], ins: readonly Node[], out: Node, p: PrimParams[P]) => string;
  }
  | {
    readonly kind: "view";
    readonly index: (
      k: KernelBuilder,
      idx: readonly string[],
      x: Node,
      out: Node,
      p: PrimParams[P],
    ) => { idx: string[]; valid?: string };
  }
  | {
    readonly kind: "expr";
    readonly emit: (k: KernelBuilder, idx: readonly string[], out: Node, p: PrimParams[P]) => string;
  }
  | { readonly kind: "kernel"; readonly build: (k: KernelBuilder, out: Node, p: PrimParams[P]) => KernelBody };

const map = <P extends Prim>(f: (args: string[], k: KernelBuilder, ins: readonly Node[], out: Node) => string) =>
  ({ kind: "map", expr: (k, args, ins, out) => f(args, k, ins, out) }) as WgslRule<P>;

const isF32 = (ins: readonly Node[]) => ins[0].dtype === "f32";

function castExpr(v: string, from: Node["dtype"], to: Node["dtype"]): string {
  if (from === to) return v;
  if (to === "bool") return from === "f32" ? `(${v} != 0.0)` : `(${v} != 0i)`;
  if (from === "bool") return to === "f32" ? `select(0.0, 1.0, ${v})` : `select(0i, 1i, ${v})`;
  return `${to}(${v})`;
}

/** The table type: every primitive's WGSL rule. */
export type WgslRules = { readonly [P in Prim]: WgslRule<P> };

/** Every primitive's WGSL rule; a primitive without one is a type error. */
export const WGSL_RULES: WgslRules = {
  neg: map(([a]) => `(-${a})`),
  exp: map(([a]) => `exp(${a})`),
  log: map(([a]) => `log(${a})`),
  sqrt: map(([a]) => `sqrt(${a})`),
  sin: map(([a], k) => (k.features.ownTrig ? `${k.helper("jf_sincos")}(${a}, 0i)` : `sin(${a})`)),
  cos: map(([a], k) => (k.features.ownTrig ? `${k.helper("jf_sincos")}(${a}, 1i)` : `cos(${a})`)),
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
  deltaScan: { kind: "kernel", build: deltaScanKernel },
  deltaScanGrad: { kind: "kernel", build: deltaScanGradKernel },

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
      const xs = out.src;
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
  matmul: {
    kind: "kernel",
    build(k, out) {
      const v = variantFor(k, out);
      return v.kind === "workgroup" ? workgroupMatmul(k, out, v) : matmulKernel(k, out, v);
    },
  },
  gather: {
    kind: "expr",
    emit(k, idx, out, { axis }) {
      const [x, indices] = out.src;
      const m = indices.ndim;
      const j = k.value(indices, idx.slice(axis, axis + m));
      const pos = k.let(`u32(clamp(${j}, 0i, ${k.constant(Math.max(x.shape[axis] - 1, 0), "i32")}))`, "g");
      return k.value(x, [...idx.slice(0, axis), pos, ...idx.slice(axis + m)]);
    },
  },
  scatterAdd: {
    kind: "kernel",
    build(k, out, { axis }) {
      const [g, indices] = out.src;
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
        // Clamped like gather's indices, so that this stays gather's vjp for any index.
        const at = `u32(clamp(${hit}, 0i, ${k.constant(Math.max(out.shape[axis] - 1, 0), "i32")}))`;
        k.lines.push(...nest(`if (${at} == ${oIdx[axis]}) {`, add));
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
      const x = out.src[0];
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
