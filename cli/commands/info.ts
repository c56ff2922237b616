// `info`: the version, the runtime, the backend that would run and the WebGPU adapter with its limits.

import type { BackendName } from "../../mod.ts";
import { COMMON } from "../args.ts";
import { makeOut } from "../progress.ts";
import { defineCommand, startBackend, VERSION } from "../session.ts";

const specs = { backend: COMMON.backend, config: COMMON.config, quiet: COMMON.quiet };

const LIMITS = [
  "maxStorageBufferBindingSize",
  "maxBufferSize",
  "maxStorageBuffersPerShaderStage",
  "maxComputeWorkgroupStorageSize",
  "maxComputeInvocationsPerWorkgroup",
  "maxComputeWorkgroupSizeX",
  "maxComputeWorkgroupsPerDimension",
] as const;

function env(name: string): string {
  try {
    return Deno.env.get(name) ?? "(unset)";
  } catch {
    return "(no env permission)";
  }
}

/** The info command. */
export const info = defineCommand({
  name: "info",
  summary: "show the version, the backend that runs and the WebGPU adapter's limits",
  description: "Prints what jetfold would compute on here and why; useful before a long run or in a bug report.",
  specs,
  prepare: (o) => () => show(o),
});

async function show(o: { backend: BackendName | null; quiet: boolean }): Promise<void> {
  const out = makeOut(o.quiet);
  console.log(
    `jetfold ${VERSION} on Deno ${Deno.version.deno} (V8 ${Deno.version.v8}), ${Deno.build.os}/${Deno.build.arch}, ` +
      `${navigator.hardwareConcurrency} CPU threads`,
  );
  console.log(`JETFOLD_BACKEND=${env("JETFOLD_BACKEND")}  DENO_WEBGPU_BACKEND=${env("DENO_WEBGPU_BACKEND")}`);
  const b = await startBackend({ ...out, quiet: true }, o.backend);
  console.log(`backend: ${b.name} (${b.reason}), f32 computed in ${b.precision}`);
  const c = b.capabilities, f = (v: number) => v.toLocaleString("en-US");
  const limits = [
    Number.isFinite(c.maxKernelBuffers) ? `${f(c.maxKernelBuffers)} buffers` : "",
    Number.isFinite(c.maxLoop) ? `${f(c.maxLoop)} loop steps` : "",
    Number.isFinite(c.maxBufferBytes) ? `${f(c.maxBufferBytes)} bytes a buffer` : "",
  ].filter((x) => x !== "");
  console.log(`  one kernel: ${limits.length ? limits.join(", ") : "no limits"}`);
  const gpu = (navigator as { gpu?: GPU }).gpu;
  const adapter = gpu ? await gpu.requestAdapter({ powerPreference: "high-performance" }) : null;
  if (adapter === null) {
    console.log("WebGPU adapter: none (the CPU or wasm backend runs everything)");
    return;
  }
  const a = adapter.info;
  const name = a.description || a.device || a.vendor;
  const fallback = (a as { isFallbackAdapter?: boolean }).isFallbackAdapter ?? b.fallbackAdapter;
  console.log(`WebGPU adapter: ${name || "unknown"}${fallback ? " (software/fallback)" : ""}`);
  console.log(`  features: ${[...adapter.features].sort().join(", ") || "none"}`);
  for (const k of LIMITS) console.log(`  ${k}: ${(adapter.limits[k] as number).toLocaleString("en-US")}`);
}
