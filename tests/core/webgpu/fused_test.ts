// Fused kernels: softmax and logsumexp rows in one dispatch each, on short and long rows.

import { normal, ops, randomKey, realize, resetStats, setBackend, stats, type Tensor } from "../../../mod.ts";
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
