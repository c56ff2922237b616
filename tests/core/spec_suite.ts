// The spec table's random cases on another backend against the CPU reference, values and gradients,
// registered as tests (the checks themselves are tests/core/webgpu/spec_checks.ts, shared with the
// browser suite).

import fc from "fast-check";
import { PRIM_NAMES, PRIM_SPECS } from "./prim_specs.ts";
import { checkPrimCase, checkPrimGradient } from "./webgpu/spec_checks.ts";

/** Registers the spec-table tests of one backend against the reference, through `register`. */
export function specTableSuite(
  backend: "webgpu" | "wasm",
  label: string,
  register: (name: string, fn: () => Promise<void>) => void,
): void {
  for (const name of PRIM_NAMES) {
    const spec = PRIM_SPECS[name];
    register(`${name} on ${label} matches the CPU on random cases`, async () => {
      await fc.assert(
        fc.asyncProperty(spec.cases, (c) => checkPrimCase(name, c, backend)),
        { numRuns: Number(Deno.env.get("RUNS") ?? 12) },
      );
    });
    if (spec.differentiable.length === 0) continue;
    register(`${name} gradients on ${label} match the CPU`, async () => {
      await fc.assert(
        fc.asyncProperty(spec.gradCases, (c) => checkPrimGradient(name, c, backend)),
        { numRuns: Number(Deno.env.get("RUNS") ?? 6) },
      );
    });
  }
}
