// The generated JavaScript of a fused elementwise loop: elementwise primitives as expressions
// (f32 results rounded as the reference stores them), view chains as affine reads of materialized
// memory, and the loops compiled once per code text (which depends on the graph's structure only).

import type { Node } from "../graph.ts";
import type { CpuArray, Prim } from "../prim.ts";
import { stridesOf } from "../shape.ts";
import { liveStats } from "../stats.ts";
import { jfExp, jfTanh } from "./approx.ts";

export const MAPS = new Set<string>([
  "neg",
  "exp",
  "log",
  "sqrt",
  "sin",
  "cos",
  "tanh",
  "add",
  "sub",
  "mul",
  "div",
  "maximum",
  "pow",
  "lt",
  "eq",
  "where",
  "cast",
  "stopGradient",
]);
export const VIEWS = new Set<string>(["broadcast", "permute", "slice", "reshape"]);
export const isFusible = (n: Node) => MAPS.has(n.op) || VIEWS.has(n.op);

/**
 * A reshape that only splits axes (each axis of `from` the product of consecutive axes of `to`; size-1
 * axes anywhere) is an index map: axis i of `from` is at sum of index j * scale[j] over the axes j of
 * `to` with axis[j] = i (-1: a size-1 axis of its own). Null for a reshape that merges axes, a
 * reindexing (or has a size-0 axis).
 */
export function splitReshape(
  from: readonly number[],
  to: readonly number[],
): { readonly axis: readonly number[]; readonly scale: readonly number[] } | null {
  const axis = new Array<number>(to.length).fill(-1), scale = new Array<number>(to.length).fill(0);
  let j = 0;
  for (let i = 0; i < from.length; i++) {
    if (from[i] === 1) continue;
    const group: number[] = [];
    for (let prod = 1; prod < from[i]; j++) {
      if (j >= to.length) return null;
      if (to[j] !== 1) group.push(j), prod *= to[j];
    }
    if (group.reduce((p, g) => p * to[g], 1) !== from[i]) return null;
    for (let g = group.length - 1, s = 1; g >= 0; s *= to[group[g]], g--) [axis[group[g]], scale[group[g]]] = [i, s];
  }
  for (; j < to.length; j++) if (to[j] !== 1) return null;
  return { axis, scale };
}

/** True when a reshape is an index map (splitReshape), not a reindexing. */
export const viewReshape = (from: readonly number[], to: readonly number[]) => splitReshape(from, to) !== null;

/** The forms of `from`'s axes from those of the reshape's axes `forms` (sp: splitReshape's), R output axes. */
export function splitForms(
  sp: NonNullable<ReturnType<typeof splitReshape>>,
  from: readonly number[],
  forms: readonly Affine[],
  R: number,
): Affine[] {
  return from.map((_, i) => {
    let c = 0;
    const coef = new Array<number>(R).fill(0);
    sp.axis.forEach((a, j) => {
      if (a !== i) return;
      c += forms[j].c * sp.scale[j];
      forms[j].coef.forEach((v, o) => (coef[o] += v * sp.scale[j]));
    });
    return { c, coef };
  });
}

// An index of some node as an affine function of the output's multi-index: const + sum coef[k] i_k.
export interface Affine {
  readonly c: number;
  readonly coef: readonly number[];
}

/** The elementwise expression (JavaScript) of one value, f32 results rounded as the reference stores them. */
function mapExpr(n: Node, a: readonly string[]): string {
  const f32 = n.dtype === "f32", i32 = n.src[0]?.dtype === "i32";
  const r = (e: string) => (f32 ? `Math.fround(${e})` : e);
  const math = (fn: string) => r(`Math.${fn}(${a[0]})`);
  switch (n.op as Prim) {
    case "neg":
      return i32 ? `(-${a[0]} | 0)` : `(-${a[0]})`;
    case "exp":
      return r(`jfExp(${a[0]})`);
    case "log":
      return math("log");
    case "sqrt":
      return math("sqrt");
    case "sin":
      return math("sin");
    case "cos":
      return math("cos");
    case "tanh":
      return r(`jfTanh(${a[0]})`);
    case "add":
      return i32 ? `((${a[0]} + ${a[1]}) | 0)` : r(`${a[0]} + ${a[1]}`);
    case "sub":
      return i32 ? `((${a[0]} - ${a[1]}) | 0)` : r(`${a[0]} - ${a[1]}`);
    case "mul":
      return i32 ? `Math.imul(${a[0]}, ${a[1]})` : r(`${a[0]} * ${a[1]}`);
    case "div":
      return i32 ? `jfIdiv(${a[0]}, ${a[1]})` : r(`${a[0]} / ${a[1]}`);
    case "maximum":
      return r(`jfMax(${a[0]}, ${a[1]})`);
    case "pow":
      return r(`Math.pow(${a[0]}, ${a[1]})`);
    case "lt":
      return `(${a[0]} < ${a[1]} ? 1 : 0)`;
    case "eq":
      return `(${a[0]} === ${a[1]} ? 1 : 0)`;
    case "where":
      return `(${a[0]} ? ${a[1]} : ${a[2]})`;
    case "stopGradient":
      return a[0];
    case "cast": {
      const from = n.src[0].dtype;
      if (n.dtype === "bool") return `(${a[0]} !== 0 ? 1 : 0)`;
      if (n.dtype === "i32" && from === "f32") return `(${a[0]} | 0)`;
      return f32 ? r(a[0]) : a[0];
    }
    default:
      throw new Error(`wasm: ${n.op} is not elementwise`);
  }
}

const HELPERS = "const jfMax = (x, y) => (x !== x || y !== y ? NaN : Math.max(x, y));\n" +
  "const jfIdiv = (x, y) => (y === 0 ? 0 : Math.trunc(x / y) | 0);\n";

export type Loop = (out: CpuArray, dims: readonly number[], ...srcs: CpuArray[]) => void;

// Compiled loops by their code, which depends on the graph's structure only (not on sizes).
const CACHE_LIMIT = 512;
const compiled = new Map<string, Loop>();

/** The expression a fused loop computes: reads of materialized memory, and elementwise nodes over them. */
export type Expr = { readonly read: number } | { readonly node: Node; readonly args: readonly Expr[] };

/** One read of a fused loop: source `src`'s memory at `c + sum index * strides` over the output's index. */
export interface LoopRead {
  readonly src: number;
  readonly c: number;
  readonly strides: readonly number[];
}

function jsOf(e: Expr): string {
  return "read" in e ? `v${e.read}` : mapExpr(e.node, e.args.map(jsOf));
}

/** A fused loop: its sources, the generated JavaScript and its size arguments, and what it computes. */
interface FusedLoop {
  readonly sources: Node[];
  readonly fn: Loop;
  readonly args: number[];
  readonly expr: Expr;
  readonly reads: readonly LoopRead[];
}

/** Generates (or reuses) the loop computing `root` from its materialized sources. */
export function fusedKernel(root: Node, isSource: (n: Node) => boolean): FusedLoop {
  const R = root.ndim, sources: Node[] = [], reads: { src: number; c: number; strides: number[] }[] = [];
  const readKey = new Map<string, number>();
  // A read of materialized `n`'s memory, laid out as the contiguous `shape` (n's own, or a reshape's).
  const read = (n: Node, shape: readonly number[], forms: readonly Affine[]): Expr => {
    let k = sources.indexOf(n);
    if (k < 0) k = sources.push(n) - 1;
    const st = stridesOf(shape), strides = new Array<number>(R).fill(0);
    let c = 0;
    forms.forEach((f, j) => {
      c += st[j] * f.c;
      f.coef.forEach((v, o) => (strides[o] += st[j] * v));
    });
    const key = `${k}:${c}:${strides}`;
    let r = readKey.get(key);
    if (r === undefined) readKey.set(key, r = reads.push({ src: k, c, strides }) - 1);
    return { read: r };
  };
  // The value of `n` where its axis j is at forms[j] of the output index, as an expression.
  const value = (n: Node, forms: readonly Affine[]): Expr => {
    if (n !== root && isSource(n)) return read(n, n.shape, forms);
    // deno-lint-ignore no-explicit-any
    const p = n.params as any;
    if (MAPS.has(n.op)) return { node: n, args: n.src.map((x) => value(x, forms)) };
    const x = n.src[0], zero: Affine = { c: 0, coef: new Array(R).fill(0) };
    switch (n.op) {
      case "broadcast": {
        const lead = n.ndim - x.ndim;
        return value(x, x.shape.map((d, j) => (d === 1 ? zero : forms[lead + j])));
      }
      case "permute": {
        const inner = new Array<Affine>(x.ndim);
        (p.perm as number[]).forEach((q, i) => (inner[q] = forms[i]));
        return value(x, inner);
      }
      case "slice":
        return value(x, forms.map((f, j) => ({ c: f.c + p.starts[j], coef: f.coef })));
      case "reshape": {
        // A reindexing reshape reads its (materialized) input's memory in its own layout.
        const sp = splitReshape(x.shape, n.shape);
        return sp === null ? read(x, n.shape, forms) : value(x, splitForms(sp, x.shape, forms, R));
      }
    }
    throw new Error(`wasm: cannot fuse ${n.op}`);
  };
  const identity = root.shape.map((_, j) => ({ c: 0, coef: root.shape.map((_, o) => (o === j ? 1 : 0)) }));
  const tree = value(root, identity), expr = jsOf(tree);
  // Loops over the output in row-major order, each read's position advanced by its strides. Sizes,
  // offsets and strides are arguments, so one compiled loop serves every shape of the same structure.
  const lines: string[] = [], args: number[] = [...root.shape];
  const arg = (v: number) => `d[${args.push(v) - 1}]`;
  const constant = reads.map((rd) => rd.strides.every((v) => v === 0));
  reads.forEach((rd, r) => constant[r] && lines.push(`const v${r} = s${rd.src}[${arg(rd.c)}];`));
  lines.push("let o = 0;");
  const live = reads.map((_, r) => r).filter((r) => !constant[r]);
  const start = live.map((r) => arg(reads[r].c));
  const steps = live.map((r) => reads[r].strides.map(arg));
  for (let j = 0; j < R; j++) {
    const init = live.map((r, i) => `, q${r}_${j} = ${j === 0 ? start[i] : `q${r}_${j - 1}`}`).join("");
    const step = live.map((r, i) => `, q${r}_${j} += ${steps[i][j]}`).join("");
    lines.push(`for (let i${j} = 0${init}; i${j} < d[${j}]; i${j}++${step}) {`);
  }
  live.forEach((r, i) => lines.push(`const v${r} = s${reads[r].src}[${R === 0 ? start[i] : `q${r}_${R - 1}`}];`));
  lines.push(`out[o++] = ${expr};`, "}".repeat(R));
  const code = HELPERS + `return (out, d, ${sources.map((_, k) => `s${k}`).join(", ")}) => {\n${lines.join("\n")}\n};`;
  let fn = compiled.get(code);
  if (fn === undefined) {
    if (compiled.size >= CACHE_LIMIT) compiled.delete(compiled.keys().next().value!);
    fn = new Function("jfExp", "jfTanh", code)(jfExp, jfTanh) as Loop;
    compiled.set(code, fn);
    liveStats.shaderModules++;
  }
  return { sources, fn, args, expr: tree, reads };
}
