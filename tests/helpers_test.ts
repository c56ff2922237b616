// The test helpers' own guarantees: a backend chosen for one test never leaks into the next.

import { backendInfo, setBackend } from "../mod.ts";
import { assertThrowsMsg, HAS_ADAPTER, withBackend } from "./helpers.ts";

Deno.test("withBackend restores the backend and precision in use before, also when its body throws or the backend fails", async () => {
  await setBackend("cpu", { precision: "f64" });
  try {
    for (const backend of HAS_ADAPTER ? (["cpu", "webgpu"] as const) : (["cpu"] as const)) {
      const seen = await withBackend(backend, async () => (await backendInfo()).name);
      if (seen !== backend) throw new Error(`the body ran on ${seen}, not ${backend}`);
      await assertThrowsMsg(() =>
        withBackend(backend, () => {
          throw new Error("the body failed");
        }), "the body failed");
      const after = await backendInfo();
      if (after.name !== "cpu" || after.precision !== "f64") {
        throw new Error(`after ${backend}: ${after.name} ${after.precision}, expected cpu f64`);
      }
    }
    // A backend that fails to start (WebGPU has no f64) must not stay selected either.
    await assertThrowsMsg(() => withBackend("webgpu", async () => {}, { precision: "f64" }), "only on the CPU");
    const after = await backendInfo();
    if (after.name !== "cpu" || after.precision !== "f64") throw new Error(`after a failed start: ${after.name}`);
  } finally {
    await setBackend("cpu");
  }
});
