// Fusing elementwise chains on the host: views (broadcast, permute, slice, reshape) become strided
// reads and chains of elementwise primitives one loop, so neither is materialized; the plan of a
// graph is cached by its structure. A loop is Wasm SIMD where simd_loop.ts takes it, else generated
// JavaScript, which rounds every f32 operation as the reference does (bit for bit but for exp and
// tanh: those are polynomials, approx.ts, within an ulp of the reference's).

import type { Node } from "../graph.ts";
import type { HostPlanner, HostRule, HostStep } from "../cpu/mod.ts";
import type { CpuArray, Prim } from "../prim.ts";
import { stridesOf } from "../shape.ts";
import { liveStats } from "../stats.ts";
import { jfExp, jfTanh } from "./approx.ts";
import type { SimdLoop, SimdLoops } from "./simd_loop.ts";

const MAPS = new Set<string>([
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
const VIEWS = new Set<string>(["broadcast", "permute", "slice", "reshape"]);
const isFusible = (n: Node) => MAPS.has(n.op) || VIEWS.has(n.op);

// True when a reshape only adds or removes size-1 axes: then it is an index map, not a reindexing.
function unitReshape(from: readonly number[], to: readonly number[]): boolean {
  const a = from.filter((d) => d !== 1), b = to.filter((d) => d !== 1);
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

// An index of some node as an affine function of the output's multi-index: const + sum coef[k] i_k.
interface Affine {
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

type Loop = (out: CpuArray, dims: readonly number[], ...srcs: CpuArray[]) => void;

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
function fusedKernel(root: Node, isSource: (n: Node) => boolean): FusedLoop {
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
        if (!unitReshape(x.shape, n.shape)) return read(x, n.shape, forms);
        const kept = forms.filter((_, j) => n.shape[j] !== 1);
        let k = 0;
        return value(x, x.shape.map((d) => (d === 1 ? zero : kept[k++])));
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

// True when `n` computes something (it is elementwise, or a view of an elementwise node) and its
// consumer broadcasts it: inlined, it would be recomputed for every broadcast copy (an rmsNorm's
// per-row scale once per element of the row), so it is computed once into memory instead.
function expands(n: Node, consumer: Node): boolean {
  if (consumer.op !== "broadcast" || consumer.size <= n.size) return false;
  while (VIEWS.has(n.op)) n = n.src[0];
  return MAPS.has(n.op);
}

/** Where a matmul operand's elements are: `src`'s memory at `c + sum index * strides` (see matmul.ts). */
export interface OperandView {
  readonly src: Node;
  readonly c: number;
  readonly strides: readonly number[];
}

/** Where a matmul operand's elements are, without the node: offset and strides (see matmul.ts). */
export interface OperandLayout {
  readonly c: number;
  readonly strides: readonly number[];
}

/**
 * A matmul reading its operands through views, so transposes and slices are never materialized,
 * into `out` (the node's value, zero-filled); `bInput` says that b's memory is an input of the
 * realization (a weight, say), not an intermediate.
 */
export type ViewMatmul = (
  a: CpuArray,
  la: OperandLayout,
  b: CpuArray,
  lb: OperandLayout,
  node: Node,
  bInput: boolean,
  out: Float32Array,
) => void;

// The view chain below a matmul operand `n` (permutes, slices, broadcasts, unit reshapes, each
// used only by the next), as strides into the memory of the node it starts from; null if none.
function operandView(n: Node, single: (n: Node) => boolean): OperandView | null {
  if (!VIEWS.has(n.op) || !single(n)) return null;
  const R = n.ndim, zero: Affine = { c: 0, coef: new Array(R).fill(0) };
  let forms: readonly Affine[] = n.shape.map((_, j) => ({ c: 0, coef: n.shape.map((_, o) => (o === j ? 1 : 0)) }));
  let x = n;
  while (VIEWS.has(x.op) && single(x)) {
    // deno-lint-ignore no-explicit-any
    const p = x.params as any, src = x.src[0];
    if (x.op === "broadcast") {
      const lead = x.ndim - src.ndim, f = forms;
      forms = src.shape.map((d, j) => (d === 1 ? zero : f[lead + j]));
    } else if (x.op === "permute") {
      const inner = new Array<Affine>(src.ndim);
      (p.perm as number[]).forEach((q, i) => (inner[q] = forms[i]));
      forms = inner;
    } else if (x.op === "slice") {
      forms = forms.map((f, j) => ({ c: f.c + p.starts[j], coef: f.coef }));
    } else if (unitReshape(src.shape, x.shape)) {
      const kept = forms.filter((_, j) => x.shape[j] !== 1);
      let k = 0;
      forms = src.shape.map((d) => (d === 1 ? zero : kept[k++]));
    } else break; // a reindexing reshape: read the memory it reshapes
    x = src;
  }
  if (x.op === "reshape" && !unitReshape(x.src[0].shape, x.shape)) return null;
  const st = stridesOf(x.shape), strides = new Array<number>(R).fill(0);
  let c = 0;
  forms.forEach((f, j) => {
    c += st[j] * f.c;
    f.coef.forEach((v, o) => (strides[o] += st[j] * v));
  });
  return { src: x, c, strides };
}

// A plan by node positions, so one computed for a graph serves every graph of the same structure:
// "rule" computes node `i` by its primitive's rule, "loop" by a generated loop over `reads`,
// "matmul" by the view-reading matmul.
type Planned =
  | { readonly kind: "rule"; readonly i: number }
  | {
    readonly kind: "loop";
    readonly i: number;
    readonly reads: readonly number[];
    readonly fn: Loop;
    readonly dims: number[];
    readonly simd: SimdLoop | null;
  }
  | { readonly kind: "matmul"; readonly i: number; readonly a: PlannedView; readonly b: PlannedView };
type PlannedView = { readonly j: number; readonly c: number; readonly strides: readonly number[] };

/**
 * A graph's structure as a string, and its nodes by position: the schedule's nodes, with the
 * leaves they read (outside the schedule) placed at first use. Two graphs with equal keys differ
 * only in their leaves' values.
 */
function structure(order: readonly Node[], keep: ReadonlySet<Node>): { key: string; nodes: Node[] } {
  const index = new Map<Node, number>(), nodes: Node[] = [], parts: string[] = [];
  for (const n of order) {
    for (const x of n.src) {
      if (index.has(x)) continue;
      index.set(x, nodes.push(x) - 1);
      parts.push(`^${x.op}:${x.dtype}:${x.shape}`);
    }
    index.set(n, nodes.push(n) - 1);
    const src = n.src.map((x) => index.get(x)).join(",");
    parts.push(`${n.op}:${n.dtype}:${n.shape}:${JSON.stringify(n.params)}:${src}:${keep.has(n) ? 1 : 0}`);
  }
  return { key: parts.join(";"), nodes };
}

function planPositions(
  order: readonly Node[],
  keep: ReadonlySet<Node>,
  nodes: readonly Node[],
  viewMatmul: boolean,
  ownKernel: (n: Node) => boolean,
  simdLoops: SimdLoops | null,
): Planned[] {
  const fusible = (n: Node) => isFusible(n) && !ownKernel(n);
  const at = new Map<Node, number>(nodes.map((n, i) => [n, i]));
  const consumers = new Map<Node, Node[]>();
  for (const n of order) for (const x of n.src) (consumers.get(x) ?? consumers.set(x, []).get(x)!).push(n);
  const pending = new Set(order);
  const roots = new Set<Node>();
  for (const n of order) {
    const cs = consumers.get(n) ?? [];
    if (keep.has(n) || !fusible(n) || cs.length !== 1 || !fusible(cs[0]) || expands(n, cs[0])) roots.add(n);
  }
  // A reshape that reindexes reads its input from memory.
  for (const n of order) {
    if (n.op === "reshape" && !unitReshape(n.src[0].shape, n.shape) && pending.has(n.src[0])) roots.add(n.src[0]);
  }
  // Matmul operands read through their views: the views are not computed, what they view is.
  const views = new Map<Node, (OperandView | null)[]>();
  if (viewMatmul) {
    const single = (n: Node) => pending.has(n) && !keep.has(n) && consumers.get(n)?.length === 1;
    for (const n of order) {
      if (n.op !== "matmul") continue;
      const vs = n.src.map((s) => operandView(s, single));
      vs.forEach((v, i) => {
        if (v === null) return;
        for (let x = n.src[i]; x !== v.src; x = x.src[0]) roots.delete(x);
        if (pending.has(v.src)) roots.add(v.src);
      });
      views.set(n, vs);
    }
  }
  const isSource = (n: Node) => !pending.has(n) || roots.has(n);
  const planned: Planned[] = [];
  for (const node of order) {
    if (!roots.has(node)) continue;
    const i = at.get(node)!, vs = views.get(node);
    if (vs !== undefined) {
      const [a, b] = node.src.map((s, k) => {
        const v = vs[k] ?? { src: s, c: 0, strides: stridesOf(s.shape) };
        return { j: at.get(v.src)!, c: v.c, strides: v.strides };
      });
      planned.push({ kind: "matmul", i, a, b });
    } else if (!fusible(node) || (node.op === "reshape" && !unitReshape(node.src[0].shape, node.shape))) {
      planned.push({ kind: "rule", i });
    } else {
      const { sources, fn, args, expr, reads } = fusedKernel(node, isSource);
      const simd = simdLoops === null ? null : simdLoops.plan(node, expr, reads, sources);
      planned.push({ kind: "loop", i, reads: sources.map((x) => at.get(x)!), fn, dims: args, simd });
    }
  }
  return planned;
}

// Plans by structure: a training step or a decoded token repeats the same graph, and planning it
// (fusion, generating the loops' code) cost more than some of its kernels.
const PLAN_LIMIT = 64;

/**
 * The host plan with fusion: a fusible node used once, by a fusible node, is inlined into it;
 * every other node is materialized, the fusible ones by a generated loop. With `matmul`, matmul
 * operands that are views of materialized values are read through the views; nodes for which
 * `ownKernel` holds are not fused but computed by their rule (a kernel of the backend's). Plans are
 * reused for graphs of the same structure (`ownKernel` must depend on structure only).
 */
export function fusedPlanner(
  opts: { readonly matmul?: ViewMatmul; readonly ownKernel?: (n: Node) => boolean; readonly simd?: SimdLoops } = {},
): HostPlanner {
  const ownKernel = opts.ownKernel ?? (() => false);
  const plans = new Map<string, Planned[]>();
  return (order, keep, rule, alloc) => {
    const { key, nodes } = structure(order, keep);
    let planned = plans.get(key);
    if (planned === undefined) {
      planned = planPositions(order, keep, nodes, opts.matmul !== undefined, ownKernel, opts.simd ?? null);
      if (plans.size >= PLAN_LIMIT) plans.delete(plans.keys().next().value!);
      plans.set(key, planned);
    } else {
      plans.delete(key); // most recently used last
      plans.set(key, planned);
    }
    return planned.map((p): HostStep => {
      const node = nodes[p.i];
      if (p.kind === "rule") {
        const r: HostRule = rule(node);
        return { node, reads: node.src, run: (value) => r(node.src.map(value), node) };
      }
      if (p.kind === "matmul") {
        const mm = opts.matmul!, a = nodes[p.a.j], b = nodes[p.b.j];
        const bInput = b.op === "data";
        const run = (value: (n: Node) => CpuArray) => {
          const out = alloc("f32", node.size) as Float32Array;
          mm(value(a), p.a, value(b), p.b, node, bInput, out);
          return out;
        };
        return { node, reads: [a, b], run };
      }
      const reads = p.reads.map((j) => nodes[j]), fn = p.fn, dims = p.dims, simd = p.simd;
      const run = (value: (n: Node) => CpuArray) => {
        const out = alloc(node.dtype, node.size);
        if (simd !== null) simd.run(node.shape, reads.map(value), out as Float32Array);
        else fn(out, dims, ...reads.map(value));
        return out;
      };
      return { node, reads, run };
    });
  };
}

/** The fused host plan without view-reading matmuls. */
export const fusedPlan: HostPlanner = fusedPlanner();
