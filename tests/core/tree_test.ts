// Tests of pytrees: flatten/unflatten round trips, treeMap, structure errors, leaf order, dispose, frozen inputs.

import fc from "fast-check";
import {
  grad,
  type Tensor,
  tensor,
  treeDispose,
  treeFlatten,
  treeLeaves,
  treeMap,
  treeUnflatten,
  valueAndGrad,
} from "../../mod.ts";
import { Tensor as TensorClass } from "../../core/tensor.ts";
import { assertClose, assertThrowsMsg, values } from "../helpers.ts";

/** Structural equality where tensors compare by identity. */
function assertSameTree(a: unknown, b: unknown, path = "tree"): void {
  if (a instanceof TensorClass || b instanceof TensorClass) {
    if (a !== b) throw new Error(`${path}: different tensors`);
    return;
  }
  if (a === null || a === undefined || b === null || b === undefined) {
    if (a !== b) throw new Error(`${path}: ${a} !== ${b}`);
    return;
  }
  if (Array.isArray(a) !== Array.isArray(b)) throw new Error(`${path}: array vs record`);
  const ka = Object.keys(a as object).sort(), kb = Object.keys(b as object).sort();
  if (ka.join("\u0000") !== kb.join("\u0000")) throw new Error(`${path}: keys [${ka}] vs [${kb}]`);
  for (const k of ka) {
    assertSameTree((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], `${path}.${k}`);
  }
}

/** Leaves in the documented order, computed independently: arrays in order, records by sorted keys. */
function referenceLeaves(tree: unknown, out: Tensor[] = []): Tensor[] {
  if (tree instanceof TensorClass) out.push(tree);
  else if (Array.isArray(tree)) tree.forEach((t) => referenceLeaves(t, out));
  else if (tree !== null && tree !== undefined) {
    for (const k of Object.keys(tree).sort()) referenceLeaves((tree as Record<string, unknown>)[k], out);
  }
  return out;
}

/** Freezes every array and record of a pytree, down to (not including) its tensors. */
function deepFreeze<T>(tree: T): T {
  if (tree !== null && typeof tree === "object" && !(tree instanceof TensorClass)) {
    for (const v of Object.values(tree)) deepFreeze(v);
    Object.freeze(tree);
  }
  return tree;
}

const arbTree = fc.letrec<{ node: unknown }>((tie) => ({
  node: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.integer({ min: -9, max: 9 }).map((v) => tensor(v)),
    fc.constantFrom(null, undefined),
    fc.array(tie("node"), { maxLength: 4 }),
    fc.dictionary(
      fc.string({ unit: fc.constantFrom("a", "b", "c", "Z", "_", "1"), minLength: 1, maxLength: 3 }),
      tie("node"),
      {
        maxKeys: 4,
      },
    ),
  ),
})).node;

Deno.test("treeFlatten then treeUnflatten rebuilds random nested structures", () => {
  fc.assert(
    fc.property(arbTree, (tree) => {
      const [leaves, def] = treeFlatten(tree);
      assertSameTree(treeUnflatten(def, leaves), tree);
      const ref = referenceLeaves(tree);
      if (leaves.length !== ref.length || leaves.some((t, i) => t !== ref[i])) {
        throw new Error("leaves are not in sorted-key, array order");
      }
      // Flattening the rebuilt tree gives the same structure again.
      const [again, def2] = treeFlatten(treeUnflatten(def, leaves));
      if (JSON.stringify(def2) !== JSON.stringify(def) || again.some((t, i) => t !== leaves[i])) {
        throw new Error("flatten(unflatten(def, leaves)) differs from (leaves, def)");
      }
    }),
    { numRuns: 200 },
  );
});

Deno.test("treeUnflatten places new leaves into the structure in flatten order", async () => {
  const tree = { w: tensor([1]), b: [tensor([2]), null, { z: tensor([3]), a: tensor([4]) }] as const };
  const [leaves, def] = treeFlatten(tree);
  // Sorted keys: b before w; inside b[2], a before z.
  const order = await Promise.all(leaves.map(async (t) => (await values(t))[0]));
  assertClose(order, [2, 4, 3, 1], { atol: 0, rtol: 0 });
  const doubled = treeUnflatten<typeof tree>(def, leaves.map((t) => t.mul(2)));
  assertClose(await values(doubled.w), [2], { atol: 0, rtol: 0 });
  assertClose(await values(doubled.b[2].a), [8], { atol: 0, rtol: 0 });
  if (doubled.b[1] !== null) throw new Error("null must stay in place");
});

Deno.test("treeLeaves order is deterministic: sorted keys, whatever the insertion order", () => {
  const x = tensor(1), y = tensor(2), z = tensor(3);
  const orders = [{ b: x, a: y, c: z }, { c: z, a: y, b: x }, { a: y, c: z, b: x }];
  for (const o of orders) {
    const got = treeLeaves(o);
    if (got[0] !== y || got[1] !== x || got[2] !== z) throw new Error("leaves must follow sorted keys a, b, c");
  }
  fc.assert(
    fc.property(arbTree, (tree) => {
      const a = treeLeaves(tree), b = treeLeaves(tree);
      if (a.length !== b.length || a.some((t, i) => t !== b[i])) throw new Error("two calls disagree");
    }),
    { numRuns: 50 },
  );
});

Deno.test("treeMap combines several trees of the same structure leaf by leaf", async () => {
  const t1 = { a: [tensor([1, 2]), null], b: tensor(3) };
  const t2 = { a: [tensor([10, 20]), null], b: tensor(30) };
  const t3 = { b: tensor(-1), a: [tensor([2, 2]), null] };
  const out = treeMap((x, y, z) => x.add(y).mul(z), t1, t2, t3);
  assertClose(await values(out.a[0]!), [22, 44], { atol: 0, rtol: 0 });
  assertClose(await values(out.b), [-33], { atol: 0, rtol: 0 });
  if (out.a[1] !== null) throw new Error("null must stay in place");
  // One tree: a plain map; the input is not modified.
  const neg = treeMap((x) => x.neg(), t1);
  assertClose(await values(neg.a[0]!), [-1, -2], { atol: 0, rtol: 0 });
  assertClose(await values(t1.a[0]!), [1, 2], { atol: 0, rtol: 0 });
});

Deno.test("structure mismatches and non-tensor leaves raise errors that name the problem", async () => {
  const base: Record<string, unknown> = { a: [tensor(1), tensor(2)], b: tensor(3) };
  await assertThrowsMsg(() => treeMap((x, y) => x.add(y), base, { a: [tensor(1)], b: tensor(3) }), "treeMap", "tree 1");
  await assertThrowsMsg(() => treeMap((x, y) => x.add(y), base, { a: [tensor(1), tensor(2)], c: tensor(3) }), "tree 1");
  await assertThrowsMsg(
    () => treeMap((x, _y, z) => x.add(z), base, base, { a: [tensor(1), null], b: tensor(3) }),
    "tree 2",
  );
  const [leaves, def] = treeFlatten(base);
  await assertThrowsMsg(() => treeUnflatten(def, leaves.slice(1)), "treeUnflatten", "more than 2 leaves");
  await assertThrowsMsg(() => treeUnflatten(def, [...leaves, tensor(4)]), "treeUnflatten", "3 leaves", "4");
  await assertThrowsMsg(() => treeFlatten({ a: [tensor(1), 5] }), "treeFlatten", ".a[1]", "number 5");
  await assertThrowsMsg(() => treeLeaves({ m: new Map() }), "treeLeaves", ".m", "Map");
});

Deno.test("treeDispose makes every leaf unusable", async () => {
  const tree = { w: tensor([1, 2]), inner: [tensor(3).mul(2), null] };
  const [w, pending] = [tree.w, tree.inner[0]!];
  treeDispose(tree);
  await assertThrowsMsg(() => w.add(1), "disposed");
  await assertThrowsMsg(() => pending.mul(2), "disposed");
  await assertThrowsMsg(() => w.data(), "disposed");
  await assertThrowsMsg(() => pending.data(), "disposed");
  // A tensor computed from a leaf before the dispose cannot be realized either: its input is gone.
  const a = tensor([1, 2]), b = a.mul(3);
  treeDispose([a]);
  await assertThrowsMsg(() => b.data(), "disposed");
});

Deno.test("deeply frozen pytrees are accepted by flatten, treeMap and grad", async () => {
  const params = deepFreeze({ layers: [{ w: tensor([1, 2]), b: tensor(0.5) }, { w: tensor([3, 4]), b: null }] });
  if (!Object.isFrozen(params.layers[0])) throw new Error("the test tree should be frozen");
  const [leaves, def] = treeFlatten(params);
  assertSameTree(treeUnflatten(def, leaves), params);
  const halved = treeMap((x) => x.mul(0.5), params);
  assertClose(await values(halved.layers[1].w), [1.5, 2], { atol: 0, rtol: 0 });
  const loss = (p: typeof params) => p.layers[0].w.mul(p.layers[1].w).sum().add(p.layers[0].b!.square());
  const [value, g] = valueAndGrad(loss)(params);
  assertClose(await values(value), [11.25], { atol: 0, rtol: 0 });
  assertClose(await values(g.layers[0].w), [3, 4], { atol: 0, rtol: 0 });
  assertClose(await values(g.layers[0].b!), [1], { atol: 0, rtol: 0 });
  assertClose(await values(g.layers[1].w), [1, 2], { atol: 0, rtol: 0 });
  if (g.layers[1].b !== null) throw new Error("null must stay in place in the gradient");
  assertClose(await values(grad(loss)(params).layers[1].w), [1, 2], { atol: 0, rtol: 0 });
});

Deno.test("treePaths names every leaf by its keys and indices, in treeFlatten order", async () => {
  const { tensor, treePaths, treeLeaves } = await import("../../mod.ts");
  const a = tensor(1), b = tensor(2), c = tensor(3);
  const tree = { w: a, layers: [{ q: b }, null, { k: c }] };
  const paths = treePaths(tree);
  if (JSON.stringify(paths) !== JSON.stringify(["layers.0.q", "layers.2.k", "w"])) throw new Error(`got ${paths}`);
  const leaves = treeLeaves(tree);
  if (leaves[0] !== b || leaves[1] !== c || leaves[2] !== a) throw new Error("paths and leaves disagree on order");
  if (JSON.stringify(treePaths(a)) !== JSON.stringify([""])) throw new Error("a bare tensor has the empty path");
});
