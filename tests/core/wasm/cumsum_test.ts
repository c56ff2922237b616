// The Wasm cumsum against the reference rule, bit for bit (f32 sums carried in float64 by both),
// on random shapes and axes in both directions, f32 and i32 (wrapping as the reference's stores do).

import fc from "fast-check";
import { LINALG } from "../../../core/prims/linalg.ts";
import type { Aval, CpuContext } from "../../../core/prim.ts";
import { cumsumKernel } from "../../../core/wasm/cumsum.ts";
import { tensor } from "../../../mod.ts";
import { wasmAndReference } from "./backend_helpers.ts";

const ctx = {
  alloc: (d: string, n: number) => (d === "i32" ? new Int32Array(n) : new Float32Array(n)),
} as unknown as CpuContext;

Deno.test("Wasm cumsum equals the reference bit for bit on random shapes, axes, directions, f32 and i32", () => {
  const kernel = cumsumKernel(LINALG.cumsum.cpu);
  const shape = fc.array(fc.integer({ min: 1, max: 7 }), { minLength: 1, maxLength: 4 });
  const dtype = fc.constantFrom("f32", "i32");
  fc.assert(
    fc.property(shape, fc.nat(), fc.boolean(), dtype, fc.integer({ min: 1, max: 1e6 }), (sh, ax, reverse, dt, seed) => {
      const n = sh.reduce((p, d) => p * d, 1), axis = ax % sh.length;
      let s = seed;
      const r = () => (s = (s * 48271) % 2147483647) / 2147483647;
      // i32 values near the limits, so partial sums wrap around 2^32 as the reference's stores do
      const x = dt === "f32"
        ? Float32Array.from({ length: n }, () => r() * 20 - 10)
        : Int32Array.from({ length: n }, () => Math.floor(r() * 2 ** 32) - 2 ** 31);
      const aval = { shape: sh, dtype: dt } as Aval, p = { axis, reverse };
      const want = LINALG.cumsum.cpu([x], [aval], aval, p, ctx);
      const got = kernel([x], [aval], aval, p, ctx);
      want.forEach((w, i) => {
        if (!Object.is(got[i], w)) throw new Error(`${sh} axis ${axis} ${reverse}: [${i}] = ${got[i]}, expected ${w}`);
      });
    }),
    { numRuns: 300 },
  );
});

Deno.test("cumsum on the Wasm backend: f32 and i32 as the reference, a repeated call compiles no module", async () => {
  const f = tensor(Float32Array.from({ length: 60 }, (_, i) => Math.sin(i) * 3), { shape: [3, 4, 5] });
  const i = tensor(Int32Array.from({ length: 12 }, (_, j) => j * 7 - 30), { shape: [3, 4] });
  const make = () => [f.cumsum(1), f.cumsum(2, { reverse: true }), i.cumsum(0)];
  const { got, want, compiled } = await wasmAndReference(make);
  got.forEach((g, k) =>
    g.forEach((v, j) => {
      if (!Object.is(v, want[k][j])) throw new Error(`output ${k}[${j}] = ${v}, expected ${want[k][j]}`);
    })
  );
  if (compiled !== 0) throw new Error(`a repeated cumsum compiled ${compiled} modules`);
});
