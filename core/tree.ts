// Pytrees: nested arrays and plain records whose leaves are tensors.

import { describe, Tensor } from "./tensor.ts";

/** A pytree: a tensor, or arrays and plain records of pytrees (`null`/`undefined` hold no leaves). */
export type Tree = Tensor | null | undefined | readonly Tree[] | { readonly [key: string]: Tree };

/** The structure of a pytree without its leaves, as produced by `treeFlatten`. */
export type TreeDef =
  | { readonly kind: "leaf" }
  | { readonly kind: "none"; readonly value: null | undefined }
  | { readonly kind: "array"; readonly items: readonly TreeDef[] }
  | { readonly kind: "record"; readonly keys: readonly string[]; readonly items: readonly TreeDef[] };

function isRecord(v: unknown): v is { readonly [key: string]: Tree } {
  if (typeof v !== "object" || v === null) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

function build(v: unknown, path: string, leaves: Tensor[], op: string): TreeDef {
  if (v instanceof Tensor) {
    leaves.push(v);
    return { kind: "leaf" };
  }
  if (v === null || v === undefined) return { kind: "none", value: v };
  if (Array.isArray(v)) return { kind: "array", items: v.map((x, i) => build(x, `${path}[${i}]`, leaves, op)) };
  if (isRecord(v)) {
    const keys = Object.keys(v).sort();
    return { kind: "record", keys, items: keys.map((k) => build(v[k], `${path}.${k}`, leaves, op)) };
  }
  throw new Error(`${op}: pytree leaves must be tensors, but ${path || "the tree"} is ${describe(v)}`);
}

/**
 * Splits a pytree into its tensor leaves (records in sorted key order) and its structure.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tensor, treeFlatten } from "../mod.ts";
 * const w = tensor([1]), b = tensor([2]);
 * const [leaves, def] = treeFlatten({ w, b, extra: null });
 * assert.deepEqual(leaves, [b, w]); // sorted keys: b, extra, w
 * assert.equal(def.kind, "record");
 * ```
 */
export function treeFlatten(tree: unknown, opts: { readonly op?: string } = {}): [Tensor[], TreeDef] {
  const leaves: Tensor[] = [];
  const def = build(tree, "", leaves, opts.op ?? "treeFlatten");
  return [leaves, def];
}

/**
 * Rebuilds a pytree from a structure and leaves in `treeFlatten` order.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type Tensor, tensor, treeFlatten, treeUnflatten } from "../mod.ts";
 * const [leaves, def] = treeFlatten({ a: tensor(1), b: [tensor(2)] });
 * const doubled = treeUnflatten<{ a: Tensor; b: Tensor[] }>(def, leaves.map((t) => t.mul(2)));
 * assert.equal(await doubled.a.item(), 2);
 * assert.equal(await doubled.b[0].item(), 4);
 * ```
 */
export function treeUnflatten<T = Tree>(def: TreeDef, leaves: readonly Tensor[]): T {
  let i = 0;
  const go = (d: TreeDef): unknown => {
    switch (d.kind) {
      case "leaf":
        if (i >= leaves.length) throw new Error(`treeUnflatten: the structure needs more than ${leaves.length} leaves`);
        return leaves[i++];
      case "none":
        return d.value;
      case "array":
        return d.items.map(go);
      case "record":
        return Object.fromEntries(d.keys.map((k, j) => [k, go(d.items[j])]));
    }
  };
  const out = go(def);
  if (i !== leaves.length) {
    throw new Error(`treeUnflatten: the structure has ${i} leaves but ${leaves.length} were given`);
  }
  return out as T;
}

/**
 * The tensor leaves of a pytree, in `treeFlatten` order.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tensor, treeLeaves } from "../mod.ts";
 * const x = tensor(1);
 * assert.deepEqual(treeLeaves({ a: [x, null] }), [x]);
 * ```
 */
export function treeLeaves(tree: unknown): Tensor[] {
  return treeFlatten(tree, { op: "treeLeaves" })[0];
}

/**
 * The dotted path of every leaf, in `treeFlatten` order: record keys and array indices joined by
 * ".", e.g. `layers.0.attn.wq` (the empty string for a bare tensor).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tensor, treePaths } from "../mod.ts";
 * assert.deepEqual(treePaths({ w: tensor([1]), layers: [{ b: tensor(0) }] }), ["layers.0.b", "w"]);
 * ```
 */
export function treePaths(tree: unknown): string[] {
  const [, def] = treeFlatten(tree, { op: "treePaths" });
  const out: string[] = [];
  const go = (d: TreeDef, path: string[]): void => {
    if (d.kind === "leaf") out.push(path.join("."));
    else if (d.kind === "array") d.items.forEach((x, i) => go(x, [...path, String(i)]));
    else if (d.kind === "record") d.items.forEach((x, i) => go(x, [...path, d.keys[i]]));
  };
  go(def, []);
  return out;
}

/** True when two structures are the same (same keys, lengths and leaf positions). */
export function sameTreeDef(a: TreeDef, b: TreeDef): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * Applies `f` to the leaves of one or more pytrees of the same structure.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tensor, treeMap } from "../mod.ts";
 * const p = { w: tensor([1, 2]) }, g = { w: tensor([0.5, 0.5]) };
 * const next = treeMap((w, dw) => w.sub(dw), p, g);
 * assert.deepEqual(await next.w.array(), [0.5, 1.5]);
 * ```
 */
export function treeMap<T>(f: (leaf: Tensor, ...rest: Tensor[]) => Tensor, tree: T, ...rest: readonly T[]): T {
  const [leaves, def] = treeFlatten(tree, { op: "treeMap" });
  const others = rest.map((r, k) => {
    const [ls, d] = treeFlatten(r, { op: "treeMap" });
    if (!sameTreeDef(def, d)) throw new Error(`treeMap: tree ${k + 1} has a different structure from tree 0`);
    return ls;
  });
  return treeUnflatten<T>(def, leaves.map((x, i) => f(x, ...others.map((ls) => ls[i]))));
}

/**
 * Releases the storage of every tensor leaf of a pytree.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { treeDispose, zeros } from "../mod.ts";
 * const params = { w: zeros([4, 4]), b: [zeros([4])] };
 * treeDispose(params);
 * assert.ok(params.w.disposed && params.b[0].disposed);
 * ```
 */
export function treeDispose(tree: unknown): void {
  for (const t of treeLeaves(tree)) t.dispose();
}
