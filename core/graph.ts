// The lazy graph: frozen nodes (a primitive applied to input nodes, or a data leaf), resolution of
// nodes already computed, rewriting, and the schedule every backend shares.

import type { CpuArray, Prim, PrimParams } from "./prim.ts";
import type { DType, Shape } from "./shape.ts";

/** What a node is: a primitive, or `"data"` for a leaf whose value some storage holds. */
export type Op = Prim | "data";

type None = Record<never, never>;

let nextId = 0;
const NO_INPUTS: readonly Node[] = Object.freeze([]);

/**
 * One value of the graph, immutable once built: its shape and dtype (checked when it was built),
 * the operation and parameters that compute it, and its input nodes. A `"data"` leaf has no inputs;
 * its value lives in backend-owned storage keyed by the leaf (see storage.ts).
 */
export class Node {
  /** Unique, increasing identity (creation order). */
  readonly id: number;
  readonly op: Op;
  readonly shape: Shape;
  readonly dtype: DType;
  readonly src: readonly Node[];
  readonly params: PrimParams[Prim] | None;
  /** A constant leaf's host value (immutable, handed over when built); null for every other node. */
  readonly value: CpuArray | null;

  /**
   * Builds a node; it is frozen, and its arrays (`shape`, `src`) are never changed afterwards by
   * anyone, so they are not frozen themselves: V8 runs `map`, `every` and spreads over frozen arrays
   * several times slower, and shape rules do that on every node of every step. Tensors expose
   * frozen copies.
   */
  constructor(
    op: Op,
    shape: Shape,
    dtype: DType,
    src: readonly Node[],
    params: PrimParams[Prim] | None,
    value: CpuArray | null = null,
  ) {
    this.id = nextId++;
    this.op = op;
    this.shape = shape;
    this.dtype = dtype;
    this.src = src.length === 0 ? NO_INPUTS : src;
    // Its params record is frozen (not the arrays inside it, for the reason above), as the node is:
    // a plan cached for the node's structure must stay right for it.
    this.params = typeof params === "object" && params !== null && !Object.isFrozen(params)
      ? Object.freeze(params)
      : params;
    this.value = value;
    Object.freeze(this);
  }

  /** Number of axes. */
  get ndim(): number {
    return this.shape.length;
  }

  /** Number of elements. */
  get size(): number {
    let n = 1;
    for (const d of this.shape) n *= d;
    return n;
  }

  /** True for data leaves. */
  get isLeaf(): boolean {
    return this.op === "data";
  }
}

/** A fresh data leaf of a shape and dtype (its value is stored separately). */
export function leafNode(shape: Shape, dtype: DType): Node {
  return new Node("data", shape, dtype, [], {});
}

/**
 * A data leaf holding a host constant. The value travels with the leaf (no storage entry, which
 * matters for the many scalars every step builds); disposing it still releases it (storage.ts).
 */
export function constantNode(value: CpuArray, shape: Shape, dtype: DType): Node {
  let n = 1;
  for (const d of shape) n *= d;
  if (value.length !== n) throw new Error(`constant: ${value.length} values for a leaf of ${n}`);
  return new Node("data", shape, dtype, [], {}, value);
}

// Pending nodes that have been computed, and the leaf that now holds each one's value. A tensor
// handle moves to the leaf when it is realized (so its history can be collected); graphs built
// earlier still name the pending node, and resolve through this map.
const computedAs = new WeakMap<Node, Node>();

/** Records that `pending`'s value is now held by `leaf`. */
export function recordComputed(pending: Node, leaf: Node): void {
  computedAs.set(pending, leaf);
}

/** The leaf holding `n`'s value if it was computed, else `n`. */
export function resolve(n: Node): Node {
  return computedAs.get(n) ?? n;
}

/** True when `n` still needs computing (not a leaf and not computed). */
export function isPending(n: Node): boolean {
  return n.op !== "data" && !computedAs.has(n);
}

/**
 * Rebuilds the graph under `targets` bottom-up: computed nodes become their leaves, and `rule` may
 * replace any pending node (given its rebuilt inputs) by an equivalent subgraph, or return null to
 * keep it. Nodes whose inputs are unchanged are kept as they are, so a graph that needs no change
 * comes back identical (same nodes), at the cost of one traversal.
 */
export function rewrite(
  targets: readonly Node[],
  rule: ((n: Node, src: readonly Node[]) => Node | null) | null = null,
): Node[] {
  // Rebuilt nodes by the original's id (numbers hash faster than objects; this runs on every
  // realization). An explicit stack of nodes with a parallel stack of "inputs already pushed"
  // flags: graphs can be deep, and nothing is allocated per node that is kept.
  const done = new Map<number, Node>();
  const nodes: Node[] = [], expanded: boolean[] = [];
  const visit = (root: Node): Node => {
    nodes.push(root);
    expanded.push(false);
    while (nodes.length > 0) {
      const n = nodes.pop()!, seen = expanded.pop()!;
      if (done.has(n.id)) continue;
      const r = resolve(n);
      if (r.op === "data") {
        done.set(n.id, r);
        continue;
      }
      const src0 = n.src;
      if (!seen) {
        nodes.push(n);
        expanded.push(true);
        for (let i = 0; i < src0.length; i++) {
          if (!done.has(src0[i].id)) {
            nodes.push(src0[i]);
            expanded.push(false);
          }
        }
        continue;
      }
      let changed = false;
      for (let i = 0; i < src0.length; i++) if (done.get(src0[i].id) !== src0[i]) changed = true;
      const src = changed ? src0.map((x) => done.get(x.id)!) : src0;
      const kept = changed ? new Node(n.op, n.shape, n.dtype, src, n.params) : n;
      done.set(n.id, rule === null ? kept : rule(kept, src) ?? kept);
    }
    return done.get(root.id)!;
  };
  return targets.map(visit);
}

/**
 * Pending nodes reachable from `targets`, inputs before users (iterative, so deep graphs are fine).
 * Call it on rewritten graphs: it stops at data leaves, not at computed nodes.
 */
export function schedule(targets: readonly Node[]): Node[] {
  const order: Node[] = [];
  const state = new Map<number, 1 | 2>(); // by node id; 1: inputs being visited, 2: done
  for (const root of targets) {
    const stack: Node[] = [root];
    while (stack.length > 0) {
      const n = stack[stack.length - 1];
      if (n.op === "data") {
        stack.pop();
        continue;
      }
      const st = state.get(n.id);
      if (st === 2) {
        stack.pop();
        continue;
      }
      if (st === 1) {
        state.set(n.id, 2);
        order.push(n);
        stack.pop();
        continue;
      }
      state.set(n.id, 1);
      const src = n.src;
      for (let i = 0; i < src.length; i++) if (src[i].op !== "data" && !state.has(src[i].id)) stack.push(src[i]);
    }
  }
  return order;
}

/** How many times each node is read by the nodes of `order`. */
export function useCounts(order: readonly Node[]): Map<Node, number> {
  const uses = new Map<Node, number>();
  for (const n of order) for (const x of n.src) uses.set(x, (uses.get(x) ?? 0) + 1);
  return uses;
}
