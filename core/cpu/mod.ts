// The reference backend: interprets the graph with each primitive's `cpu` rule, in f32 or float64.
// It has no kernel limits, so it runs every graph as built; its values live on the host. Other
// host backends reuse the interpreter with kernels of their own for some primitives.

import { type Node, recordComputed, rewrite, schedule } from "../graph.ts";
import type { Backend, Capabilities, Precision } from "../backend.ts";
import type { CpuArray, CpuContext, Prim, PrimDef } from "../prim.ts";
import { PRIMS } from "../prims/mod.ts";
import { allocHost, type DType } from "../shape.ts";
import { addStore, hostValue, hostValues, putHost } from "../storage.ts";
import { liveStats } from "../stats.ts";
import { type ArenaHeap, HostArena, POOL_LIMIT } from "./arena.ts";

const CAPABILITIES: Capabilities = {
  maxKernelBuffers: Infinity,
  maxLoop: Infinity,
  maxBufferBytes: Infinity,
  precisions: ["f32", "f64"],
};

/** Host kernels that replace primitives' reference rules (a backend built on this interpreter). */
export type HostKernels = { readonly [P in Prim]?: PrimDef<P>["cpu"] };

/** One step of a host plan: computes `node` from the values of `reads` (materialized nodes). */
export interface HostStep {
  readonly node: Node;
  readonly reads: readonly Node[];
  readonly run: (value: (n: Node) => CpuArray) => CpuArray;
}

/**
 * Turns a schedule into steps (every node its own step, or fused groups); `keep` must be computed.
 * Steps allocate their results with `alloc` (the backend's arena, see arena.ts).
 */
export type HostPlanner = (
  order: readonly Node[],
  keep: ReadonlySet<Node>,
  rule: (n: Node) => HostRule,
  alloc: CpuContext["alloc"],
) => HostStep[];

/** A primitive's host implementation, as the interpreter calls it. */
export type HostRule = (ins: readonly CpuArray[], n: Node) => CpuArray;

/**
 * Interprets the graph on the host, node by node, with each primitive's reference rule or a
 * kernel that replaces it. The reference backend is this with no replacements.
 */
export class Interpreter implements Backend {
  readonly name: "cpu" | "wasm";
  readonly capabilities: Capabilities;
  readonly adapter = null;
  readonly fallbackAdapter = false;
  readonly threads: number;
  readonly precision: Precision;
  readonly #ctx: CpuContext;
  readonly #kernels: HostKernels;

  readonly #plan: HostPlanner;
  readonly #arena: HostArena | null;

  /**
   * With `arena`, values live in a pool of recycled arrays (see arena.ts; f32 precision only):
   * intermediates return to it after their last read, realized values when their leaf is released.
   * With `heap` as well, the arena places them in that memory (the Wasm backend's).
   */
  constructor(
    precision: Precision,
    opts: {
      name?: "cpu" | "wasm";
      kernels?: HostKernels;
      capabilities?: Capabilities;
      plan?: HostPlanner;
      arena?: boolean;
      heap?: ArenaHeap | null;
      threads?: number;
    } = {},
  ) {
    this.name = opts.name ?? "cpu";
    this.threads = opts.threads ?? 1;
    this.capabilities = opts.capabilities ?? CAPABILITIES;
    this.#kernels = opts.kernels ?? {};
    this.#plan = opts.plan ?? nodeByNode;
    this.precision = precision;
    if (opts.arena && precision !== "f32") throw new Error("interpreter: an arena holds f32 values only");
    const arena = this.#arena = opts.arena ? new HostArena(POOL_LIMIT, opts.heap ?? null) : null;
    this.#ctx = {
      alloc: arena !== null
        ? (dtype: DType, n: number, zeroed?: boolean) => arena.alloc(dtype, n, zeroed)
        : (dtype: DType, n: number) =>
          dtype === "f32" && precision === "f64" ? new Float64Array(n) : allocHost(dtype, n),
    };
    if (arena !== null) addStore(this);
  }

  /**
   * Bytes of the arena's arrays held by values, and kept free for reuse (zero without an arena), and
   * how many of either are blocks of a heap (see HostArena.bytesInHeap).
   */
  get memory(): { readonly bytesInUse: number; readonly bytesPooled: number; readonly bytesInHeap: number } {
    const a = this.#arena;
    return { bytesInUse: a?.bytesInUse ?? 0, bytesPooled: a?.bytesPooled ?? 0, bytesInHeap: a?.bytesInHeap ?? 0 };
  }

  holds(leaf: Node): boolean {
    return hostValue(leaf) !== undefined;
  }

  read(leaves: readonly Node[]): Promise<CpuArray[]> {
    return hostValues(leaves, "realize");
  }

  /** Returns a released leaf's memory to the arena (storage itself drops the host value). */
  release(leaf: Node): void {
    this.#arena?.release(leaf);
  }

  async realize(targets: readonly Node[], leaves: readonly Node[], read: readonly Node[]): Promise<CpuArray[]> {
    const graph = rewrite(targets);
    const order = schedule(graph);
    // Inputs that live elsewhere (a device, or disposed) are fetched or reported before any work.
    const inputs: Node[] = [], isInput = new Set<number>();
    for (const n of order) {
      for (const x of n.src) if (x.op === "data" && !isInput.has(x.id)) isInput.add(x.id), inputs.push(x);
    }
    const fetched = await hostValues(inputs, "realize");
    // Values and use counts by node id (numbers hash faster than objects, and these run per read).
    const values = new Map<number, CpuArray>();
    const arena = this.#arena;
    // Every value in `values` is a holder of its memory in the arena, until it is deleted.
    const set = (x: Node, v: CpuArray) => (values.set(x.id, v), arena?.hold(v));
    try {
      inputs.forEach((x, i) => set(x, this.#input(fetched[i])));
      const keep = new Set(graph);
      const steps = this.#plan(order, keep, (n) => this.#rule(n), this.#ctx.alloc);
      const uses = new Map<number, number>();
      for (const st of steps) for (const x of st.reads) uses.set(x.id, (uses.get(x.id) ?? 0) + 1);
      const valueOf = (x: Node) => values.get(x.id)!;
      for (const st of steps) {
        set(st.node, st.run(valueOf));
        for (const x of st.reads) {
          const left = uses.get(x.id)! - 1;
          uses.set(x.id, left);
          if (left === 0 && x.op !== "data" && !keep.has(x)) {
            arena?.drop(values.get(x.id)!);
            values.delete(x.id);
          }
        }
        arena?.sweep();
      }
      if (order.some((n) => n.op !== "data")) liveStats.realizations++;
      graph.forEach((n, i) => {
        const v = values.get(n.id) ?? hostValue(n)!;
        putHost(leaves[i], v);
        arena?.own(leaves[i], v);
        recordComputed(targets[i], leaves[i]);
      });
    } finally {
      if (arena !== null) {
        for (const v of values.values()) arena.drop(v);
        arena.sweep();
      }
    }
    return read.map((l) => hostValue(l)!);
  }

  #rule(n: Node): HostRule {
    const op = n.op as Prim, rule = this.#kernels[op] ?? PRIMS[op].cpu;
    // deno-lint-ignore no-explicit-any
    return (ins, node) => (rule as any)(ins, node.src, node, node.params, this.#ctx);
  }

  // f32 computations read float64 host values (f64 results, exact constants) rounded to f32, as
  // a device would; one-element constants keep their float64 value, rounded on use.
  #input(v: CpuArray): CpuArray {
    return this.precision === "f32" && v instanceof Float64Array && v.length > 1 ? Float32Array.from(v) : v;
  }
}

// The reference plan: every node is a step of its own, computed by its rule.
function nodeByNode(order: readonly Node[], _keep: ReadonlySet<Node>, rule: (n: Node) => HostRule): HostStep[] {
  return order.map((node) => {
    const r = rule(node);
    return { node, reads: node.src, run: (value) => r(node.src.map(value), node) };
  });
}

const backends = new Map<Precision, Interpreter>();

/** The reference backend in a precision (one instance each; they share the host's values). */
export function openReference(precision: Precision): Promise<Backend> {
  let b = backends.get(precision);
  if (b === undefined) backends.set(precision, b = new Interpreter(precision));
  return Promise.resolve(b);
}
