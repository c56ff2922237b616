// A lost device is reported, not hung on, and setBackend opens a new one.

import { backendInfo, setBackend, tensor } from "../../../mod.ts";
import { requestGpu } from "../../../core/webgpu/device.ts";
import { assertClose, assertThrowsMsg } from "../../helpers.ts";
import { gpuTest } from "./gpu.ts";

gpuTest("after the device is lost, computing says so, and setBackend starts over on a new device", async () => {
  await setBackend("webgpu");
  assertClose(await tensor([1, 2]).add(1).data(), [2, 3]);
  const gpu = (await requestGpu())!;
  gpu.device.destroy();
  await gpu.device.lost;
  await assertThrowsMsg(() => tensor([1, 2]).mul(3).data(), "device lost", "setBackend");
  await setBackend("webgpu");
  if ((await requestGpu()) === gpu) throw new Error("the lost device was reused");
  assertClose(await tensor([1, 2]).mul(3).data(), [3, 6]);
  if ((await backendInfo()).name !== "webgpu") throw new Error("expected the webgpu backend");
});
