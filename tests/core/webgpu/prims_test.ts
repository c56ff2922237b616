// Every primitive on WebGPU against the CPU reference, on the spec table's random cases.

import fc from "fast-check";
import { PRIM_NAMES, PRIM_SPECS } from "../prim_specs.ts";
import { checkPrimCase, checkPrimGradient } from "./spec_checks.ts";
import { gpuTest } from "./gpu.ts";

for (const name of PRIM_NAMES) {
  const spec = PRIM_SPECS[name];
  gpuTest(`${name} on WebGPU matches the CPU on random cases`, async () => {
    await fc.assert(
      fc.asyncProperty(spec.cases, (c) => checkPrimCase(name, c)),
      { numRuns: Number(Deno.env.get("RUNS") ?? 12) },
    );
  });
  if (spec.differentiable.length === 0) continue;
  gpuTest(`${name} gradients on WebGPU match the CPU`, async () => {
    await fc.assert(
      fc.asyncProperty(spec.gradCases, (c) => checkPrimGradient(name, c)),
      { numRuns: Number(Deno.env.get("RUNS") ?? 6) },
    );
  });
}
