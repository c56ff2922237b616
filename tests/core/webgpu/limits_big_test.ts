// Long loops and non-finite values: WebGPU must agree with the CPU where adapters cap loop lengths
// (llvmpipe stops an invocation after 65535 iterations) and where compilers fold NaN checks away.

import {
  gatedDeltaRuleFused,
  grad,
  normal,
  ops,
  randint,
  randomKey,
  type Tensor,
  tensor,
  uniform,
} from "../../../mod.ts";
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

gpuTest(
  "the fused delta-rule scan longer than one invocation's loop budget is split in time, values and gradients",
  async () => {
    // T (2K + 3) + K + 2 = 6500 * 11 + 6 loop steps: above the 60000 one scan invocation may run here,
    // so WebGPU runs it as two segments; the CPU reference runs it whole.
    const [B, H, T, K, V] = [1, 2, 6500, 4, 3];
    const key = (i: number) => randomKey(300 + i);
    const q = normal(key(0), [B, H, T, K]), k = ops.l2Normalize(normal(key(1), [B, H, T, K]));
    const v = normal(key(2), [B, H, T, V]), s0 = normal(key(5), [B, H, K, V]);
    const g = uniform(key(3), [B, H, T], { minval: -0.2, maxval: 0 });
    const beta = uniform(key(4), [B, H, T], { minval: 0.05, maxval: 1 });
    const ro = normal(key(6), [B, H, T, V]);
    const { gpu, cpu } = await onBoth(() => {
      const r = gatedDeltaRuleFused(q, k, v, g, beta, { initialState: s0 });
      const loss = (kk: Tensor, vv: Tensor, gg: Tensor, bb: Tensor, ss: Tensor) =>
        gatedDeltaRuleFused(q, kk, vv, gg, bb, { initialState: ss }).out.mul(ro).sum();
      return [r.out, r.state, ...grad(loss, { argnums: [0, 1, 2, 3, 4] })(k, v, g, beta, s0)];
    });
    gpu.forEach((x, i) => assertClose(x, cpu[i], { rtol: 1e-3, atol: 2e-4, msg: `output ${i}` }));
  },
);

gpuTest(
  "computed out-of-range indices and NaN rows give the same gathers, gradients and argmax as on the CPU",
  async () => {
    const { gpu, cpu } = await onBoth(() => {
      const x = tensor([[1, 2], [3, 4], [5, 6]]);
      const idx = tensor([5, -2, 1, 2], { dtype: "i32" }).add(0); // computed, so clamped, not checked
      return [
        x.gather(idx),
        grad((t: Tensor) => t.gather(idx).mul(tensor([[1, 2]])).sum())(x),
        ops.argmax(tensor([[1, NaN, 3, NaN], [0, 2, 1, 2]])),
      ];
    });
    gpu.forEach((g, i) => assertClose(g, cpu[i], { rtol: 0, atol: 0, msg: `output ${i}` }));
    assertClose(cpu[0], [5, 6, 1, 2, 3, 4, 5, 6], { rtol: 0, atol: 0 });
    assertClose(cpu[2], [1, 1], { rtol: 0, atol: 0 });
  },
);
