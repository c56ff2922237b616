// Compiling kernels into pipelines, with the adapter's own compiler messages as the error.

import { liveStats } from "../stats.ts";
import type { Gpu } from "./device.ts";
import type { KernelPlan } from "./plan.ts";

// One kernel being compiled: its module, its pipeline (pending), and the errors of creating the module.
interface Compiling {
  readonly kernel: KernelPlan;
  readonly module: GPUShaderModule;
  readonly pipeline: Promise<GPUComputePipeline>;
  readonly moduleError: Promise<GPUError | null>;
}

/**
 * Creates the pipelines of the kernels whose WGSL is not in `cache` yet, all at once (drivers may
 * compile them in parallel), and waits for them. A kernel that does not compile rejects here, in
 * the realization that needed it, with the compiler's messages and the kernel's ops and shapes:
 * left to the device's error reporting, the root cause surfaces one realization late, and the
 * kernels after it only say that they are "invalid due to a previous error".
 */
export async function compileKernels(
  gpu: Gpu,
  kernels: readonly KernelPlan[],
  cache: Map<string, GPUComputePipeline>,
): Promise<void> {
  const fresh = new Map<string, KernelPlan>();
  for (const k of kernels) if (k.threads > 0 && !cache.has(k.wgsl)) fresh.set(k.wgsl, k);
  if (fresh.size === 0) return;
  const device = gpu.device;
  const started: Compiling[] = [...fresh.values()].map((kernel) => {
    device.pushErrorScope("internal");
    device.pushErrorScope("validation");
    const module = device.createShaderModule({ code: kernel.wgsl, label: kernel.label });
    const validation = device.popErrorScope();
    const internal = device.popErrorScope();
    liveStats.shaderModules++;
    const pipeline = device.createComputePipelineAsync({
      label: kernel.label,
      layout: "auto",
      compute: { module, entryPoint: "main" },
    });
    pipeline.catch(() => {}); // reported below, with the module's messages
    const moduleError = Promise.all([validation, internal]).then(([a, b]) => a ?? b);
    return { kernel, module, pipeline, moduleError };
  });
  const failures: Error[] = [];
  for (const c of started) {
    try {
      cache.set(c.kernel.wgsl, await c.pipeline);
      liveStats.pipelines++;
    } catch (e) {
      failures.push(await compileError(gpu, c, e as Error));
    }
  }
  if (failures.length === 1) throw failures[0];
  if (failures.length > 1) {
    const first = failures[0];
    throw new Error(`${first.message}\n(and ${failures.length - 1} more kernels of this realization fail)`, {
      cause: first,
    });
  }
}

// The first error the compiler reported for the module (with its line), else the pipeline's own error.
async function compileError(gpu: Gpu, c: Compiling, pipelineError: Error): Promise<Error> {
  const what = `webgpu: the kernel for ${c.kernel.label} does not compile on this adapter (${gpu.description})`;
  const lines = c.kernel.wgsl.split("\n");
  let messages: readonly GPUCompilationMessage[] = [];
  try {
    messages = (await c.module.getCompilationInfo()).messages.filter((m) => m.type === "error");
  } catch {
    // Some implementations lack getCompilationInfo; the error scope below still names the cause.
  }
  if (messages.length > 0) {
    const shown = messages.slice(0, 3).map((m) => {
      const text = m.message.trim().split("\n")[0];
      const source = m.lineNum > 0 ? `\n    ${lines[m.lineNum - 1]?.trim() ?? ""}` : "";
      return `  line ${m.lineNum}:${m.linePos}: ${text}${source}`;
    });
    return new Error(`${what}:\n${shown.join("\n")}`, { cause: pipelineError });
  }
  const scoped = await c.moduleError;
  const message = (scoped?.message ?? pipelineError.message).trim();
  return new Error(`${what}: ${message}`, { cause: pipelineError });
}
