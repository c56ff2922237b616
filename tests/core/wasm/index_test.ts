// The Wasm gather and scatterAdd against the reference rules, bit for bit (both copy rows and sum
// in float64 in the same order), on random shapes, axes and index lists with out-of-range indices
// (clamped as the reference clamps them); f32, i32 and bool (the reference rule) inputs; and on the
// backend, an embedding gradient whose repeated step compiles no module.

import fc from "fast-check";
import { LINALG } from "../../../core/prims/linalg.ts";
import type { Aval, CpuArray, CpuContext } from "../../../core/prim.ts";
import { indexKernels } from "../../../core/wasm/index.ts";
import { grad, type Tensor, tensor } from "../../../mod.ts";
import { wasmAndReference } from "./backend_helpers.ts";

const ctx = {
  alloc: (d: string, n: number) =>
    d === "i32" ? new Int32Array(n) : d === "bool" ? new Uint8Array(n) : new Float32Array(n),
} as unknown as CpuContext;
const kernels = indexKernels({ gather: LINALG.gather.cpu, scatterAdd: LINALG.scatterAdd.cpu });

function same(got: CpuArray, want: CpuArray, what: string): void {
  if (got.length !== want.length) throw new Error(`${what}: length ${got.length}, expected ${want.length}`);
  want.forEach((w, i) => {
    if (!Object.is(got[i], w)) throw new Error(`${what}: [${i}] = ${got[i]}, expected ${w}`);
  });
}

function rand(seed: number): () => number {
  let s = seed;
  return () => (s = (s * 48271) % 2147483647) / 2147483647;
}

const shape = fc.array(fc.integer({ min: 1, max: 7 }), { minLength: 1, maxLength: 4 });
const idxShape = fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 2 });

Deno.test("Wasm gather equals the reference on random shapes, axes, dtypes and clamped indices", () => {
  const dtype = fc.constantFrom("f32", "i32", "bool");
  fc.assert(
    fc.property(shape, idxShape, fc.nat(), dtype, fc.integer({ min: 1, max: 1e6 }), (sh, ish, ax, dt, seed) => {
      const axis = ax % sh.length, n = sh.reduce((p, d) => p * d, 1), r = rand(seed);
      const x = dt === "f32"
        ? Float32Array.from({ length: n }, () => r() * 20 - 10)
        : dt === "i32"
        ? Int32Array.from({ length: n }, () => Math.floor(r() * 2000 - 1000))
        : Uint8Array.from({ length: n }, () => (r() < 0.5 ? 1 : 0));
      const m = ish.reduce((p, d) => p * d, 1), len = sh[axis];
      const idx = Int32Array.from({ length: m }, () => Math.floor(r() * (len + 4)) - 2); // some out of range
      const xa = { shape: sh, dtype: dt } as Aval, ia = { shape: ish, dtype: "i32" } as Aval;
      const oa = { shape: [...sh.slice(0, axis), ...ish, ...sh.slice(axis + 1)], dtype: dt } as Aval;
      const ins = [x, idx] as CpuArray[];
      same(
        kernels.gather(ins, [xa, ia], oa, { axis }, ctx),
        LINALG.gather.cpu(ins, [xa, ia], oa, { axis }, ctx),
        `${dt} ${sh} axis ${axis}`,
      );
    }),
    { numRuns: 300 },
  );
});

Deno.test("Wasm scatterAdd equals the reference bit for bit, repeated and clamped indices included", () => {
  fc.assert(
    fc.property(
      shape,
      fc.nat(),
      fc.integer({ min: 1, max: 9 }),
      fc.integer({ min: 1, max: 1e6 }),
      (sh, ax, size, seed) => {
        // updates g have the shape of gather's output: sh with the indices' axes at `axis` (one here)
        const axis = ax % sh.length, m = sh[axis], r = rand(seed);
        const g = Float32Array.from({ length: sh.reduce((p, d) => p * d, 1) }, () => r() * 2e3 - 1e3);
        const idx = Int32Array.from({ length: m }, () => Math.floor(r() * (size + 2)) - 1); // repeats, out of range
        const ga = { shape: sh, dtype: "f32" } as Aval, ia = { shape: [m], dtype: "i32" } as Aval;
        const oa = { shape: sh.map((d, i) => (i === axis ? size : d)), dtype: "f32" } as Aval;
        const p = { axis, size }, ins = [g, idx] as CpuArray[];
        same(
          kernels.scatterAdd(ins, [ga, ia], oa, p, ctx),
          LINALG.scatterAdd.cpu(ins, [ga, ia], oa, p, ctx),
          `${sh} axis ${axis} size ${size}`,
        );
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("embedding lookup and its gradient on the Wasm backend equal the reference; a repeated step compiles no module", async () => {
  const table = tensor(Float32Array.from({ length: 13 * 7 }, (_, i) => Math.sin(i) * 2), { shape: [13, 7] });
  const ids = tensor(Int32Array.from([3, 0, 12, 3, 5, 3, 11]), { shape: [7] });
  const w = tensor(Float32Array.from({ length: 7 * 7 }, (_, i) => Math.cos(i)), { shape: [7, 7] });
  const cols = tensor(Int32Array.from([6, 0, 2, 6]), { shape: [2, 2] });
  const loss = (t: Tensor) => t.gather(ids, 0).mul(w).sum();
  const make = () => [table.gather(ids, 0), grad(loss)(table), w.gather(cols, 1)];
  const { got, want, compiled } = await wasmAndReference(make);
  got.forEach((g, k) => same(g as CpuArray, want[k] as CpuArray, `output ${k}`));
  if (compiled !== 0) throw new Error(`a repeated step compiled ${compiled} modules`);
});
