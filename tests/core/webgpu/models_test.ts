// Gradients of small models agree between WebGPU and the CPU reference.

import { grad, normal, ops, randomKey, type Tensor, tensor, treeLeaves } from "../../../mod.ts";
import { assertClose } from "../../helpers.ts";
import { gpuTest, onBoth } from "./gpu.ts";

function attention(p: { wq: Tensor; wk: Tensor; wv: Tensor; wo: Tensor }, x: Tensor): Tensor {
  const [B, T, D] = x.shape, H = 2, dh = D / H;
  const heads = (t: Tensor) => t.reshape([B, T, H, dh]).permute([0, 2, 1, 3]);
  const q = heads(x.matmul(p.wq)), k = heads(x.matmul(p.wk)), v = heads(x.matmul(p.wv));
  const mask = ops.tril(ops.full([T, T], 1)).gt(0);
  const scores = mask.where(q.matmul(k.transpose()).mul(1 / Math.sqrt(dh)), -1e9);
  const o = ops.softmax(scores).matmul(v).permute([0, 2, 1, 3]).reshape([B, T, D]);
  return ops.rmsNorm(o.matmul(p.wo).add(x)).square().mean();
}

gpuTest("gradients of a small attention block agree across backends", async () => {
  const keys = [1, 2, 3, 4, 5].map(randomKey);
  const D = 12;
  const p = {
    wq: normal(keys[0], [D, D], { std: 0.3 }),
    wk: normal(keys[1], [D, D], { std: 0.3 }),
    wv: normal(keys[2], [D, D], { std: 0.3 }),
    wo: normal(keys[3], [D, D], { std: 0.3 }),
  };
  const x = normal(keys[4], [2, 7, D]);
  const { gpu, cpu } = await onBoth(() => [attention(p, x), ...treeLeaves(grad(attention)(p, x))]);
  // Both sides are f32; reductions sum in different orders, so allow ~1e-4 relative error.
  gpu.forEach((g, i) => assertClose(g, cpu[i], { rtol: 1e-3, atol: 1e-5, msg: `output ${i}` }));
});

gpuTest("gradients of a small MLP with an embedding agree across backends", async () => {
  const [k1, k2, k3] = [11, 12, 13].map(randomKey);
  const p = { emb: normal(k1, [10, 6]), w: normal(k2, [6, 5], { std: 0.5 }), b: normal(k3, [5]) };
  const ids = tensor([[1, 3, 3, 9], [0, 2, 9, 4]], { dtype: "i32" });
  const targets = tensor([[0, 1, 2, 3], [4, 0, 1, 2]], { dtype: "i32" });
  const f = (q: typeof p) => ops.crossEntropy(ops.silu(q.emb.gather(ids).matmul(q.w).add(q.b)), targets);
  const { gpu, cpu } = await onBoth(() => [f(p), ...treeLeaves(grad(f)(p))]);
  gpu.forEach((g, i) => assertClose(g, cpu[i], { rtol: 1e-3, atol: 1e-5, msg: `output ${i}` }));
});
