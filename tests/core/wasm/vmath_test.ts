// The Wasm SIMD exp and tanh: a few f32 ulps from the correctly rounded values over the whole range,
// the edge values kept, any length (not only multiples of four), and large tensors on the backend.

import fc from "fast-check";
import { ulps } from "../../numeric.ts";
import { VMath } from "../../../core/wasm/vmath.ts";
import { VMATH_MIN } from "../../../core/wasm/mod.ts";
import { grad, normal, randomKey, readAll, setBackend, type Tensor } from "../../../mod.ts";
import { assertClose } from "../../helpers.ts";

const vm = VMath.create();
const REFS = { exp: Math.exp, tanh: Math.tanh } as const;

Deno.test("Wasm exp and tanh are within 4 f32 ulps of the correctly rounded values, at any length", () => {
  const value = fc.float({ min: -100, max: 100, noNaN: true, noDefaultInfinity: true });
  fc.assert(
    fc.property(fc.constantFrom("exp", "tanh" as const), fc.array(value, { minLength: 1, maxLength: 23 }), (op, xs) => {
      const x = Float32Array.from(xs), out = new Float32Array(x.length).fill(NaN);
      vm.run(op, x, out);
      x.forEach((v, i) => {
        const want = Math.fround(REFS[op](v));
        if (!(ulps(out[i], want) <= 4)) throw new Error(`${op}(${v}) = ${out[i]}, expected ${want}`);
      });
    }),
    { numRuns: 3000 },
  );
});

Deno.test("Wasm exp is within 4 ulps where its results are subnormal or round to 0, lane by lane", () => {
  // Lanes at -104 and below are computed apart (as e^0, then zeroed); each vector mixes them with
  // lanes above the cut, subnormal results and normal ones.
  const cut = [-104, Math.fround(-104 + 2 ** -17), Math.fround(-104 - 2 ** -17), -103.97, -103.28, -87.34, -1e9];
  const value = fc.oneof(fc.float({ min: -110, max: -86, noNaN: true }), fc.constantFrom(...cut, 0, 1.5, -3));
  fc.assert(
    fc.property(fc.array(value, { minLength: 1, maxLength: 13 }), (xs) => {
      const x = Float32Array.from(xs), out = new Float32Array(x.length).fill(NaN);
      vm.run("exp", x, out);
      x.forEach((v, i) => {
        const want = Math.fround(Math.exp(v));
        if (!(ulps(out[i], want) <= 4)) throw new Error(`exp(${v}) = ${out[i]}, expected ${want}`);
      });
    }),
    { numRuns: 2000 },
  );
});

Deno.test("Wasm exp and tanh keep zeros, infinities and NaN", () => {
  const x = Float32Array.of(0, -0, Infinity, -Infinity, NaN, 1e-30, -1e-30, 89, -200);
  const e = new Float32Array(x.length), t = new Float32Array(x.length);
  vm.run("exp", x, e);
  vm.run("tanh", x, t);
  const same = (got: Float32Array, want: number[], op: string) =>
    want.forEach((w, i) => {
      if (!Object.is(got[i], Math.fround(w))) throw new Error(`${op}(${x[i]}) = ${got[i]}, expected ${w}`);
    });
  same(e, [1, 1, Infinity, 0, NaN, 1, 1, Infinity, 0], "exp");
  same(t, [0, -0, 1, -1, NaN, 1e-30, -1e-30, 1, -1], "tanh");
});

Deno.test("large exp and tanh run on the Wasm kernel and match the reference, gradients too", async () => {
  const x = normal(randomKey(4), [VMATH_MIN / 32 + 1, 33]).mul(3); // above the threshold, odd sizes
  const f = (v: Tensor) => v.mul(0.7).tanh().add(v.sub(1).exp()).sum();
  const make = () => [x.exp(), x.tanh(), x.mul(2).exp().mul(x), grad(f)(x)];
  await setBackend("wasm");
  const got = await readAll(make());
  await setBackend("cpu");
  const want = await readAll(make());
  got.forEach((g, i) => assertClose(g, want[i], { rtol: 1e-6, atol: 1e-7, msg: `output ${i}` }));
});
