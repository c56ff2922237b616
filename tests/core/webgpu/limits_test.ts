// Adapter limits: kernels stay within the storage-binding limit, and oversized buffers fail clearly.

import { normal, ops, randomKey, readAll, realize, setBackend, type Tensor, tensor } from "../../../mod.ts";
import { planKernels } from "../../../core/webgpu/plan.ts";
import { requestGpu } from "../../../core/webgpu/device.ts";
import { assertClose, assertThrowsMsg } from "../../helpers.ts";
import { gpuTest } from "./gpu.ts";
import { openWebGpu } from "../../../core/webgpu/mod.ts";
import type { WebGpuRunner } from "../../../core/webgpu/run.ts";

// Destroys the device buffer behind a realized tensor, as a device-side failure would.
async function destroyBuffer(x: Tensor): Promise<void> {
  const runner = (await openWebGpu()) as WebGpuRunner;
  runner.buffer(x.node).destroy();
}

gpuTest("a sum of more buffers than a kernel may bind is split and still correct", async () => {
  await setBackend("webgpu");
  const gpu = (await requestGpu())!;
  const n = gpu.maxStorageBuffers + 6;
  const xs: Tensor[] = Array.from({ length: n }, (_, i) => normal(randomKey(i), [5, 3]));
  await realize(xs);
  const total = () => xs.reduce((acc, x, i) => acc.add(x.mul(i + 1)), tensor(0));
  const kernels = planKernels([total().node], gpu.maxStorageBuffers);
  for (const k of kernels) {
    if (k.inputs.length + 1 > gpu.maxStorageBuffers) throw new Error(`a kernel binds ${k.inputs.length + 1} buffers`);
  }
  if (kernels.length < 2) throw new Error("expected the fused kernel to be split");
  const [got] = await readAll([total()]);
  const host = await Promise.all(xs.map((x) => x.data()));
  const want = Array.from({ length: 15 }, (_, j) => host.reduce((acc, h, i) => acc + h[j] * (i + 1), 0));
  assertClose(got, want, { rtol: 1e-5, atol: 1e-5 });
});

gpuTest("a tensor above the binding size limit fails with a sentence, not a device error", async () => {
  await setBackend("webgpu");
  const gpu = (await requestGpu())!;
  const n = Math.floor(gpu.maxBindingSize / 4) + 1024;
  // A fused reduction would never materialize it, so ask for the big tensor itself.
  await assertThrowsMsg(() => ops.full([n], 1).add(1).data(), "binding limit", `[${n}]`);
  // The device is still usable afterwards.
  assertClose(await tensor([1, 2]).add(1).data(), [2, 3]);
});

gpuTest("results of a submit the device rejected are never read back as data", async () => {
  await setBackend("webgpu");
  const x = normal(randomKey(80), [4, 4]).add(1);
  await realize([x]);
  await destroyBuffer(x); // simulate a device-side failure: the next submit is invalid
  const y = x.mul(2);
  await assertThrowsMsg(() => y.data(), "WebGPU");
  await assertThrowsMsg(() => y.data(), "never computed");
  await assertThrowsMsg(() => y.add(1).data(), "never computed");
  assertClose(await tensor([1, 2]).add(1).data(), [2, 3]); // the device itself still works
});

gpuTest("a rejected submit's error names the kernels' ops and shapes", async () => {
  await setBackend("webgpu");
  const x = normal(randomKey(81), [3, 5]).add(1);
  await realize([x]);
  await destroyBuffer(x);
  await assertThrowsMsg(() => x.exp().sum({ axis: 0 }).data(), "a realization of 1 kernels", "sum [5]");
});
