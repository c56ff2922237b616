// The kernels of the spec table, the models and PostNAS, planned for a small adapter (10 storage
// buffers per stage, as Chromium's SwiftShader has): within its limits, free of constant
// expressions that Tint rejects, and accepted by this adapter's compiler (Naga, under Deno).

import { requestGpu } from "../../../core/webgpu/device.ts";
import { type CorpusKernel, kernelCorpus } from "./corpus.ts";
import { gpuTest } from "./gpu.ts";

const LIMITS = { maxStorageBuffers: 10, maxBindingSize: 2 ** 30 };
const MAX_INVOCATIONS = 256; // the smallest maxComputeInvocationsPerWorkgroup an adapter may have

let corpus: Promise<CorpusKernel[]> | null = null;
const kernels = () => (corpus ??= kernelCorpus(LIMITS));

// f32 bit patterns that are infinite or NaN: exponent all ones.
const nonFinite = (bits: number) => ((bits >>> 23) & 0xff) === 0xff;

/** Constant expressions in `wgsl` that evaluate to an infinity or a NaN (Tint rejects those). */
export function nonFiniteConstants(wgsl: string): string[] {
  const found: string[] = [];
  for (const m of wgsl.matchAll(/bitcast<f32>\(\s*(0x[0-9a-f]+|\d+)u?\s*\)/gi)) {
    if (nonFinite(Number(m[1]))) found.push(m[0]);
  }
  for (const m of wgsl.matchAll(/(?<![\w.])((?:\d+\.\d*|\.\d+)(?:e[+-]?\d+)?|\d+e[+-]?\d+)f?(?![\w.])/gi)) {
    if (!Number.isFinite(Math.fround(Number(m[1])))) found.push(m[0]);
  }
  return found;
}

Deno.test("kernels planned for 10 storage buffers per stage bind at most 10 and fit 256 invocations", async () => {
  const all = await kernels();
  if (all.length < 500) throw new Error(`expected a corpus of several hundred kernels, got ${all.length}`);
  const wide: string[] = [];
  for (const k of all) {
    const storage = k.wgsl.match(/var<storage/g)?.length ?? 0;
    const size = Number(/@workgroup_size\((\d+)\)/.exec(k.wgsl)?.[1]);
    if (storage > LIMITS.maxStorageBuffers || !(size <= MAX_INVOCATIONS)) {
      wide.push(`${k.label}: ${storage} storage buffers, workgroups of ${size}`);
    }
  }
  if (wide.length > 0) throw new Error(`${wide.length} kernels exceed the limits:\n  ${wide.join("\n  ")}`);
});

Deno.test("no kernel has a constant expression that is infinite or NaN", async () => {
  const bad = (await kernels()).flatMap((k) => nonFiniteConstants(k.wgsl).map((c) => `${k.label}: ${c}`));
  if (bad.length > 0) throw new Error(`${bad.length} non-finite constants:\n  ${bad.slice(0, 10).join("\n  ")}`);
});

Deno.test("the non-finite constant check finds what Tint rejects and passes what it accepts", () => {
  const found = nonFiniteConstants(
    "let a = bitcast<f32>(0x7f800000u); let b = bitcast<f32>(0xff800000u); let c = 1e39; let d = 1.5e3;" +
      " let e = jf_f32bits(0x7fc00000u); let f = bitcast<f32>(0x3f800000u); let g = bitcast<f32>(w);",
  );
  if (JSON.stringify(found) !== JSON.stringify(["bitcast<f32>(0x7f800000u)", "bitcast<f32>(0xff800000u)", "1e39"])) {
    throw new Error(`found ${JSON.stringify(found)}`);
  }
});

gpuTest("every kernel of the corpus compiles with this adapter's shader compiler", async () => {
  const device = (await requestGpu())!.device;
  const failures: string[] = [];
  for (const k of await kernels()) {
    device.pushErrorScope("validation");
    const module = device.createShaderModule({ code: k.wgsl, label: k.label });
    const error = await device.popErrorScope();
    const messages = (await module.getCompilationInfo()).messages.filter((m) => m.type === "error");
    if (error || messages.length > 0) failures.push(`${k.label}: ${(messages[0]?.message ?? error?.message)?.trim()}`);
  }
  if (failures.length > 0) throw new Error(`${failures.length} kernels fail:\n  ${failures.slice(0, 5).join("\n  ")}`);
});
