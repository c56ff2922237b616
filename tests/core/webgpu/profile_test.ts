// The profiler: what each submit ran (ops and shapes), timed per kernel or per submit, results unchanged.

import {
  formatProfile,
  grad,
  normal,
  ops,
  profileKernels,
  type ProfileRecord,
  randomKey,
  realize,
  resetStats,
  setBackend,
  stats,
  tensor,
  treeLeaves,
  treeMap,
} from "../../../mod.ts";
import { leafNode } from "../../../core/graph.ts";
import { requestGpu } from "../../../core/webgpu/device.ts";
import { WebGpuRunner } from "../../../core/webgpu/run.ts";
import { assertClose } from "../../helpers.ts";
import { gpuTest } from "./gpu.ts";

gpuTest("a profile names each kernel by its ops and shapes and times it where the adapter has timestamps", async () => {
  await setBackend("webgpu");
  const a = normal(randomKey(1), [64, 32]), b = normal(randomKey(2), [32, 48]);
  await realize([a, b]);
  const f = () => a.matmul(b).exp().sum({ axis: 1 }).data();
  const plain = await f();
  resetStats();
  const p = await profileKernels(f);
  assertClose(p.result, plain, { rtol: 0, atol: 0 });
  if (p.submits.length !== 1) throw new Error(`expected one submit, got ${p.submits.length}`);
  const [s] = p.submits;
  if (s.kernels.length !== stats().dispatches) {
    throw new Error(`${s.kernels.length} kernels, ${stats().dispatches} dispatches`);
  }
  const labels = s.kernels.map((k) => k.label);
  if (!labels.includes("matmul [64,48]") || !labels.includes("sum [64]")) throw new Error(`labels: ${labels}`);
  const sum = s.kernels.find((k) => k.label === "sum [64]")!;
  if (!sum.ops.includes("exp")) throw new Error(`the sum kernel should say it fuses exp: ${sum.ops}`);
  if (JSON.stringify(sum.inputs) !== "[[64,48]]") throw new Error(`the sum kernel reads ${JSON.stringify(sum.inputs)}`);
  const gpu = await requestGpu();
  if (gpu!.timestamps) {
    if (p.method !== "timestamps" || s.gpuMs === null || s.gpuMs.length !== s.kernels.length) {
      throw new Error(`expected per-kernel timestamps: ${JSON.stringify(p)}`);
    }
    if (!s.gpuMs.every((ms) => ms >= 0 && ms < 60_000)) throw new Error(`kernel times: ${s.gpuMs}`);
  }
  const text = formatProfile(p);
  for (const want of ["matmul [64,48]", "sum [64] (thread wg 64; fuses exp) <- [64,48]", "1 submits, 2 kernels"]) {
    if (!text.includes(want)) throw new Error(`the table lacks ${JSON.stringify(want)}:\n${text}`);
  }
});

gpuTest("without timestamp queries the profiler reports each submit's wall time and its kernels", async () => {
  const runner = new WebGpuRunner({ ...(await requestGpu())!, timestamps: false });
  const records: ProfileRecord[] = [];
  runner.profileInto(records);
  const x = tensor([1, 2, 3, 4]);
  const nodes = [x.exp().node, x.sum().node];
  const leaves = nodes.map((n) => leafNode(n.shape, n.dtype));
  const [e, s] = await runner.realize(nodes, leaves, leaves);
  runner.profileInto(null);
  assertClose(e, [1, 2, 3, 4].map(Math.exp), { rtol: 1e-6 });
  assertClose(s, [10], { rtol: 0 });
  if (records.length !== 1 || records[0].gpuMs !== null || !(records[0].wallMs > 0)) {
    throw new Error(`expected one submit timed by the wall: ${JSON.stringify(records)}`);
  }
  const text = formatProfile({ result: null, adapter: runner.adapter, method: "wall", submits: records });
  if (!text.includes("wall time per submit") || !text.includes("exp [4]")) throw new Error(text);
});

gpuTest("a profiled training step runs the same kernels and gives the same parameters", async () => {
  await setBackend("webgpu");
  const xs = normal(randomKey(3), [16, 8]), ys = tensor(Int32Array.from({ length: 16 }, (_, i) => i % 4));
  const p0 = { w1: normal(randomKey(4), [8, 16], { std: 0.3 }), w2: normal(randomKey(5), [16, 4], { std: 0.3 }) };
  const loss = (p: typeof p0) => ops.crossEntropy(ops.gelu(xs.matmul(p.w1)).matmul(p.w2), ys);
  const step = () => treeMap((w, g) => w.sub(g.mul(0.1)), p0, grad(loss)(p0));
  await realize(treeLeaves(p0));
  await realize(treeLeaves(step())); // compiles
  resetStats();
  const plain = step();
  await realize(treeLeaves(plain));
  const dispatches = stats().dispatches;
  const profiled = await profileKernels(async () => {
    const next = step();
    await realize(treeLeaves(next));
    return next;
  });
  const kernels = profiled.submits.reduce((n, s) => n + s.kernels.length, 0);
  if (kernels !== dispatches) throw new Error(`profiled ${kernels} kernels, the step dispatches ${dispatches}`);
  for (const k of ["w1", "w2"] as const) {
    assertClose(await profiled.result[k].data(), await plain[k].data(), { rtol: 0, atol: 0, msg: k });
  }
  // Profiling ended with the call: later realizations are not recorded.
  await realize([xs.add(1)]);
  if (profiled.submits.length !== 1) throw new Error(`${profiled.submits.length} submits recorded`);
});
