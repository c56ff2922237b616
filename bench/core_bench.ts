// CPU-backend benchmarks for `deno bench`: matmul, an elementwise chain, and grad of a small MLP.
//
// Each iteration builds a fresh lazy graph over realized inputs and reads the result, so a time
// covers graph building, realization and the copy out. For matmul, GFLOP/s = 2 n^3 / time:
// the names carry the FLOP count to make that division easy. The iteration counts are fixed and
// small so the whole file runs in a few seconds on a 2-core machine.

import {
  grad,
  normal,
  ops,
  randint,
  randomKey,
  realize,
  setBackend,
  splitKey,
  type Tensor,
  treeLeaves,
} from "../mod.ts";

setBackend("cpu");

const keys = splitKey(randomKey(0), 8);

function matmulBench(n: number): void {
  const a = normal(keys[0], [n, n]), b = normal(keys[1], [n, n]);
  const mflop = (2 * n ** 3) / 1e6;
  Deno.bench({
    name: `matmul ${n}x${n} @ ${n}x${n} (${mflop.toFixed(1)} MFLOP)`,
    group: "matmul",
    n: n <= 128 ? 50 : 10,
    warmup: 2,
    fn: async () => {
      await a.matmul(b).data();
    },
  });
}

matmulBench(128);
matmulBench(256);

// Five elementwise ops that a fusing backend would run as one kernel.
const x = normal(keys[2], [1 << 20]);
Deno.bench({
  name: "elementwise chain, 5 ops on 1M f32",
  n: 10,
  warmup: 1,
  fn: async () => {
    await x.mul(1.5).add(0.25).tanh().mul(x).sub(0.5).data();
  },
});

// A two-layer MLP classifier: 64 inputs, 128 hidden units, 10 classes, batch 32.
interface Mlp {
  readonly w1: Tensor;
  readonly b1: Tensor;
  readonly w2: Tensor;
  readonly b2: Tensor;
}

const params: Mlp = {
  w1: normal(keys[3], [64, 128], { std: 0.1 }),
  b1: ops.zeros([128]),
  w2: normal(keys[4], [128, 10], { std: 0.1 }),
  b2: ops.zeros([10]),
};
const inputs = normal(keys[5], [32, 64]);
const targets = randint(keys[6], [32], { maxval: 10 });

function loss(p: Mlp, xs: Tensor, ys: Tensor): Tensor {
  const hidden = ops.relu(xs.matmul(p.w1).add(p.b1));
  return ops.crossEntropy(hidden.matmul(p.w2).add(p.b2), ys);
}

Deno.bench({
  name: "grad of a 64-128-10 MLP loss, batch 32",
  n: 50,
  warmup: 2,
  fn: async () => {
    await realize(treeLeaves(grad(loss)(params, inputs, targets)));
  },
});
