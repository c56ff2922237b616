// Long loops and non-finite values: WebGPU must agree with the CPU where adapters cap loop lengths
// (llvmpipe stops an invocation after 65535 iterations) and where compilers fold NaN checks away.

import { grad, normal, ops, randint, randomKey, type Tensor, tensor } from "../../../mod.ts";
import { assertClose } from "../../helpers.ts";
import { gpuTest, onBoth } from "./gpu.ts";

gpuTest("reductions, scans, contractions and gathers longer than one invocation's loop budget are exact", async () => {
  const { gpu, cpu } = await onBoth(() => {
    const emb = normal(randomKey(0), [10, 4]), idx = randint(randomKey(1), [70000], { maxval: 10 });
    return [
      tensor(new Float32Array(5e6).fill(1)).sum(),
      ops.full([8, 70000], 1).sum({ axis: 1 }),
      tensor(new Float32Array(5e6).fill(-3)).max(),
      ops.full([70000], 1).cumsum(0),
      ops.full([3, 70000], 1).cumsum(1, { reverse: true }),
      grad((e: Tensor) => e.gather(idx).sum())(emb),
      ops.full([2, 140000], 1).matmul(ops.full([140000, 3], 0.5)),
    ];
  });
  // Counts of ones: exact in f32 on both sides.
  gpu.forEach((g, i) => assertClose(g, cpu[i], { rtol: 0, atol: 0, msg: `output ${i}` }));
  assertClose(gpu[0], [5e6], { rtol: 0, atol: 0 });
});

gpuTest(
  "NaN and infinities propagate through max, tanh, sigmoid, clip, logsumexp and cross entropy as on the CPU",
  async () => {
    const { gpu, cpu } = await onBoth(() => {
      const x = tensor([NaN, 1, 2]);
      return [
        x.max(),
        x.tanh(),
        ops.sigmoid(x),
        ops.clip(x, -1, 1),
        x.maximum(0),
        ops.logsumexp(x),
        ops.logsumexp(tensor([Infinity, Infinity])),
        ops.logsumexp(tensor([-Infinity, -Infinity])),
        ops.crossEntropy(tensor([[NaN, 1, 2]]), tensor([2], { dtype: "i32" })),
        ops.softmax(x),
        x.ge(1),
        x.le(1),
        x.ne(x),
      ];
    });
    gpu.forEach((g, i) => assertClose(g, cpu[i], { rtol: 1e-6, atol: 1e-6, msg: `output ${i}` }));
    if (!Number.isNaN(gpu[0][0]) || !Number.isNaN(gpu[8][0])) throw new Error("NaN was dropped on WebGPU");
  },
);
