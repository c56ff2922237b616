// Device errors that must name their root cause, checked the same way under Deno and in the
// browser suite's page (no Deno APIs here).

import { normal, randomKey, realize, setBackend, tensor } from "../../../mod.ts";
import { compileKernels } from "../../../core/webgpu/compile.ts";
import { openWebGpu } from "../../../core/webgpu/mod.ts";
import type { KernelPlan } from "../../../core/webgpu/plan.ts";
import type { WebGpuRunner } from "../../../core/webgpu/run.ts";
import { assertClose } from "../../numeric.ts";

/** WGSL that no compiler accepts: a u32 assigned to an f32. */
export const MISTYPED = "@compute @workgroup_size(64)\nfn main() {\n  let a: f32 = 1u;\n}";

/** WGSL that Naga accepts and Tint rejects: a constant expression that is infinite. */
export const INFINITE_CONSTANT = "@compute @workgroup_size(64)\nfn main() {\n  let a = bitcast<f32>(0x7f800000u);\n}";

async function runner(): Promise<WebGpuRunner> {
  await setBackend("webgpu");
  return (await openWebGpu()) as WebGpuRunner;
}

async function rejection(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error("expected a rejection");
}

function expectIn(message: string, fragments: readonly string[], absent: readonly string[]): void {
  for (const f of fragments) if (!message.includes(f)) throw new Error(`${JSON.stringify(message)} lacks ${f}`);
  for (const f of absent) if (message.includes(f)) throw new Error(`${JSON.stringify(message)} has ${f}`);
}

/**
 * Compiling `wgsl` as the kernel of `mul [3]` fails with the kernel named and the offending source
 * line quoted; later realizations are unaffected. Returns the message.
 */
export async function checkCompileError(wgsl: string, line: string): Promise<string> {
  const r = await runner();
  const kernel: KernelPlan = {
    label: "mul [3]",
    wgsl,
    uniforms: [],
    scalars: [],
    inputs: [],
    outputs: [],
    threads: 1,
    workgroupSize: 64,
  };
  const message = await rejection(compileKernels(r.gpu, [kernel], new Map()));
  expectIn(message, ["the kernel for mul [3] does not compile", "line ", line], ["previous error"]);
  assertClose(await tensor([1, 2, 3]).mul(2).data(), [2, 4, 6]);
  return message;
}

/**
 * A submit the device rejects (its input buffer destroyed, as a device-side failure would) fails
 * with the realization's kernels and the device's own first message. Returns the message.
 */
export async function checkValidationError(): Promise<string> {
  const r = await runner();
  const x = normal(randomKey(80), [4, 4]).add(1);
  await realize([x]);
  r.buffer(x.node).destroy();
  const message = await rejection(x.mul(2).exp().data());
  expectIn(message, ["validation error in a realization of 1 kernels (exp [4,4])", "destroyed"], ["previous error"]);
  assertClose(await tensor([1, 2]).add(1).data(), [2, 3]);
  return message;
}
