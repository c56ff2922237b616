// Every composite op on WebGPU against the CPU reference, on random shapes and values.

import fc from "fast-check";
import { normal, ops, randint, randomKey, type Tensor, tensor } from "../../../mod.ts";
import { assertClose } from "../../helpers.ts";
import { gpuTest, onBoth } from "./gpu.ts";

// Each case builds its outputs from a random f32 tensor `x` of the drawn shape (rank >= 1).
const CASES: Record<string, (x: Tensor) => Tensor[]> = {
  softmax: (x) => [ops.softmax(x), ops.softmax(x, { axis: 0 })],
  logSoftmax: (x) => [ops.logSoftmax(x)],
  logsumexp: (x) => [ops.logsumexp(x, { axis: -1 }), ops.logsumexp(x)],
  crossEntropy: (x) => {
    const n = x.shape[x.ndim - 1];
    const t = randint(randomKey(x.size), x.shape.slice(0, -1), { maxval: n });
    return [ops.crossEntropy(x, t), ops.crossEntropy(x, t, { reduction: "none" })];
  },
  activations: (x) => [ops.sigmoid(x), ops.silu(x), ops.gelu(x), ops.relu(x), ops.softplus(x), ops.elu(x), ops.abs(x)],
  arithmetic: (x) => [ops.clip(x, -0.5, 0.7), ops.minimum(x, 0.2), ops.rsqrt(x.square().add(1)), ops.square(x)],
  norms: (x) => {
    const n = x.shape[x.ndim - 1], firstRow = x.reshape([-1, n]).slice([0, 0], [1, n]).reshape([n]);
    return [ops.rmsNorm(x), ops.layerNorm(x, { weight: firstRow.add(1) }), ops.l2Normalize(x)];
  },
  reductions: (
    x,
  ) => [
    ops.mean(x, { axis: -1 }),
    ops.variance(x),
    ops.max(x, { axis: 0 }),
    ops.min(x),
    ops.sum(x, { axis: -1, keepdims: true }),
  ],
  argmax: (x) => [ops.argmax(x), ops.argmax(x, { axis: 0 })],
  cumsum: (x) => [ops.cumsum(x), ops.cumsum(x, { axis: 0, reverse: true })],
  masks: (x) => (x.ndim >= 2 ? [ops.tril(x), ops.triu(x, { k: 1 })] : [ops.tril(x.expandDims(0))]),
  joins: (x) => [ops.concat([x, x.mul(2)], { axis: -1 }), ops.stack([x, x.neg()], { axis: 0 })],
  creation: (
    x,
  ) => [
    ops.oneHot(ops.argmax(x), x.shape[x.ndim - 1]),
    ops.arange(0, x.size, { dtype: "i32" }),
    ops.arange(1, 3, { step: 0.3 }),
  ],
};

const shapes = fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 1, maxLength: 3 });

for (const [name, build] of Object.entries(CASES)) {
  gpuTest(`${name} on WebGPU matches the CPU reference on random shapes`, async () => {
    await fc.assert(
      fc.asyncProperty(shapes, fc.nat(1000), async (shape, seed) => {
        const x = normal(randomKey(seed), shape, { std: 2 });
        const { gpu, cpu } = await onBoth(() => build(x));
        // f32 on both sides; transcendental functions and summation order differ slightly.
        gpu.forEach((g, i) => assertClose(g, cpu[i], { rtol: 1e-4, atol: 2e-5, msg: `${name}[${i}] [${shape}]` }));
      }),
      { numRuns: 8 },
    );
  });
}

gpuTest("integer and boolean tensors round-trip and compute on WebGPU", async () => {
  const { gpu, cpu } = await onBoth(() => {
    const a = tensor([[5, -7, 0], [2147483647, -2147483648, 3]], { dtype: "i32" });
    const b = tensor([[2, 3, -1], [1, 1, 2]], { dtype: "i32" });
    return [
      a.add(b),
      a.mul(b),
      a.div(b),
      a.maximum(b),
      a.lt(b),
      a.eq(b).logicalNot(),
      a.cast("f32"),
      a.gt(0).where(a, b),
    ];
  });
  gpu.forEach((g, i) => assertClose(g, cpu[i], { rtol: 0, atol: 0, msg: `output ${i}` }));
});
