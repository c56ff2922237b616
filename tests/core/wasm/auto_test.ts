// "auto" picks Wasm SIMD over a software WebGPU adapter (and where there is none), saying why; the
// adapter is only asked for its description, so no device is opened for the choice.

import { isSoftwareAdapter, setBackend } from "../../../core/backend.ts";

function fakeGpu(info: Partial<GPUAdapterInfo> | null): void {
  const api = {
    requestAdapter: () => Promise.resolve(info === null ? null : { info, requestDevice: () => Promise.reject("no") }),
  };
  Object.defineProperty(navigator, "gpu", { value: api, configurable: true });
}

Deno.test("auto picks Wasm when the only adapter is a software one, and names it in the reason", async () => {
  for (
    const info of [{ description: "llvmpipe (LLVM 15.0.6, 256 bits)" }, {
      vendor: "google",
      architecture: "swiftshader",
    }, { description: "x", isFallbackAdapter: true }]
  ) {
    fakeGpu(info);
    try {
      const chosen = await setBackend("auto");
      if (chosen.name !== "wasm" || !chosen.reason.includes("software")) {
        throw new Error(`${JSON.stringify(info)}: chose ${chosen.name} (${chosen.reason})`);
      }
      const named = info.description ?? info.architecture!;
      if (!chosen.reason.includes(named)) throw new Error(`the reason does not name ${named}: ${chosen.reason}`);
    } finally {
      delete (navigator as { gpu?: unknown }).gpu;
      await setBackend("cpu");
    }
  }
});

Deno.test("auto picks Wasm when there is no adapter, and says so", async () => {
  fakeGpu(null);
  try {
    const chosen = await setBackend("auto");
    if (chosen.name !== "wasm" || !chosen.reason.includes("no WebGPU adapter")) {
      throw new Error(`chose ${chosen.name} (${chosen.reason})`);
    }
  } finally {
    delete (navigator as { gpu?: unknown }).gpu;
    await setBackend("cpu");
  }
});

Deno.test("software adapters are told from hardware ones by their descriptions", () => {
  const soft = ["llvmpipe (LLVM 15.0.6, 256 bits)", "lavapipe", "Google SwiftShader", "Microsoft Basic Render Driver"];
  const hard = ["NVIDIA GeForce RTX 4090", "AMD Radeon Pro", "Apple M2", "Intel(R) Arc(tm)"];
  for (const d of soft) if (!isSoftwareAdapter(d)) throw new Error(`${d} should be software`);
  for (const d of hard) if (isSoftwareAdapter(d)) throw new Error(`${d} should be hardware`);
});
