// The polynomial exp and tanh of the Wasm backend: within one f32 ulp of the engine's, on random f32
// arguments over their whole useful range, with the edge values (zeros, infinities, NaN, overflow).

import fc from "fast-check";
import { ulps } from "../../numeric.ts";
import { jfExp, jfTanh } from "../../../core/wasm/approx.ts";

function check(name: string, fn: (x: number) => number, ref: (x: number) => number, x: number): void {
  const got = Math.fround(fn(x)), want = Math.fround(ref(x));
  if (Object.is(got, want)) return;
  if (Number.isNaN(want) || !Number.isFinite(want) || Math.sign(got) !== Math.sign(want) || ulps(got, want) > 1) {
    throw new Error(`${name}(${x}) = ${got}, expected ${want}`);
  }
}

const arg = (min: number, max: number) => fc.float({ min: Math.fround(min), max: Math.fround(max), noNaN: true });

Deno.test("jfExp is within one f32 ulp of Math.exp from underflow to overflow", () => {
  fc.assert(fc.property(arg(-110, 95), (x) => check("exp", jfExp, Math.exp, x)), { numRuns: 20000 });
  fc.assert(fc.property(arg(-1, 1), (x) => check("exp", jfExp, Math.exp, x)), { numRuns: 20000 });
});

Deno.test("jfTanh is within one f32 ulp of Math.tanh, tiny arguments included", () => {
  fc.assert(fc.property(arg(-12, 12), (x) => check("tanh", jfTanh, Math.tanh, x)), { numRuns: 20000 });
  fc.assert(fc.property(arg(-1e-3, 1e-3), (x) => check("tanh", jfTanh, Math.tanh, x)), { numRuns: 20000 });
});

Deno.test("jfExp and jfTanh keep the edge values: zeros, infinities, NaN, overflow and underflow", () => {
  const same = (a: number, b: number, what: string) => {
    if (!Object.is(a, b)) throw new Error(`${what}: ${a} != ${b}`);
  };
  same(jfExp(0), 1, "exp(0)");
  same(jfExp(-0), 1, "exp(-0)");
  same(jfExp(Infinity), Infinity, "exp(inf)");
  same(jfExp(-Infinity), 0, "exp(-inf)");
  same(jfExp(NaN), NaN, "exp(NaN)");
  same(Math.fround(jfExp(89)), Infinity, "exp(89) in f32");
  same(Math.fround(jfExp(-105)), 0, "exp(-105) in f32");
  same(jfTanh(0), 0, "tanh(0)");
  same(jfTanh(-0), -0, "tanh(-0)");
  same(jfTanh(Infinity), 1, "tanh(inf)");
  same(jfTanh(-Infinity), -1, "tanh(-inf)");
  same(jfTanh(NaN), NaN, "tanh(NaN)");
  same(Math.fround(jfTanh(1e-30)), Math.fround(1e-30), "tanh(1e-30)");
});
