// Tests of the graph under the tensors: frozen nodes, storage outside the Tensor, float64 reads,
// and the capabilities each backend reports.

import { backendInfo, readAll, realize, setBackend, tensor } from "../../mod.ts";
import { isPending, resolve } from "../../core/graph.ts";
import { hostValue } from "../../core/storage.ts";
import { assertClose, assertThrowsMsg, inF64 } from "../helpers.ts";
import { gpuTest } from "./webgpu/gpu.ts";

function assert(ok: boolean, msg: string): void {
  if (!ok) throw new Error(msg);
}

Deno.test("graph nodes are frozen, and a tensor's value lives in storage keyed by its leaf", async () => {
  const x = tensor([1, 2, 3]);
  const y = x.mul(2);
  const pending = y.node;
  assert(Object.isFrozen(pending) && Object.isFrozen(y.shape), "a node or a tensor's shape can be changed");
  assert(pending.op === "mul" && pending.src[0] === x.node, "the node does not record its inputs");
  assert(!Object.keys(y).some((k) => k.startsWith("_")), "the tensor carries hidden state fields");
  await realize([y]);
  // The handle moved to a data leaf holding the value; the pending node resolves to that leaf.
  assert(y.node.op === "data" && y.node !== pending, "the realized tensor still points at its computation");
  assert(resolve(pending) === y.node && !isPending(pending), "the computed node does not resolve to its leaf");
  assertClose(Array.from(hostValue(y.node)!), [2, 4, 6]);
  assert(pending.op === "mul", "realizing changed the frozen node");
  // Its params record too: plan caches key on it by identity.
  const r = x.reshape([3, 1]).node;
  assert(Object.isFrozen(r.params), "a node's params can be changed");
  let threw = false;
  try {
    (r.params as { shape: number[] }).shape = [1, 3];
  } catch (e) {
    threw = e instanceof TypeError;
  }
  assert(threw, "assigning to a node's params did not throw");
});

Deno.test("graphs built before a tensor was realized reuse its value, and fail once it is disposed", async () => {
  const x = tensor([1, 2, 3]);
  const y = x.add(1);
  const z = y.mul(10); // built while y was pending
  assertClose(await y.data(), [2, 3, 4]);
  assertClose(await z.data(), [20, 30, 40]);
  const w = y.sub(1);
  y.dispose();
  await assertThrowsMsg(() => w.data(), "realize:", "input tensor", "[3]", "was disposed");
  await assertThrowsMsg(() => y.data(), "realize:", "was disposed");
});

Deno.test("on the float64 CPU backend data, item, array and readAll return float64 values", async () => {
  await inF64(async () => {
    const third = tensor([1]).div(3);
    const d = await third.data();
    assert(d instanceof Float64Array, `data() gave a ${d.constructor.name}`);
    assert(d[0] === 1 / 3, `1/3 read as ${d[0]}`);
    assert((await third.item()) === 1 / 3, "item() rounded");
    assert((await third.reshape([1, 1]).array() as number[][])[0][0] === 1 / 3, "array() rounded");
    const [a, b] = await readAll([third, tensor([2], { dtype: "i32" })]);
    assert(a instanceof Float64Array && b instanceof Int32Array, "readAll gave the wrong array types");
    // Float64Array inputs stay exact.
    const exact = tensor(Float64Array.of(0.1, 0.2)).sum();
    assert((await exact.item()) === 0.1 + 0.2, `0.1 + 0.2 read as ${await exact.item()}`);
  });
  // The f32 backend reads f32 and rounds float64 inputs on use.
  const d = await tensor(Float64Array.of(0.1, 0.2)).sum().data();
  assert(d instanceof Float32Array && d[0] === Math.fround(Math.fround(0.1) + Math.fround(0.2)), `f32 sum ${d[0]}`);
});

Deno.test("the reference backend reports no kernel limits and both precisions", async () => {
  const cpu = await setBackend("cpu");
  assert(cpu.capabilities.maxLoop === Infinity && cpu.capabilities.maxKernelBuffers === Infinity, "cpu limits");
  assert(cpu.capabilities.precisions.includes("f64"), "cpu lacks f64");
});

gpuTest("the WebGPU backend reports its adapter's binding limits and its loop budget", async () => {
  try {
    const gpu = await setBackend("webgpu");
    const { maxKernelBuffers, maxLoop, maxBufferBytes, precisions } = gpu.capabilities;
    assert(maxKernelBuffers >= 8 && maxLoop === 65535 && maxBufferBytes >= 2 ** 27, "webgpu limits");
    assert(precisions.length === 1 && precisions[0] === "f32", "webgpu precisions");
  } finally {
    await setBackend("cpu");
  }
  assert((await backendInfo()).name === "cpu", "the backend was not restored");
});
