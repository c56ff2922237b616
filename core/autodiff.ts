// Reverse-mode autodiff as a graph-to-graph transform: vjp rules build new lazy nodes, so grads compose.

import type { Node } from "./graph.ts";
import type { Prim, VjpOps } from "./prim.ts";
import { apply, scalarLike, Tensor } from "./tensor.ts";
import { PRIMS } from "./prims/mod.ts";
import { fmt, sameShape } from "./shape.ts";
import { sameTreeDef, type TreeDef, treeFlatten, treeUnflatten } from "./tree.ts";

/** Options of `grad` and `valueAndGrad`. */
export interface GradOptions {
  /** Which positional argument(s) to differentiate; 0 by default. An array returns a tuple of grads. */
  readonly argnums?: number | readonly number[];
  /** `f` returns `[loss, aux]`; the aux pytree is passed through undifferentiated. */
  readonly hasAux?: boolean;
}

// Flattens argument `argIndex` (as the caller numbers it) and throws unless every leaf is f32.
function differentiableLeaves(op: string, arg: unknown, argIndex: number): [Tensor[], TreeDef] {
  const [leaves, def] = treeFlatten(arg, { op });
  leaves.forEach((t, i) => {
    if (t.dtype !== "f32") {
      throw new Error(
        `${op}: argument ${argIndex} (leaf ${i}) is a ${t.dtype} tensor of shape ${fmt(t.shape)}; ` +
          `only f32 inputs can be differentiated (pass integer data as an argument not in argnums)`,
      );
    }
  });
  return [leaves, def];
}

// Wraps each differentiable leaf in a fresh identity node, so that the backward pass stops exactly
// there and a closure over the same tensor (nested grad) is treated as a constant.
function aliasLeaves(op: string, arg: unknown, argIndex: number): [Tensor[], TreeDef] {
  const [leaves, def] = differentiableLeaves(op, arg, argIndex);
  return [leaves.map((t) => apply("reshape", [t], { shape: t.shape })), def];
}

// The pending nodes between `wrt` and `outs`, inputs first. Nodes are frozen, so realizing an output
// later changes nothing here.
function tape(outs: readonly Node[], wrt: ReadonlySet<Node>): Node[] {
  const order: Node[] = [];
  const seen = new Set<Node>();
  const stack: [Node, boolean][] = outs.map((n) => [n, false]);
  while (stack.length > 0) {
    const [n, expanded] = stack.pop()!;
    if (expanded) {
      order.push(n);
      continue;
    }
    if (seen.has(n) || n.op === "data") continue;
    seen.add(n);
    stack.push([n, true]);
    if (!wrt.has(n)) { for (const x of n.src) if (!seen.has(x)) stack.push([x, false]); }
  }
  const live = new Set<Node>(wrt);
  return order.filter((n) => {
    if (!wrt.has(n) && !n.src.some((x) => live.has(x))) return false;
    live.add(n);
    return !wrt.has(n);
  });
}

const OPS: VjpOps = { apply, scalar: (v, like) => scalarLike(v, like) };

function backward(entries: readonly Node[], seeds: Map<Node, Tensor>, wrt: readonly Node[]): Tensor[] {
  const ct = new Map(seeds);
  const live = new Set<Node>([...wrt, ...entries]);
  const handles = new Map<Node, Tensor>();
  const handle = (n: Node) => handles.get(n) ?? handles.set(n, new Tensor(n)).get(n)!;
  for (let i = entries.length - 1; i >= 0; i--) {
    const n = entries[i];
    const g = ct.get(n);
    if (g === undefined) continue;
    ct.delete(n);
    // deno-lint-ignore no-explicit-any
    const gs = PRIMS[n.op as Prim].vjp(g, n.src.map(handle), handle(n), n.params as any, OPS);
    n.src.forEach((x, j) => {
      const gx = gs[j];
      if (gx === null || gx === undefined || !live.has(x) || x.dtype !== "f32") return;
      const prev = ct.get(x);
      ct.set(x, prev === undefined ? gx : prev.add(gx));
    });
  }
  return wrt.map((a) => ct.get(a) ?? scalarLike(0, handle(a)).broadcastTo(a.shape));
}

/**
 * Evaluates `f` at `primals` and returns its output with a function that maps an output cotangent
 * (same structure and shapes) to one cotangent pytree per primal.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type Tensor, tensor, vjp } from "../mod.ts";
 * const [y, back] = vjp((x: Tensor) => x.mul(x), tensor([1, 2, 3]));
 * assert.deepEqual(await y.array(), [1, 4, 9]);
 * const [dx] = back(tensor([1, 1, 1]));
 * assert.deepEqual(await dx.array(), [2, 4, 6]);
 * ```
 */
// deno-lint-ignore no-explicit-any
export function vjp<A extends any[], R>(f: (...args: A) => R, ...primals: A): [R, (cotangent: R) => A] {
  const flat = primals.map((p, i) => aliasLeaves("vjp", p, i));
  const wrt = flat.flatMap(([aliases]) => aliases);
  const out = f(...(flat.map(([aliases, def]) => treeUnflatten(def, aliases)) as A));
  const [outs, outDef] = treeFlatten(out, { op: "vjp (output of f)" });
  const outNodes = outs.map((o) => o.node); // captured now: reading an output later moves its handle
  const wrtNodes = wrt.map((t) => t.node);
  const entries = tape(outNodes, new Set(wrtNodes));
  const back = (cotangent: R): A => {
    const [cts, ctDef] = treeFlatten(cotangent, { op: "vjp (cotangent)" });
    if (!sameTreeDef(outDef, ctDef)) throw new Error("vjp: the cotangent's structure differs from f's output");
    const seeds = new Map<Node, Tensor>();
    outs.forEach((o, i) => {
      if (!sameShape(o.shape, cts[i].shape) || cts[i].dtype !== o.dtype) {
        throw new Error(
          `vjp: cotangent ${i} is ${cts[i].dtype} ${fmt(cts[i].shape)} but the output is ${o.dtype} ${fmt(o.shape)}`,
        );
      }
      const n = outNodes[i];
      if (o.dtype === "f32") seeds.set(n, seeds.has(n) ? seeds.get(n)!.add(cts[i]) : cts[i]);
    });
    const grads = backward(entries, seeds, wrtNodes);
    let k = 0;
    return flat.map(([aliases, def]) => treeUnflatten(def, grads.slice(k, k += aliases.length))) as A;
  };
  return [out, back];
}

/** The type of `grad`'s result: the argument's type, or a tuple of them for several argnums. */
export type GradOf<A extends readonly unknown[], N> = N extends number ? A[N]
  : { -readonly [K in keyof N]: N[K] extends number ? A[N[K]] : never };

function checkArgnums(op: string, argnums: number | readonly number[], n: number): number[] {
  const list = typeof argnums === "number" ? [argnums] : [...argnums];
  for (const a of list) {
    if (!Number.isInteger(a) || a < 0 || a >= n) {
      throw new Error(`${op}: argnums ${a} is out of range for ${n} arguments`);
    }
  }
  if (new Set(list).size !== list.length) throw new Error(`${op}: argnums ${JSON.stringify(list)} repeats an argument`);
  return list;
}

/**
 * Like `grad`, but returns `[value, grads]` (with `hasAux`, `[[value, aux], grads]`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type Tensor, tensor, valueAndGrad } from "../mod.ts";
 * const [loss, dw] = valueAndGrad((w: Tensor) => w.square().sum())(tensor([3, 4]));
 * assert.equal(await loss.item(), 25);
 * assert.deepEqual(await dw.array(), [6, 8]);
 * ```
 */
export function valueAndGrad<
  // deno-lint-ignore no-explicit-any
  A extends any[],
  const N extends number | readonly number[] = 0,
  Aux extends boolean = false,
>(
  f: (...args: A) => unknown,
  opts: GradOptions & { readonly argnums?: N; readonly hasAux?: Aux } = {},
): (...args: A) => [Aux extends true ? [Tensor, unknown] : Tensor, GradOf<A, NoInfer<N>>] {
  const { argnums = 0, hasAux = false } = opts;
  return (...args: A) => {
    const nums = checkArgnums("grad", argnums, args.length);
    // Checked here so that errors say "grad" and number arguments as the caller does (vjp sees only argnums).
    nums.forEach((a) => differentiableLeaves("grad", args[a], a));
    let aux: unknown;
    const [value, back] = vjp((...diff: unknown[]) => {
      const full = [...args] as A;
      nums.forEach((a, i) => (full[a] = diff[i]));
      let out = f(...full);
      if (hasAux) {
        if (!Array.isArray(out) || out.length !== 2) throw new Error("grad: with hasAux, f must return [loss, aux]");
        [out, aux] = out;
      }
      if (!(out instanceof Tensor) || out.dtype !== "f32" || out.ndim !== 0) {
        const what = out instanceof Tensor ? `a ${out.dtype} tensor of shape ${fmt(out.shape)}` : "a non-tensor value";
        throw new Error(`grad: f must return an f32 scalar (shape []), got ${what}; reduce it first, e.g. with .sum()`);
      }
      return out;
    }, ...nums.map((a) => args[a]));
    const grads = back(scalarLike(1, value));
    // deno-lint-ignore no-explicit-any
    return [(hasAux ? [value, aux] : value) as any, (typeof argnums === "number" ? grads[0] : grads) as GradOf<A, N>];
  };
}

/**
 * Returns a function computing the gradient of a scalar-valued `f` with respect to argument(s)
 * `argnums` (pytrees of f32 tensors). The result is lazy and differentiable again. With `hasAux`,
 * `f` returns `[loss, aux]` and the function returns `[grads, aux]`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { grad, type Tensor, tensor } from "../mod.ts";
 * // d2/dx2 x^3 = 6x
 * const d2 = grad(grad((x: Tensor) => x.pow(3)));
 * assert.equal(await d2(tensor(2)).item(), 12);
 * // Pytrees in, pytrees of the same shape out; argnums picks the arguments.
 * const f = (p: { readonly w: Tensor }, x: Tensor) => p.w.mul(x).sum();
 * const [dp, dx] = grad(f, { argnums: [0, 1] })({ w: tensor([1, 2]) }, tensor([3, 4]));
 * assert.deepEqual(await dp.w.array(), [3, 4]);
 * assert.deepEqual(await dx.array(), [1, 2]);
 * ```
 */
export function grad<
  // deno-lint-ignore no-explicit-any
  A extends any[],
  const N extends number | readonly number[] = 0,
  Aux extends boolean = false,
>(
  f: (...args: A) => unknown,
  opts: GradOptions & { readonly argnums?: N; readonly hasAux?: Aux } = {},
): (...args: A) => Aux extends true ? [GradOf<A, NoInfer<N>>, unknown] : GradOf<A, NoInfer<N>> {
  const vg = valueAndGrad(f, opts);
  return (...args: A) => {
    const [value, grads] = vg(...args);
    // deno-lint-ignore no-explicit-any
    return (opts.hasAux ? [grads, (value as [Tensor, unknown])[1]] : grads) as any;
  };
}
