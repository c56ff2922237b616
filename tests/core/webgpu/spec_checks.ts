// The spec table's WebGPU-vs-CPU checks, one case at a time; no Deno APIs, so the browser suite's
// page runs the same checks as tests/core/webgpu/prims_test.ts.

import fc from "fast-check";
import { type BackendName, grad, type HostArray, readAll, setBackend, type Tensor, tensor } from "../../../mod.ts";
import type { Prim } from "../../../core/prim.ts";
import { PRIM_NAMES, PRIM_SPECS, type PrimCase, toTensor } from "../prim_specs.ts";
import { assertClose, randomValues } from "../../numeric.ts";

/**
 * f32 on both sides: elementwise results agree to a few ulps; sums, matmuls and transcendental
 * functions (evaluated by different code on each side) to about 1e-5 relative.
 */
export const TOL = { rtol: 1e-4, atol: 1e-5 } as const;

/**
 * Builds and reads `make()` on WebGPU (or `backend`) and on the CPU reference; returns both results
 * (`gpu` holds the other backend's).
 */
export async function onBoth(
  make: () => Tensor[],
  backend: BackendName = "webgpu",
): Promise<{ gpu: HostArray[]; cpu: HostArray[] }> {
  await setBackend(backend);
  const gt = make();
  const gpu = await readAll(gt);
  await setBackend("cpu");
  const ct = make();
  const cpu = await readAll(ct);
  return { gpu, cpu };
}

/** The gradients of a fixed random linear functional of the primitive's output (exactly its vjp). */
export function primGradients(name: Prim, c: PrimCase): Tensor[] {
  const spec = PRIM_SPECS[name];
  const xs = c.inputs.map(toTensor);
  const f = (...ys: Tensor[]) => {
    const all = xs.map((x, i) => (spec.differentiable.includes(i) ? ys[spec.differentiable.indexOf(i)] : x));
    const out = c.build(...all);
    return out.mul(tensor(randomValues(out.size, 7), { shape: out.shape })).sum();
  };
  return grad(f, { argnums: spec.differentiable.map((_, i) => i) })(...spec.differentiable.map((i) => xs[i]));
}

/** Checks one case of a primitive on WebGPU (or `backend`) against the CPU. */
export async function checkPrimCase(name: Prim, c: PrimCase, backend: BackendName = "webgpu"): Promise<void> {
  const { gpu, cpu } = await onBoth(() => [c.build(...c.inputs.map(toTensor))], backend);
  assertClose(gpu[0], cpu[0], { ...TOL, msg: `${name} ${JSON.stringify(c.params)}` });
}

/** Checks the gradients of one gradient case of a primitive on WebGPU (or `backend`) against the CPU. */
export async function checkPrimGradient(name: Prim, c: PrimCase, backend: BackendName = "webgpu"): Promise<void> {
  const { gpu, cpu } = await onBoth(() => primGradients(name, c), backend);
  gpu.forEach((g, i) => assertClose(g, cpu[i], { ...TOL, msg: `${name} grad ${i} ${JSON.stringify(c.params)}` }));
}

/** How many cases `checkSpecTable` runs per primitive, and from which seed. */
export interface SpecTableRuns {
  readonly runs: number;
  readonly gradRuns: number;
  readonly seed: number;
}

/** Runs every primitive's cases and gradient cases; throws naming every failing primitive; returns the cases run. */
export async function checkSpecTable(o: SpecTableRuns): Promise<number> {
  let checked = 0;
  const failures: string[] = [];
  const run = async (what: string, p: fc.IAsyncProperty<[PrimCase]>, numRuns: number) => {
    const r = await fc.check(p, { numRuns, seed: o.seed });
    if (r.failed) {
      failures.push(`${what}: ${r.errorInstance instanceof Error ? r.errorInstance.message : r.errorInstance}`);
    }
  };
  for (const name of PRIM_NAMES) {
    const spec = PRIM_SPECS[name];
    await run(name, fc.asyncProperty(spec.cases, (c) => checkPrimCase(name, c).then(() => void checked++)), o.runs);
    if (spec.differentiable.length === 0) continue;
    const grads = fc.asyncProperty(spec.gradCases, (c) => checkPrimGradient(name, c).then(() => void checked++));
    await run(`${name} gradients`, grads, o.gradRuns);
  }
  if (failures.length > 0) throw new Error(`${failures.length} primitives disagree:\n  ${failures.join("\n  ")}`);
  return checked;
}
