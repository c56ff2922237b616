// Acquiring the WebGPU adapter and device, and turning device errors into JS errors.

import { accurateTrig } from "./probe.ts";

/** The device and what kernels need to know about it. */
export interface Gpu {
  readonly device: GPUDevice;
  /** Adapter description, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)". */
  readonly description: string;
  /** True for software/fallback adapters such as Mesa's llvmpipe. */
  readonly fallback: boolean;
  /** Storage buffers one kernel may bind (inputs plus output). */
  readonly maxStorageBuffers: number;
  /** Largest storage buffer binding in bytes. */
  readonly maxBindingSize: number;
  /** Invocations one workgroup may have (the device's limit, also along x). */
  readonly maxWorkgroupSize: number;
  /** Workgroups one dispatch may have along each dimension. */
  readonly maxWorkgroupsPerDimension: number;
  /** The device's sin and cos are accurate to about f32 (measured); else kernels bring their own. */
  readonly accurateTrig: boolean;
  /** The device was opened with `timestamp-query`: the profiler times each kernel on the device. */
  readonly timestamps: boolean;
  /** The device was opened with `subgroups`: kernels may use subgroup operations. */
  readonly subgroups: boolean;
  /** Set when the device is lost; every later use throws it. */
  lost: Error | null;
  /** The first asynchronous device error not yet reported to the user. */
  pending: Error | null;
}

let gpu: Promise<Gpu | null> | null = null;
let opened: Gpu | null = null;

function gpuApi(): GPU | undefined {
  return (globalThis.navigator as { gpu?: GPU } | undefined)?.gpu;
}

async function open(): Promise<Gpu | null> {
  const api = gpuApi();
  if (api === undefined) return null;
  const adapter = await api.requestAdapter({ powerPreference: "high-performance" });
  if (adapter === null) return null;
  const want = (name: keyof GPUSupportedLimits): number => adapter.limits[name] as number;
  // Only the profiler writes timestamps; asking for the feature costs nothing where it exists.
  const timestamps = adapter.features.has("timestamp-query");
  // Subgroup reductions are variants the tuner may choose, only where the adapter offers them.
  const subgroups = adapter.features.has("subgroups" as GPUFeatureName);
  const features: GPUFeatureName[] = [];
  if (timestamps) features.push("timestamp-query");
  if (subgroups) features.push("subgroups" as GPUFeatureName);
  const device = await adapter.requestDevice({
    requiredFeatures: features,
    requiredLimits: {
      maxStorageBuffersPerShaderStage: want("maxStorageBuffersPerShaderStage"),
      maxStorageBufferBindingSize: want("maxStorageBufferBindingSize"),
      maxBufferSize: want("maxBufferSize"),
      maxComputeWorkgroupStorageSize: want("maxComputeWorkgroupStorageSize"),
      maxComputeInvocationsPerWorkgroup: want("maxComputeInvocationsPerWorkgroup"),
      maxComputeWorkgroupSizeX: want("maxComputeWorkgroupSizeX"),
    },
  });
  const info: Partial<GPUAdapterInfo> = adapter.info ?? {};
  const limits = device.limits;
  const g: Gpu = {
    device,
    description: describe(info),
    fallback: Boolean(info.isFallbackAdapter ?? (adapter as { isFallbackAdapter?: boolean }).isFallbackAdapter),
    maxStorageBuffers: limits.maxStorageBuffersPerShaderStage,
    maxBindingSize: limits.maxStorageBufferBindingSize,
    maxWorkgroupSize: Math.min(limits.maxComputeInvocationsPerWorkgroup, limits.maxComputeWorkgroupSizeX),
    maxWorkgroupsPerDimension: limits.maxComputeWorkgroupsPerDimension,
    accurateTrig: await accurateTrig(device),
    timestamps,
    subgroups,
    lost: null,
    pending: null,
  };
  device.lost.then((e) => {
    g.lost = new Error(`WebGPU device lost (${e.reason}): ${e.message || "no details"}; call setBackend again`);
  });
  device.addEventListener("uncapturederror", (ev) => {
    g.pending ??= new Error(`WebGPU error: ${(ev as GPUUncapturedErrorEvent).error.message}`);
  });
  return g;
}

// Deno names the adapter in `description`; browsers may leave it empty (Chromium's SwiftShader
// gives vendor "google", architecture "swiftshader"), so the other fields name it there.
function describe(info: Partial<GPUAdapterInfo>): string {
  if (info.description) return info.description;
  const parts = [info.vendor, info.architecture, info.device].filter((p) => p && p !== "0");
  return parts.length > 0 ? parts.join(" ") : "unknown adapter";
}

/** The shared device, opened on first use (and again after it was lost); null when no adapter exists. */
export function requestGpu(): Promise<Gpu | null> {
  if (opened?.lost) [gpu, opened] = [null, null];
  gpu ??= open().then((g) => (opened = g)).catch((e) => {
    gpu = null;
    throw new Error(`WebGPU: requesting a device failed: ${e instanceof Error ? e.message : e}`);
  });
  return gpu;
}

/** Throws a lost-device or earlier asynchronous error, once. */
export function checkHealth(g: Gpu): void {
  if (g.lost) throw g.lost;
  const e = g.pending;
  if (e) {
    g.pending = null;
    throw e;
  }
}

/**
 * Runs `fn` inside validation and out-of-memory error scopes; returns its result and a promise of
 * the first error (or null) once the device has checked, which also becomes the pending error.
 */
export function scopedCheck<T>(g: Gpu, what: string, fn: () => T): [T, Promise<Error | null>] {
  g.device.pushErrorScope("out-of-memory");
  g.device.pushErrorScope("validation");
  let out: T;
  try {
    out = fn();
  } catch (e) {
    g.device.popErrorScope().catch(() => {});
    g.device.popErrorScope().catch(() => {});
    throw e;
  }
  const note = (kind: string) => (e: GPUError | null) => {
    if (e === null) return null;
    const err = new Error(`WebGPU ${kind} error in ${what}: ${e.message}`);
    g.pending ??= err;
    return err;
  };
  const validation = g.device.popErrorScope().then(note("validation"));
  const memory = g.device.popErrorScope().then(note("out-of-memory"));
  return [out, Promise.all([validation, memory]).then(([a, b]) => a ?? b)];
}
