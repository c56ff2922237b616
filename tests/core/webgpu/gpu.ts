// WebGPU test support: whether an adapter exists, and running one computation on both backends.

import { setBackend } from "../../../mod.ts";

export { onBoth } from "./spec_checks.ts";

// "none" when no adapter exists, the error when one exists (or should) but the stack is broken.
async function probe(): Promise<"ok" | "none" | Error> {
  try {
    await setBackend("webgpu");
    return "ok";
  } catch (e) {
    const msg = (e as Error).message;
    // JETFOLD_REQUIRE_GPU=1 (set by .ci/run once it installed the software adapter): none is a failure.
    const required = Deno.env.get("JETFOLD_REQUIRE_GPU") === "1";
    if (msg.includes("no WebGPU adapter is available") && !required) return "none";
    const what = required ? "JETFOLD_REQUIRE_GPU=1, but WebGPU does not start" : "the WebGPU stack is broken";
    return new Error(`${what}: ${msg}`);
  } finally {
    await setBackend("cpu");
  }
}

const PROBE = await probe();

/** True when a WebGPU adapter exists here (Mesa's software adapter counts). */
export const HAS_GPU: boolean = PROBE === "ok";

/**
 * Registers a test that runs only with an adapter. Without one Deno lists it as ignored, by name;
 * with a broken stack (an adapter that fails to open, or none where one is required) it fails.
 */
export function gpuTest(name: string, fn: () => Promise<void>): void {
  const broken = PROBE instanceof Error ? PROBE : null;
  const body = broken ? () => Promise.reject(broken) : fn;
  Deno.test({ name, ignore: PROBE === "none", sanitizeResources: false, sanitizeOps: false, fn: body });
}
