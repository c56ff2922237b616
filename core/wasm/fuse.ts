// Fusing elementwise chains on the host: views (broadcast, permute, slice, reshape) become strided
// reads and chains of elementwise primitives one loop, so neither is materialized; the plan of a
// graph is cached by its structure. A loop is Wasm SIMD where simd_loop.ts takes it, else generated
// JavaScript, which rounds every f32 operation as the reference does (bit for bit but for exp and
// tanh: those are polynomials, approx.ts, within an ulp of the reference's).
// The loops' generated code is in fuse_loop.ts.

import type { Node } from "../graph.ts";
import type { HostPlanner, HostRule, HostStep } from "../cpu/mod.ts";
import type { CpuArray } from "../prim.ts";
import { sameShape, stridesOf } from "../shape.ts";
import type { SimdLoop, SimdLoops } from "./simd_loop.ts";
import { fusedKernel, isFusible, type Loop, MAPS, viewReshape, VIEWS } from "./fuse_loop.ts";
import { reductionBlock } from "./reduce.ts";
import { StructureCache, structureOf } from "../plan_key.ts";
import type { EpiloguePlan, FusedReads } from "./epilogue.ts";
import {
  dimsOf,
  foldedBatch,
  type MatmulDims,
  type OperandView,
  operandView,
  type PlannedView,
  type ViewMatmul,
} from "./fuse_matmul.ts";

export type { MatmulDims, OperandLayout, OperandView, ViewMatmul } from "./fuse_matmul.ts";

// True when `n` computes something (it is elementwise, or a view of an elementwise node) and its
// consumer broadcasts it: inlined, it would be recomputed for every broadcast copy (an rmsNorm's
// per-row scale once per element of the row), so it is computed once into memory instead.
function expands(n: Node, consumer: Node): boolean {
  if (consumer.op !== "broadcast" || consumer.size <= n.size) return false;
  while (VIEWS.has(n.op)) n = n.src[0];
  return MAPS.has(n.op);
}

/**
 * Plans a matmul epilogue: the kernel computing `root` (its fused loop) from `product` as C is
 * stored, or null where that does not apply (see epilogue.ts's planEpilogue).
 */
export type EpiloguePlanner = (root: Node, fused: FusedReads, product: Node) => EpiloguePlan | null;

// A plan by node positions, so one computed for a graph serves every graph of the same structure:
// "rule" computes node `i` by its primitive's rule, "loop" by a generated loop over `reads`, "sum"
// a sum with its input's expression fused (SimdLoops.planSums), "matmul" by the
// view-reading matmul.
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
  | { readonly kind: "sum"; readonly i: number; readonly reads: readonly number[]; readonly simd: SimdLoop }
  | {
    readonly kind: "matmul";
    readonly i: number;
    readonly mm: number;
    readonly a: PlannedView;
    readonly b: PlannedView;
    readonly add: number | undefined;
    readonly dims: MatmulDims;
    readonly epi?: PlannedEpilogue;
  };
// A matmul's epilogue: the loop of the root it computes (its reads' positions, the product's among
// them), and that loop's own kernels, run over the product in place where the matmul cannot.
type PlannedEpilogue = {
  readonly plan: EpiloguePlan;
  readonly reads: readonly number[];
  readonly fn: Loop;
  readonly dims: number[];
  readonly simd: SimdLoop | null;
};

function planPositions(
  order: readonly Node[],
  keep: ReadonlySet<Node>,
  nodes: readonly Node[],
  viewMatmul: boolean,
  ownKernel: (n: Node) => boolean,
  simdLoops: SimdLoops | null,
  epiloguePlanner: EpiloguePlanner | null,
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
    if (n.op === "reshape" && !viewReshape(n.src[0].shape, n.shape) && pending.has(n.src[0])) roots.add(n.src[0]);
  }
  // A view of memory that only loops read is inlined into each of them (reading through a view costs
  // nothing), not copied into memory of its own first: a broadcast of a scalar or of per-row values
  // used twice was a pass over the full shape. (`order` lists a chain's lower views first.)
  for (const n of order) {
    if (!roots.has(n) || keep.has(n) || !VIEWS.has(n.op)) continue;
    const inlines = (c: Node) => fusible(c) && !(c.op === "reshape" && !viewReshape(n.shape, c.shape));
    if (!(consumers.get(n) ?? []).every(inlines)) continue;
    let base = n.src[0];
    while (VIEWS.has(base.op) && pending.has(base) && !roots.has(base)) base = base.src[0];
    if (!pending.has(base) || roots.has(base)) roots.delete(n);
  }
  // Matmul operands read through their views: the views are not computed, what they view is.
  const views = new Map<Node, (OperandView | null)[]>();
  if (viewMatmul) {
    // A view is read through by every consumer when each reads views (matmuls through layouts, loops
    // inlining them): a weight broadcast over a batch, read by the forward and the backward product,
    // is then never copied.
    const through = (c: Node) =>
      c.op === "matmul" || (fusible(c) && !(c.op === "reshape" && !viewReshape(c.src[0].shape, c.shape)));
    const single = (n: Node) => pending.has(n) && !keep.has(n) && (consumers.get(n) ?? []).every(through);
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
  // Epilogues: a materialized add of a product read by nothing else and a value in memory of its
  // shape (a residual, a gradient's two terms) is that product with the value added as C is stored.
  const epilogues = new Map<Node, { readonly mm: Node; readonly addend: Node }>();
  if (viewMatmul) {
    for (const n of order) {
      if (n.op !== "add" || !roots.has(n) || n.dtype !== "f32") continue;
      for (const [m, x] of [[n.src[0], n.src[1]], [n.src[1], n.src[0]]]) {
        const only = m.op === "matmul" && views.has(m) && !keep.has(m) && consumers.get(m)?.length === 1;
        if (!only || m === x || !isSource(x) || x.dtype !== "f32" || !sameShape(x.shape, n.shape)) continue;
        if (!sameShape(m.shape, n.shape)) continue;
        epilogues.set(n, { mm: m, addend: x });
        roots.delete(m);
        break;
      }
    }
  }
  // Reductions with prologues: a sum of an elementwise chain read by nothing else computes the chain
  // a chunk at a time as it sums (an rmsNorm's sum of squares, a weight's gradient summed over
  // rows), never materializing it.
  const sums = new Map<Node, { readonly simd: SimdLoop; readonly sources: readonly Node[] }>();
  for (const n of order) {
    const x = n.src[0];
    if (simdLoops === null || n.op !== "sum" || !roots.has(n) || !roots.has(x) || keep.has(x)) continue;
    if (!pending.has(x) || !fusible(x) || consumers.get(x)?.length !== 1) continue;
    if (x.op === "reshape" && !viewReshape(x.src[0].shape, x.shape)) continue;
    const block = reductionBlock(x.shape, (n.params as { axes: number[] }).axes);
    if (block === null) continue;
    roots.delete(x);
    const fused = fusedKernel(x, isSource), simd = simdLoops.planSums(n, x, block, fused);
    if (simd === null) roots.add(x);
    else sums.set(n, { simd, sources: fused.sources });
  }
  // A product's view of its operands, for the plan.
  const plannedViews = (mm: Node): PlannedView[] =>
    mm.src.map((s, k) => {
      const v = views.get(mm)![k] ?? { src: s, c: 0, strides: stridesOf(s.shape) };
      return { j: at.get(v.src)!, c: v.c, strides: v.strides };
    });
  // Sums of a batched product over its batch, read by nothing else: one product (foldedBatch).
  const absorbed = new Set<Node>(), folds = new Map<Node, ReturnType<typeof foldedBatch> & { mm: Node }>();
  if (viewMatmul) {
    for (const n of order) {
      const x = n.src[0];
      if (n.op !== "sum" || !roots.has(n) || x?.op !== "matmul" || !views.has(x) || keep.has(x)) continue;
      if (consumers.get(x)?.length !== 1) continue;
      const f = foldedBatch(n, x, plannedViews(x));
      if (f === null) continue;
      folds.set(n, { ...f, mm: x });
      absorbed.add(x);
    }
  }
  // Epilogues beyond an add: a loop whose product source is read by nothing outside the loop's
  // chain is computed as that product's C is stored (the product stays a root, so the other loops'
  // chains still end at it, but is not computed on its own).
  const chains = new Map<Node, { readonly mm: Node; readonly epi: PlannedEpilogue }>();
  if (viewMatmul && epiloguePlanner !== null) {
    for (const n of order) {
      if (!roots.has(n) || !fusible(n) || VIEWS.has(n.op) || epilogues.has(n) || n.dtype !== "f32") continue;
      const fused = fusedKernel(n, isSource), chain = new Set<Node>();
      const walk = (x: Node) => {
        if (chain.has(x) || (x !== n && isSource(x))) return;
        chain.add(x);
        x.src.forEach(walk);
      };
      walk(n);
      const mm = fused.sources.find((m) =>
        m.op === "matmul" && views.has(m) && !keep.has(m) && !absorbed.has(m) && sameShape(m.shape, n.shape) &&
        (consumers.get(m) ?? []).every((c) => chain.has(c))
      );
      const plan = mm === undefined ? null : epiloguePlanner(n, fused, mm);
      if (plan === null) continue;
      absorbed.add(mm!);
      const simd = simdLoops === null ? null : simdLoops.plan(n, fused.expr, fused.reads, fused.sources);
      const reads = fused.sources.map((x) => at.get(x)!);
      chains.set(n, { mm: mm!, epi: { plan, reads, fn: fused.fn, dims: fused.args, simd } });
    }
  }
  const planned: Planned[] = [];
  for (const node of order) {
    if (!roots.has(node) || absorbed.has(node)) continue;
    const chain = chains.get(node), fold = folds.get(node);
    if (chain !== undefined) {
      const mm = chain.mm, [a, b] = plannedViews(mm), dims = dimsOf(mm);
      planned.push({ kind: "matmul", i: at.get(node)!, mm: at.get(mm)!, a, b, add: undefined, dims, epi: chain.epi });
      continue;
    }
    if (fold !== undefined) {
      const { a, b, dims } = fold;
      planned.push({ kind: "matmul", i: at.get(node)!, mm: at.get(fold.mm)!, a, b, add: undefined, dims });
      continue;
    }
    const sum = sums.get(node);
    if (sum !== undefined) {
      planned.push({ kind: "sum", i: at.get(node)!, reads: sum.sources.map((x) => at.get(x)!), simd: sum.simd });
      continue;
    }
    const i = at.get(node)!, epi = epilogues.get(node), mmNode = epi?.mm ?? node, vs = views.get(mmNode);
    if (vs !== undefined) {
      const [a, b] = plannedViews(mmNode), add = epi === undefined ? undefined : at.get(epi.addend)!;
      planned.push({ kind: "matmul", i, mm: at.get(mmNode)!, a, b, add, dims: dimsOf(mmNode) });
    } else if (
      !fusible(node) ||
      (node.op === "reshape" && (!viewReshape(node.src[0].shape, node.shape) || isSource(node.src[0])))
    ) {
      // A reshape of memory is that memory (its rule returns its input): copying it would cost a pass.
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
  opts: {
    readonly matmul?: ViewMatmul;
    readonly ownKernel?: (n: Node) => boolean;
    readonly simd?: SimdLoops;
    readonly epilogue?: EpiloguePlanner;
  } = {},
): HostPlanner {
  const ownKernel = opts.ownKernel ?? (() => false), epilogue = opts.epilogue ?? null;
  const plans = new StructureCache<Planned[]>(PLAN_LIMIT);
  return (order, keep, rule, alloc) => {
    const s = structureOf(order, keep), nodes = s.nodes;
    const planned = plans.get(
      s,
      () => planPositions(order, keep, nodes, opts.matmul !== undefined, ownKernel, opts.simd ?? null, epilogue),
    );
    return planned.map((p): HostStep => {
      const node = nodes[p.i];
      if (p.kind === "rule") {
        const r: HostRule = rule(node);
        return { node, reads: node.src, run: (value) => r(node.src.map(value), node) };
      }
      if (p.kind === "matmul") {
        const mm = opts.matmul!, a = nodes[p.a.j], b = nodes[p.b.j], product = nodes[p.mm];
        const bInput = b.op === "data", add = p.add === undefined ? null : nodes[p.add];
        if (p.epi !== undefined) return epilogueStep(node, [a, b, product], p, p.epi, nodes, mm, alloc);
        const run = (value: (n: Node) => CpuArray) => {
          const out = alloc("f32", node.size, false) as Float32Array; // the matmul writes all of it
          mm(value(a), p.a, value(b), p.b, p.dims, bInput, out, add === null ? undefined : value(add));
          return out;
        };
        return { node, reads: add === null ? [a, b] : [a, b, add], run };
      }
      if (p.kind === "sum") {
        const reads = p.reads.map((j) => nodes[j]), simd = p.simd;
        const run = (value: (n: Node) => CpuArray) => {
          const out = alloc("f32", node.size, false) as Float32Array; // every sum is written
          simd.run(node.shape, reads.map(value), out);
          return out;
        };
        return { node, reads, run };
      }
      const reads = p.reads.map((j) => nodes[j]), fn = p.fn, dims = p.dims, simd = p.simd;
      const run = (value: (n: Node) => CpuArray) => {
        const out = alloc(node.dtype, node.size, false); // every loop writes all of it
        if (simd !== null) simd.run(node.shape, reads.map(value), out as Float32Array);
        else fn(out, dims, ...reads.map(value));
        return out;
      };
      return { node, reads, run };
    });
  };
}

// A matmul with an epilogue: the epilogue's kernel where the matmul computes it, else the product
// and then the root's loop over it in place (each element of the product is read once, where it
// is written).
function epilogueStep(
  node: Node,
  [a, b, product]: readonly Node[],
  p: { readonly a: PlannedView; readonly b: PlannedView; readonly dims: MatmulDims },
  epi: PlannedEpilogue,
  nodes: readonly Node[],
  mm: ViewMatmul,
  alloc: (dtype: "f32", size: number, zero: boolean) => CpuArray,
): HostStep {
  const sources = epi.reads.map((j) => nodes[j]), bInput = b.op === "data", { fn, dims, simd } = epi;
  const run = (value: (n: Node) => CpuArray) => {
    const out = alloc("f32", node.size, false) as Float32Array; // the matmul writes all of it
    const values = sources.map((x) => (x === product ? out : value(x)));
    const args = epi.plan.args(values), given = args === null ? undefined : { plan: epi.plan, args };
    const fused = mm(value(a), p.a, value(b), p.b, p.dims, bInput, out, undefined, given);
    if (!fused) {
      if (simd !== null) simd.run(node.shape, values, out);
      else fn(out, dims, ...values);
    }
    return out;
  };
  return { node, reads: [a, b, ...sources.filter((x) => x !== product)], run };
}

/** The fused host plan without view-reading matmuls. */
export const fusedPlan: HostPlanner = fusedPlanner();
