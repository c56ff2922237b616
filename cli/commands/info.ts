// `info`: the version, the runtime, the backend that would run and the WebGPU adapter with its limits.

import type { BackendName } from "../../mod.ts";
import { COMMON, int } from "../args.ts";
import { makeOut } from "../progress.ts";
import { defineCommand, startBackend, VERSION } from "../session.ts";
import { describeModel, MODEL_SOURCE, readModelConfig } from "../model.ts";
import { refuseIgnored } from "../options.ts";

const specs = {
  backend: COMMON.backend,
  config: COMMON.config,
  quiet: COMMON.quiet,
  ...MODEL_SOURCE,
  context: int(4096, "with --model: the context at which the decoding state is sized", { min: 1 }),
};

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
  summary: "show the version, the backend and the WebGPU adapter's limits, or what a --model needs",
  description: "Prints what jetfold would compute on here and why; useful before a long run or in a bug report.\n" +
    "With --model SOURCE (a Hugging Face directory or Hub repo id; only config.json and the tokenizer are\n" +
    "read or fetched) it also prints the model's architecture, layer types, parameters, the memory its\n" +
    "weights need and its decoding state at --context tokens.",
  specs,
  async prepare(o, given) {
    if (o.model === null) refuseIgnored(given, ["context"], "without --model");
    const model = o.model === null ? null : await readModelConfig(o.model, makeOut(o.quiet));
    return async () => {
      await show(o);
      if (model !== null) { for (const line of describeModel(model, o.context)) console.log(line); }
    };
  },
});

async function show(o: { backend: BackendName | null; quiet: boolean }): Promise<void> {
  const out = makeOut(o.quiet);
  console.log(
    `jetfold ${VERSION} on Deno ${Deno.version.deno} (V8 ${Deno.version.v8}), ${Deno.build.os}/${Deno.build.arch}, ` +
      `${navigator.hardwareConcurrency} CPU threads`,
  );
  console.log(`JETFOLD_BACKEND=${env("JETFOLD_BACKEND")}  DENO_WEBGPU_BACKEND=${env("DENO_WEBGPU_BACKEND")}`);
  const b = await startBackend({ ...out, quiet: true }, o.backend);
  const threads = b.threads > 1 ? `, on ${b.threads} threads` : "";
  console.log(`backend: ${b.name} (${b.reason}), f32 computed in ${b.precision}${threads}`);
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
