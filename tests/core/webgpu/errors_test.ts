// Device errors name their root cause: the compiler's message for a kernel, the first validation error of a
// submit, the limit a kernel exceeds.

import { tensor } from "../../../mod.ts";
import { leafNode } from "../../../core/graph.ts";
import { requestGpu } from "../../../core/webgpu/device.ts";
import { WebGpuRunner } from "../../../core/webgpu/run.ts";
import { assertThrowsMsg } from "../../helpers.ts";
import { checkCompileError, checkValidationError, MISTYPED } from "./error_checks.ts";
import { gpuTest } from "./gpu.ts";

gpuTest("a kernel that does not compile fails with its ops, shapes and the compiler's message", async () => {
  await checkCompileError(MISTYPED, "let a: f32 = 1u;");
});

gpuTest("a rejected submit fails with its kernels and the device's first message", async () => {
  await checkValidationError();
});

gpuTest(
  "a kernel with wider workgroups than the adapter allows fails with a sentence before anything runs",
  async () => {
    const runner = new WebGpuRunner({ ...(await requestGpu())!, maxWorkgroupSize: 32 });
    const n = tensor([1, 2, 3]).add(1).node, leaf = leafNode(n.shape, n.dtype);
    await assertThrowsMsg(
      () => runner.realize([n], [leaf], [leaf]),
      "the kernel for add [3] uses workgroups of 64 invocations, above this adapter's 32",
    );
  },
);
