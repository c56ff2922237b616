// Device work counters: submits, readbacks, compiled programs and pool bytes are deterministic.

import {
  grad,
  normal,
  ops,
  randomKey,
  readAll,
  realize,
  resetStats,
  setBackend,
  stats,
  type Tensor,
  tensor,
  treeDispose,
  treeLeaves,
  treeMap,
} from "../../../mod.ts";
import { assertClose } from "../../helpers.ts";
import { gpuTest } from "./gpu.ts";

type Mlp = { w1: Tensor; b1: Tensor; w2: Tensor };

function mlpParams(seed: number): Mlp {
  const [k1, k2] = [randomKey(seed), randomKey(seed + 1)];
  return {
    w1: normal(k1, [8, 16], { std: 0.3 }),
    b1: tensor(new Float32Array(16)),
    w2: normal(k2, [16, 4], { std: 0.3 }),
  };
}

const xs = normal(randomKey(99), [32, 8]);
const ys = tensor(Int32Array.from({ length: 32 }, (_, i) => i % 4));

function loss(p: Mlp): Tensor {
  return ops.crossEntropy(ops.gelu(xs.matmul(p.w1).add(p.b1)).matmul(p.w2), ys);
}

function sgd(p: Mlp): [Mlp, Tensor] {
  const l = loss(p);
  const g = grad(loss)(p);
  return [treeMap((w, dw) => w.sub(dw.mul(0.1)), p, g), l];
}

gpuTest("one realization is one submit and one readback", async () => {
  await setBackend("webgpu");
  const x = normal(randomKey(1), [33, 7]);
  await realize([x]);
  resetStats();
  const y = ops.softmax(x.exp().add(1)).sum({ axis: 0 });
  await y.data();
  const s = stats();
  if (s.submits !== 1 || s.readbacks !== 1) {
    throw new Error(`expected 1 submit and 1 readback, got ${JSON.stringify(s)}`);
  }
  if (s.dispatches < 1) throw new Error("expected at least one dispatch");
});

gpuTest("reading two tensors together costs one submit", async () => {
  await setBackend("webgpu");
  const x = normal(randomKey(2), [16, 16]);
  await realize([x]);
  resetStats();
  await readAll([x.sum(), x.matmul(x).max()]);
  const s = stats();
  if (s.submits !== 1 || s.readbacks !== 1) {
    throw new Error(`expected 1 submit and 1 readback, got ${JSON.stringify(s)}`);
  }
});

gpuTest("realize without reading does no readback", async () => {
  await setBackend("webgpu");
  resetStats();
  await realize([normal(randomKey(3), [4, 4]).exp()]);
  const s = stats();
  if (s.submits !== 1 || s.readbacks !== 0) {
    throw new Error(`expected 1 submit and no readback, got ${JSON.stringify(s)}`);
  }
});

gpuTest("a second identical training step compiles nothing new", async () => {
  await setBackend("webgpu");
  let p = mlpParams(10);
  [p] = sgd(p);
  await realize(treeLeaves(p));
  resetStats();
  [p] = sgd(p);
  await realize(treeLeaves(p));
  const s = stats();
  if (s.shaderModules !== 0 || s.pipelines !== 0) {
    throw new Error(`second step created ${s.shaderModules} shader modules and ${s.pipelines} pipelines`);
  }
  if (s.submits !== 1) throw new Error(`expected one submit for the step, got ${s.submits}`);
});

gpuTest("a repeated training step creates no pipeline and no bind group, and binds what it bound before", async () => {
  await setBackend("webgpu");
  let p = mlpParams(11);
  await realize(treeLeaves(p));
  const perStep: { dispatches: number; bindGroups: number; pipelines: number; shaderModules: number }[] = [];
  for (let step = 0; step < 5; step++) {
    resetStats();
    const [next] = sgd(p);
    await realize(treeLeaves(next));
    treeDispose(p); // the step's inputs go back to the pool: the next step but one gets their buffers
    p = next;
    const { dispatches, bindGroups, pipelines, shaderModules } = stats();
    perStep.push({ dispatches, bindGroups, pipelines, shaderModules });
  }
  const [first, , , fourth, fifth] = perStep;
  // The first step binds new parameters' buffers (the plan may be cached by an earlier test); once
  // they have cycled (the step's inputs and outputs alternate between two sets), every bind group is
  // reused.
  if (first.bindGroups === 0) throw new Error(`the first step created no bind group: ${JSON.stringify(first)}`);
  for (const s of [fourth, fifth]) {
    if (s.bindGroups !== 0 || s.pipelines !== 0 || s.shaderModules !== 0 || s.dispatches !== first.dispatches) {
      throw new Error(`a repeated step prepared work on the host: ${JSON.stringify(perStep)}`);
    }
  }
});

gpuTest("a 20-step loop reading the loss every 10 steps does 2 readbacks and holds steady memory", async () => {
  await setBackend("webgpu");
  let p = mlpParams(20);
  await realize(treeLeaves(p));
  resetStats();
  const losses: number[] = [];
  let bytesAt10 = -1;
  for (let step = 1; step <= 20; step++) {
    const [next, l] = sgd(p);
    await realize([...treeLeaves(next), l]);
    treeDispose(p);
    p = next;
    if (step % 10 === 0) losses.push(await l.item());
    l.dispose();
    if (step === 10) bytesAt10 = stats().bytesInUse;
  }
  const s = stats();
  if (s.readbacks !== 2) throw new Error(`expected 2 readbacks, got ${s.readbacks}`);
  // Only growth is a leak: earlier tests' garbage may be collected (and its buffers released) meanwhile.
  if (s.bytesInUse > bytesAt10) throw new Error(`bytesInUse grew from ${bytesAt10} to ${s.bytesInUse}`);
  if (!(losses[1] < losses[0])) throw new Error(`loss did not fall: ${losses}`);
});

gpuTest("the same training steps give the same losses on WebGPU and the CPU", async () => {
  const run = async () => {
    let p = mlpParams(30);
    const out: number[] = [];
    for (let i = 0; i < 3; i++) {
      const [next, l] = sgd(p);
      const [lv] = await readAll([l, ...treeLeaves(next)]);
      out.push(lv[0]);
      p = next;
    }
    return out;
  };
  await setBackend("webgpu");
  const gpu = await run();
  await setBackend("cpu");
  const cpu = await run();
  // f32 on both sides with different summation orders: agreement to ~1e-5 relative.
  assertClose(gpu, cpu, { rtol: 1e-4, atol: 1e-5 });
});

gpuTest("graphs that differ only in scalar constants reuse one program and keep their own values", async () => {
  await setBackend("webgpu");
  const x = normal(randomKey(40), [6, 5]);
  await realize([x]);
  const f = (c: number) => ops.softmax(x.mul(c).add(c / 2)).sum({ axis: 0 }).mul(c);
  const first = await f(2).data();
  resetStats();
  const second = await f(3).data();
  const s = stats();
  if (s.shaderModules !== 0 || s.pipelines !== 0) throw new Error(`recompiled: ${JSON.stringify(s)}`);
  await setBackend("cpu");
  assertClose(first, await f(2).data(), { rtol: 1e-5, atol: 1e-6 });
  assertClose(second, await f(3).data(), { rtol: 1e-5, atol: 1e-6 });
});

gpuTest("an AdamW update writes each leaf's param and moments from one kernel", async () => {
  const { adamw } = await import("../../../mod.ts");
  await setBackend("webgpu");
  const p = { a: normal(randomKey(50), [8, 8]), b: normal(randomKey(51), [16]), c: normal(randomKey(52), [3, 5]) };
  const g = { a: normal(randomKey(53), [8, 8]), b: normal(randomKey(54), [16]), c: normal(randomKey(55), [3, 5]) };
  const opt = adamw({ lr: 0.01 });
  const s0 = opt.init(p);
  await realize(treeLeaves([p, g, s0]));
  resetStats();
  const { params, state } = opt.update(g, s0, p);
  await realize(treeLeaves([params, state]));
  const leaves = 3;
  // One kernel per leaf (param, first and second moment together) and one for the step count.
  if (stats().dispatches !== leaves + 1) {
    throw new Error(`expected ${leaves + 1} dispatches, got ${stats().dispatches}`);
  }
  const gpu = await readAll(treeLeaves([params, state]));
  await setBackend("cpu");
  const cpu = await readAll(treeLeaves(opt.update(g, s0, p)));
  gpu.forEach((x, i) => assertClose(x, cpu[i], { rtol: 1e-5, atol: 1e-6, msg: `leaf ${i}` }));
});

gpuTest("AdamW updates of parameters of one shape, scheduled apart, share one kernel", async () => {
  const { adamw } = await import("../../../mod.ts");
  await setBackend("webgpu");
  // Three layers of one shape: each update waits for its own gradient, so they are far apart in the
  // schedule, and each reads four buffers and writes three.
  const xs = normal(randomKey(70), [32, 16]), ys = tensor(Int32Array.from({ length: 32 }, (_, i) => i % 16));
  const p = {
    a: normal(randomKey(71), [16, 16]),
    b: normal(randomKey(72), [16, 16]),
    c: normal(randomKey(73), [16, 16]),
  };
  const f = (q: typeof p) => ops.crossEntropy(ops.gelu(ops.gelu(xs.matmul(q.a)).matmul(q.b)).matmul(q.c), ys);
  // A first Adam step divides each gradient by its own size: eps keeps tiny gradients, whose
  // direction f32 rounding decides, from dominating the comparison with the CPU.
  const opt = adamw({ lr: 0.01, eps: 1e-3 });
  const step = (q: typeof p, s: ReturnType<typeof opt.init>) => opt.update(grad(f)(q), s, q);
  const s0 = opt.init(p);
  await realize(treeLeaves([p, s0]));
  resetStats();
  const { profileKernels } = await import("../../../mod.ts");
  const { result: { params, state }, submits } = await profileKernels(async () => {
    const next = step(p, s0);
    await realize(treeLeaves(next));
    return next;
  });
  // One kernel writes all nine [16,16] outputs (three params, three first and three second moments).
  const labels = submits[0].kernels.map((k) => k.label);
  if (!labels.some((l) => l.split(" + ").filter((o) => o.endsWith(" [16,16]")).length === 9)) {
    throw new Error(`no kernel updates all three parameters: ${labels.join("; ")}`);
  }
  // 18 dispatches when only consecutive elementwise kernels were grouped.
  if (stats().dispatches !== 15) throw new Error(`expected 15 dispatches, got ${stats().dispatches}`);
  const gpu = await readAll(treeLeaves([params, state]));
  await setBackend("cpu");
  const cpu = await readAll(treeLeaves(step(p, s0)));
  gpu.forEach((x, i) => assertClose(x, cpu[i], { rtol: 1e-4, atol: 1e-6, msg: `leaf ${i}` }));
});

gpuTest("reading the same tensor twice in one call realizes it once and gives it one buffer", async () => {
  await setBackend("webgpu");
  const x = normal(randomKey(60), [5, 5]);
  await x.neg().data(); // uploads x
  const y = x.exp().add(1);
  resetStats();
  const [a, b] = await readAll([y, y]);
  assertClose(a, b, { rtol: 0, atol: 0 });
  const { dispatches, readbacks } = stats();
  if (dispatches !== 1 || readbacks !== 1) throw new Error(`${dispatches} dispatches, ${readbacks} readbacks`);
  // Collected tensors of earlier tests may release buffers at any await, so measure the release
  // itself, synchronously: y owns exactly one buffer (25 floats, size class 128 bytes).
  const held = stats().bytesInUse;
  y.dispose();
  if (held - stats().bytesInUse !== 128) throw new Error(`dispose freed ${held - stats().bytesInUse} bytes, not 128`);
});
