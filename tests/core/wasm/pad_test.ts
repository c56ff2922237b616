// pad on the Wasm backend (copies of contiguous runs) equals the reference rule bit for bit, for
// every dtype, any rank, padding on any axes (none, inner, outer, all), short and long runs.

import fc from "fast-check";
import { PRIMS } from "../../../core/prims/mod.ts";
import { padRuns } from "../../../core/wasm/pad.ts";
import type { Aval, CpuArray, CpuContext } from "../../../core/prim.ts";
import type { DType } from "../../../core/shape.ts";

const ctx = {
  alloc: (d: DType, n: number) =>
    d === "bool" ? new Uint8Array(n) : d === "i32" ? new Int32Array(n) : new Float32Array(n),
} as unknown as CpuContext;

Deno.test("pad by runs equals the reference rule bit for bit", () => {
  const axis = fc.record({ d: fc.integer({ min: 1, max: 6 }), lo: fc.nat(3), hi: fc.nat(3), pad: fc.boolean() });
  fc.assert(
    fc.property(
      fc.array(axis, { minLength: 1, maxLength: 4 }),
      fc.constantFrom<DType>("f32", "i32", "bool"),
      fc.integer({ min: 1, max: 40 }),
      (axes, dtype, last) => {
        // The last axis is sometimes long, so runs from 1 element to a few hundred occur.
        const shape = axes.map((a, i) => (i === axes.length - 1 ? last : a.d));
        const lo = axes.map((a) => (a.pad ? a.lo : 0)), hi = axes.map((a) => (a.pad ? a.hi : 0));
        const n = shape.reduce((p, d) => p * d, 1);
        const a = ctx.alloc(dtype, n) as CpuArray;
        for (let i = 0; i < n; i++) {
          a[i] = dtype === "bool" ? i % 3 === 0 ? 1 : 0 : dtype === "i32" ? i - 7 : i * 0.37 - 2;
        }
        const x = { shape, dtype } as Aval, params = { lo, hi };
        const out = PRIMS.pad.shape([x], params);
        const got = padRuns([a], [x], out, params, ctx), want = PRIMS.pad.cpu([a], [x], out, params, ctx);
        if (
          got.constructor !== want.constructor || got.length !== want.length ||
          got.some((v, i) => !Object.is(v, want[i]))
        ) {
          throw new Error(`pad ${JSON.stringify({ shape, lo, hi, dtype })}: ${Array.from(got)} != ${Array.from(want)}`);
        }
      },
    ),
    { numRuns: 500 },
  );
});
