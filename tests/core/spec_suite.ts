// The spec table's random cases on another backend against the CPU reference, values and gradients.

import fc from "fast-check";
import { grad, type Tensor, tensor } from "../../mod.ts";
import { PRIM_NAMES, PRIM_SPECS, toTensor } from "./prim_specs.ts";
import { assertClose, randomValues } from "../helpers.ts";
import { onBoth } from "./webgpu/gpu.ts";

// f32 on both sides: elementwise results agree to a few ulps; sums, matmuls and transcendental
// functions (evaluated by different code on each side) to about 1e-5 relative.
const TOL = { rtol: 1e-4, atol: 1e-5 };

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
        fc.asyncProperty(spec.cases, async (c) => {
          const { gpu, cpu } = await onBoth(() => [c.build(...c.inputs.map(toTensor))], backend);
          assertClose(gpu[0], cpu[0], { ...TOL, msg: `${name} ${JSON.stringify(c.params)}` });
        }),
        { numRuns: Number(Deno.env.get("RUNS") ?? 12) },
      );
    });
    if (spec.differentiable.length === 0) continue;
    register(`${name} gradients on ${label} match the CPU`, async () => {
      await fc.assert(
        fc.asyncProperty(spec.gradCases, async (c) => {
          const make = () => {
            const xs = c.inputs.map(toTensor);
            const f = (...ys: Tensor[]) => {
              const all = xs.map((x, i) => (spec.differentiable.includes(i) ? ys[spec.differentiable.indexOf(i)] : x));
              // A fixed random linear functional of the output: its gradient is exactly the vjp.
              const out = c.build(...all);
              return out.mul(tensor(randomValues(out.size, 7), { shape: out.shape })).sum();
            };
            const gs: Tensor[] = grad(f, { argnums: spec.differentiable.map((_, i) => i) })(
              ...spec.differentiable.map((i) => xs[i]),
            );
            return gs;
          };
          const { gpu, cpu } = await onBoth(make, backend);
          gpu.forEach((g, i) =>
            assertClose(g, cpu[i], { ...TOL, msg: `${name} grad ${i} ${JSON.stringify(c.params)}` })
          );
        }),
        { numRuns: Number(Deno.env.get("RUNS") ?? 6) },
      );
    });
  }
}
