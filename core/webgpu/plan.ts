// Scheduling for WebGPU: which nodes get buffers (kernel roots) and the WGSL of each kernel.

import { type Node, schedule, useCounts } from "../graph.ts";
import { sameShape, type Shape, sizeOf, stridesOf } from "../shape.ts";
import { hostValue } from "../storage.ts";
import { DEFAULT_FEATURES, KernelBuilder, type KernelFeatures, type Sources } from "./emit.ts";
import { prologueTree, type StridedView } from "./matmul.ts";
import { builtInVariant, variantName } from "./variants.ts";
import { type Tunable, tunableOf, tunableVariantName } from "./kernel_variants.ts";
import type { Prim } from "../prim.ts";
import { type KernelBody, WGSL_RULES } from "./rules.ts";

/** One kernel ready to dispatch. */
export interface KernelPlan {
  /** What the kernel computes, for labels and errors: its outputs' ops and shapes ("sum [5] + exp [5]"). */
  readonly label: string;
  readonly wgsl: string;
  readonly uniforms: readonly number[];
  /** Uniform words holding scalar leaves' values, to refresh when the plan is reused. */
  readonly scalars: readonly (readonly [number, Node])[];
  readonly inputs: readonly Node[];
  /** What the kernel writes: one tensor, or several of one shape for a fused elementwise group. */
  readonly outputs: readonly Node[];
  readonly threads: number;
  readonly workgroupSize: number;
  /** The primitives computed inside the kernel besides its outputs (inlined and fused ones). */
  readonly ops?: readonly string[];
  /** For a matmul kernel: its product's batch, M, N and K (what the tuner measures). */
  readonly matmul?: readonly [number, number, number, number];
  /** For a reduction or scan kernel: what the tuner measures (kernel_variants.ts). */
  readonly tunable?: Tunable;
  /**
   * The kernel's variant where it has several (a matmul's tile, "tile 16x8": rows x columns; a
   * reduction's "lanes 64 wg 64"; a scan's "cols 1 wg 64").
   */
  readonly variant?: string;
  /**
   * The same object each time a cached plan runs this kernel, so the runner can keep its pipeline
   * and bind groups there (keyed by identity, not by WGSL text); absent, nothing is reused.
   */
  readonly slot?: object;
}

const VIEWS = new Set(["reshape", "permute", "broadcast", "slice", "stopGradient"]);
// Matmuls that may each compute an operand's elementwise prologue (see planKernels).
const PROLOGUE_USES = 6;

function contiguous(v: StridedView, shape: Shape): boolean {
  const s = stridesOf(shape);
  return shape.every((d, i) => d === 1 || v.strides[i] === s[i]);
}

/** Follows view ops from `t` down to a buffer, or returns null when `t` needs computing. */
export function stridedView(t: Node, isBuffer: (t: Node) => boolean): StridedView | null {
  if (isBuffer(t)) return { base: t, offset: 0, strides: stridesOf(t.shape) };
  if (!VIEWS.has(t.op)) return null;
  const x = t.src[0];
  const v = stridedView(x, isBuffer);
  if (v === null) return null;
  // deno-lint-ignore no-explicit-any
  const p = t.params as any;
  switch (t.op) {
    case "broadcast": {
      const lead = t.ndim - x.ndim;
      return { ...v, strides: t.shape.map((_, i) => (i < lead || x.shape[i - lead] === 1 ? 0 : v.strides[i - lead])) };
    }
    case "permute":
      return { ...v, strides: (p.perm as number[]).map((q) => v.strides[q]) };
    case "slice":
      return { ...v, offset: v.offset + (p.starts as number[]).reduce((acc, st, j) => acc + st * v.strides[j], 0) };
    case "reshape":
      return contiguous(v, x.shape) ? { ...v, strides: stridesOf(t.shape) } : null;
    default:
      return v;
  }
}

/**
 * Plans the kernels that realize `targets`; `maxBuffers` bounds the storage bindings of one kernel,
 * `features` says what else of the device the WGSL adapts to.
 */
export function planKernels(
  targets: readonly Node[],
  maxBuffers: number,
  order: readonly Node[] = schedule(targets),
  features: KernelFeatures = DEFAULT_FEATURES,
): KernelPlan[] {
  const uses = useCounts(order);
  const roots = new Set<Node>(targets.filter((t) => t.op !== "data"));
  const forced = new Set<Node>(); // one-element host leaves that a matmul must read from a buffer
  const isScalar = (t: Node) => t.op === "data" && t.size === 1 && hostValue(t) !== undefined && !forced.has(t);
  const isBuffer = (t: Node) => (t.op === "data" ? !isScalar(t) : roots.has(t));
  const cheap = (t: Node): boolean => t.op === "data" || (VIEWS.has(t.op) && !roots.has(t) && cheap(t.src[0]));

  // A value needed in several places gets a buffer; behind a chain of views (e.g. a causal mask
  // broadcast over batch and heads) the small value under the views gets it instead.
  const materialize = (x: Node) => {
    while (x.op !== "data" && VIEWS.has(x.op) && !roots.has(x)) x = x.src[0];
    if (x.op !== "data") roots.add(x);
  };
  for (const t of order) {
    if (WGSL_RULES[t.op as Prim].kind === "kernel") roots.add(t);
    // scatterAdd reads its updates once per output row, and the delta-rule scans read keys once per
    // value column: computing those inputs inline would repeat that work.
    if (t.op === "scatterAdd" && !cheap(t.src[0])) materialize(t.src[0]);
    if (t.op === "deltaScan" || t.op === "deltaScanGrad") {
      for (const x of t.src) if (!cheap(x)) materialize(x);
    }
  }
  // A value used several times is computed once per kernel and index anyway when all its uses flow
  // into one kernel at the same index (e.g. z in silu(z) = z * sigmoid(z)); otherwise it would be
  // recomputed in several kernels, so it gets a buffer. One-element values (schedules, bias
  // corrections) are always recomputed: cheaper than a dispatch, and the kernels around them fuse.
  const consumers = consumersOf(order);
  const sink = new Map<Node, Node | null>();
  for (let i = order.length - 1; i >= 0; i--) {
    const t = order[i];
    let s = sinkOf(t, roots, consumers, sink);
    if (s === null && (uses.get(t) ?? 0) > 1 && !cheap(t) && t.size > 1) {
      materialize(t);
      if (roots.has(t)) s = t;
    }
    sink.set(t, s);
  }
  // A matmul reads its operands from buffers. An operand that is an elementwise tree of a few
  // buffers is computed in the matmul's loads instead (a prologue): used by this matmul only, or
  // only by matmuls (through views, at most PROLOGUE_USES of them: a norm's output feeding q, k and
  // v and, transposed, their weight gradients), each of which then computes it. One kernel and one
  // round trip through memory fewer.
  const targetSet = new Set(targets);
  const inlineMap = (t: Node) => t.op !== "data" && WGSL_RULES[t.op as Prim].kind === "map" && !roots.has(t);
  const leafSources = { strided: (t: Node) => stridedView(t, isBuffer), isScalar, isMap: inlineMap };
  const matmuls = order.filter((t) => t.op === "matmul");
  // The matmuls that use t, through views only; null when something else uses it.
  const matmulUses = (t: Node): Node[] | null => {
    const out: Node[] = [];
    for (const c of consumers.get(t) ?? []) {
      if (c.op === "matmul") out.push(c);
      else if (!VIEWS.has(c.op) || roots.has(c) || targetSet.has(c)) return null;
      else {
        const more = matmulUses(c);
        if (more === null) return null;
        out.push(...more);
      }
    }
    return out;
  };
  const operandsOk = (ms: readonly Node[]) =>
    ms.every((m) =>
      m.src.every((x, side) =>
        stridedView(x, isBuffer) !== null || prologueTree(x, side as 0 | 1, leafSources) !== null
      )
    );
  for (const t of order) {
    if (!roots.has(t) || targetSet.has(t) || WGSL_RULES[t.op as Prim].kind !== "map" || t.size <= 1) continue;
    const ms = matmulUses(t);
    if (ms === null || ms.length === 0 || ms.length > PROLOGUE_USES) continue;
    roots.delete(t);
    if (!operandsOk(ms)) roots.add(t);
  }
  for (const t of matmuls) {
    t.src.forEach((x, side) => {
      if (stridedView(x, isBuffer) !== null) return;
      if (x.op === "data") forced.add(x);
      else if (prologueTree(x, side as 0 | 1, leafSources) === null) roots.add(x);
    });
  }
  // Computing one operand inline may deepen another's prologue past its limits: that one keeps its
  // buffer (which only makes prologues shallower, so this ends).
  for (let changed = true; changed;) {
    changed = false;
    for (const t of matmuls) {
      t.src.forEach((x, side) => {
        if (stridedView(x, isBuffer) !== null || prologueTree(x, side as 0 | 1, leafSources) !== null) return;
        roots.add(x);
        changed = true;
      });
    }
  }
  const deps = limitBindings(order, roots, isBuffer, isScalar, maxBuffers - 1);
  const epilogues = matmulEpilogues(order, roots, deps, targetSet, (t) => stridedView(t, isBuffer), maxBuffers);

  const sources: Sources = { isBuffer, isScalar, strided: (t) => stridedView(t, isBuffer), isMap: inlineMap };
  const kernels: KernelPlan[] = [];
  const emit = (group: readonly Node[], outputs: readonly Node[]) => {
    const mm = epilogues.get(group[0]);
    const k = new KernelBuilder(WGSL_RULES, mm ? [mm, ...group] : group, sources, outputs, features);
    const t = mm ?? group[0], rule = WGSL_RULES[t.op as Prim], tunable = tunableOf(t);
    // deno-lint-ignore no-explicit-any
    const body = rule.kind === "kernel" ? rule.build(k, t, t.params as any) : elementwise(k);
    kernels.push({
      label: outputs.map((t) => `${t.op} [${t.shape}]`).join(" + "),
      wgsl: k.source(body.body, body.workgroupSize),
      uniforms: k.uniforms,
      scalars: k.scalars,
      inputs: k.bindings.map((b) => b.tensor),
      outputs,
      threads: body.threads,
      workgroupSize: body.workgroupSize,
      ops: mm ? ["matmul", ...k.fused] : [...k.fused], // an epilogue's kernel computes its matmul too
      matmul: t.op === "matmul" ? productOf(t) : undefined,
      tunable,
      variant: t.op === "matmul" ? tileName(productOf(t), features) : tunable && tunableVariantName(tunable, features),
    });
  };
  // What a root's kernel reads: an epilogue's kernel also reads what its matmul reads.
  const reads = (r: Node): Node[] => [...deps.get(r)!, ...(epilogues.has(r) ? deps.get(epilogues.get(r)!)! : [])];
  const isMap = (t: Node) => WGSL_RULES[t.op as Prim].kind !== "kernel" && !epilogues.has(t);
  const groups = groupRoots(order, roots, reads, isMap, maxBuffers);
  // A group member is written out only if it is a target or another kernel reads it.
  const readBy = new Map<Node, Set<number>>();
  groups.forEach((g, gi) => {
    for (const x of g.flatMap(reads)) if (!g.includes(x)) (readBy.get(x) ?? readBy.set(x, new Set()).get(x)!).add(gi);
  });
  for (const g of groups) {
    const outputs = g.filter((r) => targetSet.has(r) || readBy.has(r));
    if (outputs.length > 0) emit(g, outputs);
  }
  return kernels;
}

// Groups nearer than this are searched for one an elementwise root may join (bounds planning time).
const GROUP_SEARCH = 32;

// Elementwise roots of one shape share a kernel wherever they are in the schedule (AdamW's new
// moments and param; the updates of every parameter of one shape; gradients of one shape from
// different layers): one dispatch, and values they share are computed once. A root t joins a group
// in one of two ways: the group stays where it is when every buffer t reads is written before it
// (t is computed early), or the group moves to t's place when no kernel has read its members yet
// (they are computed late). The nearest group that allows either is taken. `reads(t)` are the
// buffers t's kernel reads. Returns the groups in dispatch order.
function groupRoots(
  order: readonly Node[],
  roots: ReadonlySet<Node>,
  reads: (t: Node) => Iterable<Node>,
  isMap: (t: Node) => boolean,
  maxBuffers: number,
): Node[][] {
  const groups: (Node[] | null)[] = []; // null: the group moved to a later index
  const readYet: boolean[] = [];
  const groupOf = new Map<Node, number>();
  const byShape = new Map<string, number[]>(); // shape -> indices of elementwise groups of that shape
  const fits = (g: readonly Node[], t: Node) => {
    const members = new Set([...g, t]);
    const bound = new Set([...members].flatMap((r) => [...reads(r)]).filter((x) => !members.has(x)));
    return bound.size + members.size <= maxBuffers;
  };
  for (const t of order) {
    if (!roots.has(t)) continue;
    let at = -1;
    if (isMap(t)) {
      const key = `${t.shape}`, candidates = byShape.get(key) ?? byShape.set(key, []).get(key)!;
      let after = -1; // t may stay in a group from here on: every group that writes what t reads
      for (const d of reads(t)) after = Math.max(after, groupOf.get(d) ?? -1);
      for (let j = candidates.length - 1; j >= Math.max(0, candidates.length - GROUP_SEARCH); j--) {
        const gi = candidates[j], g = groups[gi]!;
        if ((gi < after && readYet[gi]) || !fits(g, t)) continue;
        if (gi >= after) {
          g.push(t);
          at = gi;
        } else {
          groups[gi] = null;
          at = groups.push([...g, t]) - 1;
          readYet.push(false);
          for (const r of g) groupOf.set(r, at);
          candidates.splice(j, 1);
          candidates.push(at);
        }
        break;
      }
      if (at < 0) candidates.push(groups.length);
    }
    if (at < 0) {
      at = groups.push([t]) - 1;
      readYet.push(false);
    }
    groupOf.set(t, at);
    for (const d of reads(t)) {
      const gi = groupOf.get(d);
      if (gi !== undefined && gi !== at) readYet[gi] = true;
    }
  }
  return groups.filter((g) => g !== null);
}

function tileName([Z, M, N, K]: readonly number[], features: KernelFeatures): string {
  return variantName(features.matmulVariant?.(Z, M, N, K) ?? builtInVariant(Z, M, N));
}

function productOf(m: Node): [number, number, number, number] {
  const r = m.ndim;
  return [sizeOf(m.shape.slice(0, -2)), m.shape[r - 2], m.shape[r - 1], m.src[0].shape[r - 1]];
}

function elementwise(k: KernelBuilder): KernelBody {
  const n = sizeOf(k.root.shape);
  k.lines.push(`if (tid >= ${k.u(n)}) { return; }`);
  const idx = k.unravel("tid", k.root.shape);
  k.outputs.forEach((t, i) => k.lines.push(`${k.out(i)}[tid] = ${k.toStore(k.value(t, idx), t.dtype)};`));
  return { body: k.lines, threads: n, workgroupSize: 64 };
}

function consumersOf(order: readonly Node[]): Map<Node, Node[]> {
  const out = new Map<Node, Node[]>();
  for (const t of order) for (const x of new Set(t.src)) (out.get(x) ?? out.set(x, []).get(x)!).push(t);
  return out;
}

// The one kernel root that all of t's uses flow into at t's own index (through elementwise ops),
// or null when uses reach several kernels or pass through a view that reindexes them.
function sinkOf(
  t: Node,
  roots: ReadonlySet<Node>,
  consumers: ReadonlyMap<Node, readonly Node[]>,
  sink: ReadonlyMap<Node, Node | null>,
): Node | null {
  if (roots.has(t)) return t;
  let common: Node | null | undefined;
  for (const c of consumers.get(t) ?? []) {
    const s = roots.has(c) ? c : WGSL_RULES[c.op as Prim].kind === "map" ? sink.get(c) ?? null : null;
    common = common === undefined || common === s ? s : null;
  }
  return common ?? null;
}

// Matmuls whose only use flows into one elementwise kernel of the same shape (through elementwise
// ops at the same index) take that kernel as an epilogue: the sums never go to memory.
// Returns epilogue -> matmul.
function matmulEpilogues(
  order: readonly Node[],
  roots: Set<Node>,
  deps: ReadonlyMap<Node, Set<Node>>,
  targets: ReadonlySet<Node>,
  strided: (t: Node) => StridedView | null,
  maxBuffers: number,
): Map<Node, Node> {
  const consumers = consumersOf(order);
  const sink = new Map<Node, Node | null>();
  for (let i = order.length - 1; i >= 0; i--) sink.set(order[i], sinkOf(order[i], roots, consumers, sink));
  const out = new Map<Node, Node>();
  for (const m of order) {
    const cs = consumers.get(m) ?? [];
    if (m.op !== "matmul" || targets.has(m) || cs.length !== 1) continue;
    const c = cs[0];
    if (c.src.filter((x) => x === m).length !== 1 || WGSL_RULES[c.op as Prim].kind !== "map") continue;
    const e = sink.get(c);
    if (!e || out.has(e) || WGSL_RULES[e.op as Prim].kind !== "map" || !sameShape(e.shape, m.shape)) continue;
    const reads = new Set([...deps.get(e)!].filter((x) => x !== m));
    // The matmul's operands: buffers, or what their prologues read.
    for (const x of m.src) for (const d of strided(x) ? [strided(x)!.base] : deps.get(x)!) reads.add(d);
    if (reads.size + 1 > maxBuffers) continue;
    roots.delete(m);
    out.set(e, m);
  }
  return out;
}

// Splits fused kernels that would read more buffers than a shader stage may bind: the input that
// brings the most buffers becomes a kernel of its own, until every kernel fits.
function limitBindings(
  order: readonly Node[],
  roots: Set<Node>,
  isBuffer: (t: Node) => boolean,
  isScalar: (t: Node) => boolean,
  maxInputs: number,
): Map<Node, Set<Node>> {
  const deps = new Map<Node, Set<Node>>();
  const depsOf = (x: Node): Set<Node> =>
    isScalar(x) ? new Set() : isBuffer(x) ? new Set([x]) : deps.get(x) ?? new Set([x]);
  for (const t of order) {
    const inputs = t.src;
    for (;;) {
      const sets = inputs.map(depsOf);
      const union = new Set(sets.flatMap((s) => [...s]));
      if (union.size <= maxInputs) {
        deps.set(t, union);
        break;
      }
      let worst = -1;
      sets.forEach((s, i) => {
        if (!isBuffer(inputs[i]) && (worst < 0 || s.size > sets[worst].size)) worst = i;
      });
      if (worst < 0) {
        throw new Error(`webgpu: ${t.op} reads ${union.size} buffers; the adapter allows ${maxInputs}`);
      }
      roots.add(inputs[worst]);
    }
  }
  return deps;
}
