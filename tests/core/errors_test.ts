// Every user error names its problem: the op, the shapes, the axis, the argument, or how to fix it.

import { type BackendName, grad, ops, setBackend, type Tensor, tensor, treeFlatten, vjp, zeros } from "../../mod.ts";
import assert from "node:assert/strict";
import { assertThrowsMsg } from "../helpers.ts";

// Errors raised while realizing are the CPU backend's (the WebGPU backend cannot throw from a kernel).
await setBackend("cpu");

const i32 = (data: number[]) => tensor(data, { dtype: "i32" });

// ---- Shapes and axes -------------------------------------------------------------------------------

Deno.test("add names the op, both shapes and the axis when shapes do not broadcast", async () => {
  await assertThrowsMsg(() => zeros([2, 3]).add(zeros([4])), "add:", "[2, 3]", "[4]", "axis -1", "sizes 3 and 4");
  await assertThrowsMsg(() => zeros([2, 3]).add(zeros([3, 3])), "add:", "[2, 3]", "[3, 3]", "axis -2", "2 and 3");
  await assertThrowsMsg(() => zeros([2]).mul(zeros([3])), "mul:", "[2]", "[3]", "axis -1");
});

Deno.test("sum rejects an axis out of range and a repeated axis", async () => {
  await assertThrowsMsg(() => zeros([2, 3]).sum({ axis: 2 }), "sum:", "axis 2", "out of range", "rank 2");
  await assertThrowsMsg(() => zeros([2, 3]).sum({ axis: -3 }), "sum:", "axis -3", "rank 2");
  await assertThrowsMsg(() => zeros([2, 3]).sum({ axis: [0, -2] }), "sum:", "repeated axis", "[0,-2]");
});

Deno.test("permute rejects an axis out of range and a list that is not a permutation", async () => {
  await assertThrowsMsg(() => zeros([2, 3]).permute([0, 5]), "permute:", "axis 5", "rank 2");
  await assertThrowsMsg(() => zeros([2, 3]).permute([0, 0]), "permute:", "[0,0]", "not a permutation", "[2, 3]");
  await assertThrowsMsg(() => zeros([2, 3]).permute([1]), "permute:", "[1]", "not a permutation", "[2, 3]");
});

Deno.test("cumsum rejects an axis out of range", async () => {
  await assertThrowsMsg(() => zeros([2, 3]).cumsum(2), "cumsum:", "axis 2", "rank 2");
  await assertThrowsMsg(() => zeros([]).cumsum(0), "cumsum:", "axis 0", "rank 0");
});

Deno.test("gather rejects an axis out of range and indices that are not i32", async () => {
  await assertThrowsMsg(() => zeros([2, 3]).gather(i32([0]), 2), "gather:", "axis 2", "rank 2");
  await assertThrowsMsg(() => zeros([2, 3]).gather(tensor([0]), 0), "gather:", "indices must be i32", "f32");
});

Deno.test("reshape names both shapes and the element count when sizes differ", async () => {
  await assertThrowsMsg(() => zeros([2, 3]).reshape([4]), "reshape:", "[2, 3]", "6 elements", "[4]");
  await assertThrowsMsg(() => zeros([2, 3]).reshape([-1, -1]), "reshape:", "[2, 3]", "[-1, -1]");
  await assertThrowsMsg(() => zeros([2, 3]).reshape([4, -1]), "reshape:", "[2, 3]", "[4, -1]");
});

Deno.test("broadcastTo names both shapes and the axis that does not fit", async () => {
  await assertThrowsMsg(
    () => zeros([2, 3]).broadcastTo([4, 3]),
    "broadcastTo:",
    "[2, 3]",
    "[4, 3]",
    "axis 0",
    "size 2",
  );
  await assertThrowsMsg(() => zeros([2, 3]).broadcastTo([2, 5]), "broadcastTo:", "axis 1", "size 3");
  await assertThrowsMsg(() => zeros([2, 3]).broadcastTo([3]), "broadcastTo:", "[2, 3]", "[3]", "fewer axes");
  await assertThrowsMsg(() => zeros([1, 1]).broadcastTo([]), "broadcastTo:", "[1, 1]", "[]", "fewer axes");
});

Deno.test("concat rejects mismatched dtypes, shapes off the axis, and an axis out of range", async () => {
  await assertThrowsMsg(() => ops.concat([tensor([1, 2]), i32([1, 2])]), "concat:", "i32 [2]", "f32 [2]");
  await assertThrowsMsg(
    () => ops.concat([zeros([2, 3]), zeros([2, 4])], { axis: 0 }),
    "concat:",
    "[2, 4]",
    "[2, 3]",
    "off axis 0",
  );
  await assertThrowsMsg(() => ops.concat([zeros([2, 3]), zeros([2, 3])], { axis: 2 }), "concat:", "axis 2", "rank 2");
  await assertThrowsMsg(() => ops.concat([]), "concat:", "at least one tensor");
});

Deno.test("pad rejects negative widths, naming them and the shape", async () => {
  await assertThrowsMsg(() => zeros([2, 3]).pad([[-1, 0]]), "pad:", "[-1,0]", "non-negative", "[2, 3]");
  await assertThrowsMsg(() => zeros([2, 3]).pad([[0, 0], [0, -2]]), "pad:", "[0,-2]", "non-negative");
});

Deno.test("slice rejects non-integer indices", async () => {
  await assertThrowsMsg(() => zeros([3]).slice([0.5]), "slice:", "index 0.5", "not an integer");
});

Deno.test("max over an empty axis is refused because max has no identity", async () => {
  await assertThrowsMsg(() => zeros([0, 3]).max({ axis: 0 }), "max:", "axis 0", "[0, 3]", "empty", "no identity");
  await assertThrowsMsg(() => zeros([2, 0]).max(), "max:", "axis 1", "[2, 0]", "empty");
  await assertThrowsMsg(() => zeros([2, 0]).min({ axis: -1 }), "max:", "axis 1", "[2, 0]", "empty");
});

Deno.test("softmax and logsumexp reject an axis out of range", async () => {
  await assertThrowsMsg(() => ops.softmax(zeros([2, 3]), { axis: 3 }), "softmax:", "axis 3", "rank 2");
  await assertThrowsMsg(() => ops.logsumexp(zeros([2, 3]), { axis: 3 }), "logsumexp:", "axis 3", "rank 2");
});

// ---- Dtypes ----------------------------------------------------------------------------------------

Deno.test("float-only ops on i32 tensors ask for f32, naming the op and the shape", async () => {
  await assertThrowsMsg(() => i32([1, 2, 3]).exp(), "exp:", "f32", "got i32", "[3]", "cast");
  await assertThrowsMsg(() => i32([4]).sqrt(), "sqrt:", "got i32");
  await assertThrowsMsg(
    () => tensor([[1, 2]], { dtype: "i32" }).matmul(tensor([[1], [2]], { dtype: "i32" })),
    "matmul:",
    "expected f32",
    "i32",
    "[1, 2]",
  );
  await assertThrowsMsg(() => i32([1]).pow(2), "pow:", "i32", "expected f32");
  await assertThrowsMsg(() => ops.softmax(i32([1, 2])), "softmax:", "expected f32", "i32");
});

Deno.test("bool tensors cannot be reduced or cumulatively summed; the error says to cast", async () => {
  await assertThrowsMsg(() => tensor([true, false]).sum(), "sum:", "bool", "cannot be reduced", "cast");
  await assertThrowsMsg(() => tensor([true, false]).max(), "max:", "bool", "cannot be reduced");
  await assertThrowsMsg(() => tensor([true, false]).cumsum(0), "cumsum:", "bool", "cast");
});

Deno.test("binary ops refuse operands of different dtypes and comparisons refuse bool", async () => {
  await assertThrowsMsg(() => tensor([1]).add(i32([1])), "add:", "dtypes differ", "f32 [1]", "i32 [1]", "cast");
  await assertThrowsMsg(() => tensor([true]).lt(tensor([false])), "lt:", "bool", "expected f32 or i32");
});

Deno.test("where needs a bool condition", async () => {
  await assertThrowsMsg(() => tensor([1, 0]).where(1, 2), "where:", "condition must be bool", "f32");
});

// ---- Matmul ------------------------------------------------------------------------------------------

Deno.test("matmul names both shapes and the contracted sizes when inner sizes differ", async () => {
  await assertThrowsMsg(() => zeros([2, 3]).matmul(zeros([4, 5])), "matmul:", "[2, 3]", "[4, 5]", "3 with 4");
  await assertThrowsMsg(() => zeros([3]).matmul(zeros([4])), "matmul:", "[3]", "[4]", "3 with 4");
});

Deno.test("matmul names both shapes when batch axes do not broadcast, and refuses scalars", async () => {
  await assertThrowsMsg(
    () => zeros([2, 4, 3]).matmul(zeros([3, 3, 5])),
    "matmul",
    "[2, 4, 3]",
    "[3, 3, 5]",
    "do not broadcast",
    "sizes 2 and 3",
  );
  await assertThrowsMsg(() => zeros([]).matmul(zeros([3])), "matmul:", "at least one axis", "[]", "[3]");
});

// ---- Autodiff and pytrees ---------------------------------------------------------------------------

Deno.test("grad of a non-scalar output says to reduce it first", async () => {
  await assertThrowsMsg(
    () => grad((x: Tensor) => x.mul(2))(tensor([1, 2, 3])),
    "grad:",
    "f32 scalar",
    "shape [3]",
    ".sum()",
  );
  await assertThrowsMsg(() => grad((x: Tensor) => x.sum().lt(1))(tensor([1])), "grad:", "f32 scalar", "bool");
  await assertThrowsMsg(() => grad((_x: Tensor) => 3)(tensor([1])), "grad:", "non-tensor value");
});

Deno.test("grad with respect to an i32 input names the argument as the caller numbers it", async () => {
  const f = (x: Tensor, ids: Tensor) => x.sum().add(ids.cast("f32").sum());
  await assertThrowsMsg(
    () => grad(f, { argnums: 1 })(tensor([1]), i32([1])),
    "grad:",
    "argument 1",
    "i32",
    "only f32 inputs can be differentiated",
  );
  await assertThrowsMsg(() => grad((x: Tensor) => x.sum())(i32([1, 2])), "grad:", "argument 0", "i32", "[2]");
  await assertThrowsMsg(() => grad((x: Tensor) => x.sum(), { argnums: 2 })(tensor([1])), "grad:", "argnums 2");
});

Deno.test("grad with hasAux needs f to return [loss, aux]", async () => {
  await assertThrowsMsg(() => grad((x: Tensor) => x.sum(), { hasAux: true })(tensor([1])), "grad:", "[loss, aux]");
});

Deno.test("treeFlatten names the path of a leaf that is not a tensor", async () => {
  await assertThrowsMsg(() => treeFlatten({ a: 3 }), "treeFlatten:", "must be tensors", ".a", "number 3");
  await assertThrowsMsg(() => treeFlatten({ w: [tensor(1), "x"] }), "treeFlatten:", ".w[1]", "string x");
  await assertThrowsMsg(() => grad((p: { a: Tensor }) => p.a)({ a: 3 } as never), "grad:", ".a", "number 3");
});

Deno.test("a vjp cotangent must match the output's shape, dtype and structure", async () => {
  const [, back] = vjp((x: Tensor) => x.mul(2), tensor([1, 2, 3]));
  await assertThrowsMsg(() => back(tensor([1, 2])), "vjp:", "cotangent 0", "f32 [2]", "output is f32 [3]");
  await assertThrowsMsg(() => back(i32([1, 2, 3])), "vjp:", "cotangent 0", "i32 [3]", "f32 [3]");
  const [, back2] = vjp((x: Tensor) => [x, x], tensor([1, 2, 3]));
  await assertThrowsMsg(() => back2(tensor([1, 2, 3]) as never), "vjp:", "structure differs");
});

// ---- Realization and tensors --------------------------------------------------------------------------

Deno.test("gather with an out-of-range index given as data fails when built, naming index, axis and size", async () => {
  const x = zeros([3, 2]);
  await assertThrowsMsg(() => x.gather(i32([0, 3])), "gather:", "index 3", "axis 0", "size 3", "[3, 2]");
  await assertThrowsMsg(() => x.gather(i32([-1]), 1), "gather:", "index -1", "axis 1", "size 2");
  await assertThrowsMsg(
    () => ops.crossEntropy(zeros([2, 4]), i32([1, 4])),
    "crossEntropy:",
    "index 4",
    "4 classes",
  );
});

Deno.test("computed out-of-range indices are clamped, and gather's gradient goes to the clamped rows", async () => {
  const x = tensor([[1, 2], [3, 4], [5, 6]]);
  const idx = i32([5, -2, 1]).add(0); // computed: not known when the graph is built
  assert.deepEqual(await x.gather(idx).array(), [[5, 6], [1, 2], [3, 4]]);
  const g = grad((t: Tensor) => t.gather(idx).sum())(x);
  assert.deepEqual(await g.array(), [[1, 1], [1, 1], [1, 1]]); // rows 2, 0 and 1, once each
});

Deno.test("slice follows NumPy: bounds are clipped and an end before its start is empty", async () => {
  const x = tensor([1, 2, 3]);
  assert.deepEqual(x.slice([2], [1]).shape, [0]);
  assert.deepEqual(await x.slice([-5], [10]).array(), [1, 2, 3]);
  assert.deepEqual(await x.slice([-1]).array(), [3]);
});

Deno.test("integer tensors refuse non-integer values, NaN and values beyond i32", async () => {
  await assertThrowsMsg(() => tensor([1.5], { dtype: "i32" }), "tensor:", "element 0", "1.5", "i32");
  await assertThrowsMsg(() => tensor([1, NaN], { dtype: "i32" }), "element 1", "NaN");
  await assertThrowsMsg(() => tensor([2 ** 31], { dtype: "i32" }), "element 0", "2147483648");
  assert.deepEqual(await tensor([-3, 7], { dtype: "i32" }).array(), [-3, 7]);
});

Deno.test("argmax follows NumPy on NaN: the first NaN of a row is its maximum", async () => {
  const x = tensor([[1, NaN, 3, NaN], [0, 2, 1, 2]]);
  assert.deepEqual(await ops.argmax(x).array(), [1, 1]);
});

Deno.test("using or reading a disposed tensor fails, naming its shape", async () => {
  const read = tensor([[1, 2, 3], [4, 5, 6]]);
  read.dispose();
  await assertThrowsMsg(() => read.data(), "realize:", "was disposed");
  const used = tensor([1, 2, 3]);
  used.dispose();
  await assertThrowsMsg(() => used.exp(), "exp:", "input tensor of shape [3] was disposed");
  const source = tensor([1, 2, 3]), pending = source.exp();
  source.dispose();
  await assertThrowsMsg(() => pending.data(), "realize:", "input tensor", "[3]", "was disposed");
});

Deno.test("item() needs exactly one element", async () => {
  await assertThrowsMsg(() => tensor([1, 2, 3]).item(), "item:", "[3]", "3 elements, not 1");
});

Deno.test("tensor() rejects ragged nested arrays, naming the depth", async () => {
  await assertThrowsMsg(() => tensor([[1, 2], [3]]), "tensor:", "ragged", "length 2 at depth 1", "got length 1");
  await assertThrowsMsg(() => tensor([[1, 2], 3] as never), "tensor:", "ragged", "depth 1", "number 3");
  await assertThrowsMsg(() => tensor([1, [2]] as never), "tensor:", "ragged", "a number at depth 1", "an array");
});

Deno.test("tensor() rejects data that does not fill the shape, and bad shapes and dtypes", async () => {
  await assertThrowsMsg(
    () => tensor([1, 2, 3, 4, 5], { shape: [2, 3] }),
    "tensor:",
    "5 values",
    "[2, 3]",
    "6 elements",
  );
  await assertThrowsMsg(() => tensor([1], { shape: [-1] }), "tensor:", "non-negative integers", "[-1]");
  await assertThrowsMsg(() => tensor([1], { dtype: "f16" as never }), "tensor:", 'unknown dtype "f16"');
  await assertThrowsMsg(() => tensor({} as never), "tensor:", "expected a number", "Object");
});

// ---- Backends ------------------------------------------------------------------------------------------

Deno.test("setBackend rejects an unknown backend name and precision", async () => {
  await assertThrowsMsg(() => setBackend("tpu" as BackendName), "setBackend:", 'unknown backend "tpu"', '"cpu"');
  await assertThrowsMsg(() => setBackend("cpu", { precision: "f16" as never }), "setBackend:", "precision", '"f16"');
  await assertThrowsMsg(() => setBackend("webgpu", { precision: "f64" }), "setBackend:", '"f64"', "only on the CPU");
  await setBackend("cpu");
});

Deno.test({
  name: 'setBackend("webgpu") without an adapter says how to fall back; "auto" falls back to Wasm by itself',
  // Simulates a machine without WebGPU: the device module sees no navigator.gpu. The outcome is cached
  // for this test file's isolate, which uses no GPU elsewhere.
  async fn() {
    Object.defineProperty(navigator, "gpu", { value: undefined, configurable: true });
    try {
      await assertThrowsMsg(
        () => setBackend("webgpu"),
        "setBackend:",
        "no WebGPU adapter is available",
        "mesa-vulkan-drivers",
        'setBackend("cpu")',
      );
      const info = await setBackend("auto"); // Wasm SIMD where the runtime has it, as Deno does
      if (info.name !== "wasm" || !info.reason.includes("no WebGPU adapter")) {
        throw new Error(`auto without an adapter chose ${info.name} (${info.reason})`);
      }
    } finally {
      delete (navigator as { gpu?: unknown }).gpu;
      await setBackend("cpu");
    }
  },
});

Deno.test("cast to an unknown dtype and repeated argnums are rejected by name", async () => {
  const { grad, tensor } = await import("../../mod.ts");
  // deno-lint-ignore no-explicit-any
  await assertThrowsMsg(() => tensor([1.5]).cast("f64" as any), "cast", "unknown dtype", '"f64"');
  await assertThrowsMsg(() => grad((x) => x.sum(), { argnums: [0, 0] })(tensor([1])), "argnums [0,0] repeats");
});
