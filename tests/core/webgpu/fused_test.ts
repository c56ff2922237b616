// Fused kernels: softmax and logsumexp rows in one dispatch each, and matmul operands computed in its loads.

import { normal, ops, randomKey, readAll, realize, resetStats, setBackend, stats, type Tensor } from "../../../mod.ts";
import { assertClose } from "../../helpers.ts";
import { gpuTest, onBoth } from "./gpu.ts";

const SHAPES = [[5, 7], [3, 300], [2, 1, 1000], [4097, 3], [1, 64]];

gpuTest("softmax and logsumexp rows match the CPU for short and long rows", async () => {
  for (const [i, shape] of SHAPES.entries()) {
    const x = normal(randomKey(i), shape, { std: 3 });
    const { gpu, cpu } = await onBoth(() => [ops.softmax(x), ops.logsumexp(x, { axis: -1 }), ops.logSoftmax(x)]);
    // f32 exp/log on both sides, sums in different orders: ~1e-6 absolute on probabilities.
    gpu.forEach((g, j) => assertClose(g, cpu[j], { rtol: 1e-4, atol: 1e-5, msg: `shape [${shape}] output ${j}` }));
  }
});

gpuTest("softmax along a middle axis and masked rows match the CPU", async () => {
  const x = normal(randomKey(9), [3, 6, 4]);
  const { gpu, cpu } = await onBoth(() => {
    const masked = ops.tril(ops.full([6, 6], 1)).gt(0).where(
      x.slice([0, 0, 0], [1, 6, 4]).matmul(x.slice([1, 0, 0], [2, 6, 4]).transpose()),
      -Infinity,
    );
    return [ops.softmax(x, { axis: 1 }), ops.softmax(masked), ops.logsumexp(x, { axis: [0, 2] })];
  });
  gpu.forEach((g, j) => assertClose(g, cpu[j], { rtol: 1e-4, atol: 1e-5, msg: `output ${j}` }));
});

gpuTest("softmax of a realized tensor is one dispatch", async () => {
  await setBackend("webgpu");
  for (const shape of [[8, 16], [2, 512]]) {
    const x: Tensor = normal(randomKey(3), shape);
    await realize([x]);
    resetStats();
    await realize([ops.softmax(x.mul(0.5))]);
    const s = stats();
    if (s.dispatches !== 1) throw new Error(`softmax of [${shape}] took ${s.dispatches} dispatches`);
  }
});

// Dispatches and results of `make()` on WebGPU (its inputs realized first), and the CPU's results.
async function counted(inputs: readonly Tensor[], make: () => Tensor[]) {
  await setBackend("webgpu");
  await realize([...inputs]);
  await readAll(make()); // compiles
  resetStats();
  const gpu = await readAll(make());
  const dispatches = stats().dispatches;
  await setBackend("cpu");
  return { gpu, cpu: await readAll(make()), dispatches };
}

gpuTest("a norm's output is computed in the loads of the matmuls that use it, not in a kernel of its own", async () => {
  const x = normal(randomKey(20), [64, 32]), w1 = normal(randomKey(21), [32, 48]), w2 = normal(randomKey(22), [32, 16]);
  const g = normal(randomKey(23), [32]);
  const { gpu, cpu, dispatches } = await counted([x, w1, w2, g], () => {
    const a = ops.rmsNorm(x, { weight: g, eps: 1e-5 });
    return [a.matmul(w1), a.matmul(w2)];
  });
  // The mean of squares, then two matmuls that each compute x * rsqrt(.) * g as they load it (4
  // dispatches when the norm had a kernel).
  if (dispatches !== 3) throw new Error(`expected 3 dispatches, got ${dispatches}`);
  gpu.forEach((v, i) => assertClose(v, cpu[i], { rtol: 1e-4, atol: 1e-5, msg: `output ${i}` }));
});

gpuTest("prologues fuse through transposes, constants and both operands, and match the CPU", async () => {
  const x = normal(randomKey(24), [2, 24, 20]), y = normal(randomKey(25), [2, 24, 12]);
  const { gpu, cpu, dispatches } = await counted([x, y], () => [
    x.exp().transpose().matmul(y.mul(0.5).add(1)), // [2,20,12]: A = exp(x)^T, B = 0.5 y + 1
    ops.full([2, 20, 24], 2).matmul(y.neg()), // a constant operand and a negated one
  ]);
  if (dispatches !== 2) throw new Error(`expected 2 dispatches, got ${dispatches}`);
  gpu.forEach((v, i) => assertClose(v, cpu[i], { rtol: 1e-4, atol: 1e-5, msg: `output ${i}` }));
});

gpuTest("an operand that streams two buffers keeps a kernel of its own", async () => {
  const x = normal(randomKey(26), [16, 32]), y = normal(randomKey(27), [16, 32]), w = normal(randomKey(28), [32, 8]);
  const { gpu, cpu, dispatches } = await counted([x, y, w], () => [x.mul(y).matmul(w)]);
  // Each thread would load both x and y for every column block: more than writing x * y once.
  if (dispatches !== 2) throw new Error(`expected 2 dispatches, got ${dispatches}`);
  assertClose(gpu[0], cpu[0], { rtol: 1e-4, atol: 1e-5 });
});
