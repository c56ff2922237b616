// Scalar constants (scalarLike, behind `x.mul(2)` and every vjp's constants) are one leaf per dtype
// and value: a graph that uses a value many times reads one leaf, -0 and 0 stay apart, and a cached
// constant that someone disposed is replaced rather than handed out again.

import assert from "node:assert/strict";
import { grad, setBackend, type Tensor, tensor } from "../../mod.ts";
import { scalarLike } from "../../core/tensor.ts";

Deno.test("equal scalar constants are one leaf; -0, 0, NaN and dtypes are kept apart", async () => {
  const x = tensor([1, 2, 3]);
  // The constant's leaf, below the broadcast that gives it the other operand's shape.
  const leaf = (t: Tensor) => {
    let n = t.node.src[1];
    while (n.op !== "data") n = n.src[0];
    return n;
  };
  assert.equal(leaf(x.mul(2.5)), leaf(x.add(2.5)), "2.5 twice: one leaf");
  assert.notEqual(leaf(x.mul(0)), leaf(x.mul(-0)), "-0 is not 0");
  assert.equal(leaf(x.add(NaN)), leaf(x.sub(NaN)));
  assert.notEqual(scalarLike(1, tensor(Int32Array.of(1))).node, scalarLike(1).node, "i32 and f32 apart");
  await setBackend("cpu");
  assert.deepEqual(Array.from(await x.mul(-0).data()), [-0, -0, -0]);
  assert.deepEqual(Array.from(await x.mul(0).data()), [0, 0, 0]);
  assert.ok(Array.from(await x.add(NaN).data()).every(Number.isNaN));
});

Deno.test("a cached constant that was disposed is replaced, and results stay right", async () => {
  await setBackend("cpu");
  // grad of a function that ignores its scalar input is a scalar zero constant: the caller owns it.
  const g = grad((_a: Tensor, b: Tensor) => b.sum())(tensor(3), tensor([1, 2])) as Tensor;
  assert.deepEqual(Array.from(await g.data()), [0]);
  g.dispose();
  const again = scalarLike(0);
  assert.ok(!again.disposed, "a fresh constant");
  assert.deepEqual(Array.from(await tensor([4, 5]).mul(0).add(7).data()), [7, 7]);
});
