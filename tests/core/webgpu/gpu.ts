// WebGPU test support: whether an adapter exists, and running one computation on both backends.

import { type HostArray, readAll, setBackend, type Tensor } from "../../../mod.ts";

async function probe(): Promise<boolean> {
  try {
    await setBackend("webgpu");
    return true;
  } catch {
    return false;
  } finally {
    await setBackend("cpu");
  }
}

/** True when a WebGPU adapter exists here (Mesa's software adapter counts). */
export const HAS_GPU: boolean = await probe();

/** Registers a test that runs only with an adapter; without one Deno lists it as ignored, by name. */
export function gpuTest(name: string, fn: () => Promise<void>): void {
  Deno.test({ name, ignore: !HAS_GPU, sanitizeResources: false, sanitizeOps: false, fn });
}

/** Builds and reads `make()` on WebGPU and on the CPU reference; returns both results. */
export async function onBoth(make: () => Tensor[]): Promise<{ gpu: HostArray[]; cpu: HostArray[] }> {
  await setBackend("webgpu");
  const gt = make();
  const gpu = await readAll(gt);
  await setBackend("cpu");
  const ct = make();
  const cpu = await readAll(ct);
  return { gpu, cpu };
}
