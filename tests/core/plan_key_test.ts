// Graph structures as codes (core/plan_key.ts): graphs built the same way have equal codes whatever
// their leaves' values; any difference of op, shape, dtype, params, sharing or kept nodes changes
// them; the cache finds equal structures, keeps colliding ones apart and drops the least recently used.

import assert from "node:assert/strict";
import { normal, randomKey, type Tensor, tensor } from "../../mod.ts";
import { rewrite, schedule } from "../../core/graph.ts";
import { type Structure, StructureCache, structureOf } from "../../core/plan_key.ts";

function codes(outs: Tensor[], kept = outs): { codes: number[]; hash: number } {
  const targets = outs.map((t) => t.node),
    s = structureOf(schedule(rewrite(targets)), new Set(kept.map((t) => t.node)));
  return { codes: Array.from(s.codes), hash: s.hash };
}

Deno.test("graphs built the same way have equal structure codes; every kind of difference changes them", () => {
  const build = (seed: number, f: (x: Tensor, y: Tensor) => Tensor[]) =>
    codes(f(normal(randomKey(seed), [3, 4]).mul(1), normal(randomKey(seed + 1), [3, 4]).mul(1)));
  const base = (x: Tensor, y: Tensor) => [x.add(y).sum({ axis: -1 })];
  assert.deepEqual(build(1, base), build(7, base), "new leaves, same structure");
  const variants: [string, (x: Tensor, y: Tensor) => Tensor[]][] = [
    ["op", (x, y) => [x.mul(y).sum({ axis: -1 })]],
    ["params", (x, y) => [x.add(y).sum({ axis: 0 })]],
    ["keepdims", (x, y) => [x.add(y).sum({ axis: -1, keepdims: true })]],
    ["sharing", (x) => [x.add(x).sum({ axis: -1 })]],
    ["shape", (x, y) => [x.add(y).reshape([4, 3]).sum({ axis: -1 })]],
    ["dtype", (x, y) => [x.add(y).gt(0).cast("f32").sum({ axis: -1 })]],
  ];
  for (const [what, f] of variants) assert.notDeepEqual(build(1, f).codes, build(1, base).codes, what);
  const x = normal(randomKey(3), [5]).mul(1), y = x.exp(), z = y.add(1);
  assert.notDeepEqual(codes([z], [z]).codes, codes([z], [y, z]).codes, "kept nodes");
  const i = tensor(Int32Array.of(1, 2)), f = tensor(Float32Array.of(1, 2));
  assert.notDeepEqual(codes([i.add(i)]).codes, codes([f.add(f)]).codes, "a leaf's dtype");
});

Deno.test("the structure cache finds equal structures, keeps colliding ones apart and drops the least recently used", () => {
  const s = (hash: number, ...codes: number[]): Structure => ({
    codes: Float64Array.from(codes),
    hash,
    nodes: [],
    leaves: [],
  });
  const cache = new StructureCache<string>(2);
  let made = 0;
  const get = (st: Structure, v: string) => cache.get(st, () => (made++, v));
  assert.equal(get(s(1, 1, 2), "a"), "a");
  assert.equal(get(s(1, 1, 2), "other"), "a", "equal codes hit");
  assert.equal(get(s(1, 1, 3), "b"), "b", "the same hash with other codes is another structure");
  assert.equal(get(s(1, 1, 2), "other"), "a");
  assert.equal(made, 2);
  get(s(2, 9), "c"); // beyond the limit: the least recently used ([1, 3]) goes
  assert.equal(cache.size, 2);
  assert.equal(get(s(1, 1, 3), "b2"), "b2", "dropped, so made again");
  assert.equal(get(s(1, NaN), "n"), "n");
  assert.equal(get(s(1, NaN), "other"), "n", "NaN codes equal themselves");
});

Deno.test("a backend's prefix, leaf codes and output order are part of the structure", () => {
  const x = normal(randomKey(5), [4]).mul(1), y = x.exp(), z = x.neg();
  const order = schedule(rewrite([y.node, z.node])), keep = new Set([y.node, z.node]);
  const of = (opts: Parameters<typeof structureOf>[2]) => Array.from(structureOf(order, keep, opts).codes);
  assert.deepEqual(of({ prefix: [8, true, ""] }), of({ prefix: [8, true, ""] }));
  assert.notDeepEqual(of({ prefix: [8, true, ""] }), of({ prefix: [16, true, ""] }), "a limit");
  assert.notDeepEqual(of({ prefix: [8, true, ""] }), of({ prefix: [8, true, "tuned"] }), "a string");
  assert.notDeepEqual(of({ leafCode: () => 0 }), of({ leafCode: () => 1 }), "a leaf's binding");
  assert.notDeepEqual(of({ outputs: [y.node, z.node] }), of({ outputs: [z.node, y.node] }), "the targets' order");
  const s = structureOf(order, keep);
  assert.ok(
    s.leaves.every((l) => !order.includes(l)) && s.leaves.length > 0,
    "leaves are the nodes outside the schedule",
  );
});
