// The WebGPU backend: fused WGSL kernels, one submit per realization, on the shared device.

import type { Backend } from "../backend.ts";
import { addStore } from "../storage.ts";
import { requestGpu } from "./device.ts";
import { WebGpuRunner } from "./run.ts";

let runner: WebGpuRunner | null = null; // kept across backend switches: its tensors stay readable

/** The WebGPU backend on the shared device; null when no adapter exists, an error when opening failed. */
export async function openWebGpu(): Promise<Backend | null> {
  const gpu = await requestGpu();
  if (gpu === null) return null;
  if (runner?.gpu !== gpu) { // a new device after a lost one
    runner = new WebGpuRunner(gpu);
    addStore(runner);
  }
  return runner;
}
