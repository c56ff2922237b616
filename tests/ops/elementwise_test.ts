// Tests of the elementwise composites: closed forms in plain float64 JS, properties, and vjps vs finite differences.

import fc from "fast-check";
import { grad, ops, type Tensor, tensor } from "../../mod.ts";
import { assertClose, checkGradFD, inF64, randomValues, values } from "../helpers.ts";

// Independent float64 references.
const sigmoidRef = (x: number) => 1 / (1 + Math.exp(-x));
const geluRef = (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
const softplusRef = (x: number) => (x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x)));

const UNARY: readonly { name: string; op: (x: Tensor) => Tensor; ref: (x: number) => number; domain?: "pos" }[] = [
  { name: "sigmoid", op: ops.sigmoid, ref: sigmoidRef },
  { name: "silu", op: ops.silu, ref: (x) => x * sigmoidRef(x) },
  { name: "gelu", op: ops.gelu, ref: geluRef },
  { name: "relu", op: ops.relu, ref: (x) => (x > 0 ? x : 0) },
  { name: "softplus", op: ops.softplus, ref: softplusRef },
  { name: "elu", op: ops.elu, ref: (x) => (x > 0 ? x : Math.expm1(x)) },
  { name: "abs", op: ops.abs, ref: (x) => (x < 0 ? -x : x) },
  { name: "rsqrt", op: ops.rsqrt, ref: (x) => 1 / Math.sqrt(x), domain: "pos" },
];

const POINTS = [-30, -6, -2.5, -1, -0.3, 0, 0.3, 1, 2.5, 6, 30];
const POSITIVE = [1e-4, 0.01, 0.3, 1, 2.5, 100, 1e6];

Deno.test("unary activations match their float64 closed forms (f32, atol 1e-6, rtol 1e-5)", async () => {
  for (const { name, op, ref, domain } of UNARY) {
    const xs = domain === "pos" ? POSITIVE : POINTS;
    assertClose(await values(op(tensor(xs))), xs.map((x) => ref(Math.fround(x))), { msg: name });
  }
});

Deno.test("unary activations match their closed forms on random inputs", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.double({ min: -40, max: 40, noNaN: true }), { minLength: 1, maxLength: 40 }),
      async (xs) => {
        const x = tensor(xs);
        for (const { name, op, ref, domain } of UNARY) {
          if (domain === "pos") continue;
          assertClose(await values(op(x)), xs.map((v) => ref(Math.fround(v))), { atol: 2e-6, rtol: 1e-5, msg: name });
        }
      },
    ),
    { numRuns: 60 },
  );
});

Deno.test("gelu agrees with exact erf-GELU to within the tanh approximation's known error (3e-3 at most)", async () => {
  // erf by Abramowitz-Stegun 7.1.26 (|error| < 1.5e-7), far below the tolerance.
  const erf = (x: number) => {
    const t = 1 / (1 + 0.3275911 * Math.abs(x));
    const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t *
        Math.exp(-x * x);
    return x < 0 ? -y : y;
  };
  const xs = randomValues(64, 7).map((v) => 4 * v);
  const exact = xs.map((x) => 0.5 * Math.fround(x) * (1 + erf(Math.fround(x) / Math.SQRT2)));
  assertClose(await values(ops.gelu(tensor(xs))), exact, { atol: 3e-3, rtol: 0 });
});

Deno.test("sigmoid is symmetric, bounded in [0, 1], and silu is x times sigmoid", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.double({ min: -60, max: 60, noNaN: true }), { minLength: 1, maxLength: 40 }),
      async (xs) => {
        const x = tensor(xs);
        const s = await values(ops.sigmoid(x)), sNeg = await values(ops.sigmoid(x.neg()));
        assertClose(s.map((v, i) => v + sNeg[i]), s.map(() => 1), { atol: 1e-6 });
        for (const v of s) if (!(v >= 0 && v <= 1)) throw new Error(`sigmoid value ${v} is outside [0, 1]`);
        assertClose(await values(ops.silu(x)), s.map((v, i) => v * Math.fround(xs[i])), { atol: 1e-6, rtol: 1e-6 });
      },
    ),
    { numRuns: 60 },
  );
});

Deno.test("sigmoid and silu stay finite with finite gradients at x = ±100", async () => {
  const x = tensor([-100, 100]);
  assertClose(await values(ops.sigmoid(x)), [0, 1], { atol: 1e-30, rtol: 0 });
  assertClose(await values(ops.silu(x)), [0, 100], { atol: 1e-30, rtol: 1e-7 });
  const ds = await values(grad((v: Tensor) => ops.sigmoid(v).sum())(x));
  const dsilu = await values(grad((v: Tensor) => ops.silu(v).sum())(x));
  for (const g of [...ds, ...dsilu]) if (!Number.isFinite(g)) throw new Error(`gradient ${g} is not finite`);
  // sigmoid'(±100) = e^-100 / (1 + e^-100)^2 ~ 3.7e-44; silu'(100) ~ 1, silu'(-100) ~ -1e-42.
  assertClose(ds, [3.7e-44, 3.7e-44], { atol: 1e-40, rtol: 0 });
  assertClose(dsilu, [0, 1], { atol: 1e-38, rtol: 1e-6 });
});

Deno.test("relu and softplus satisfy f(x) - f(-x) = x, and softplus >= relu", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.double({ min: -50, max: 50, noNaN: true }), { minLength: 1, maxLength: 40 }),
      async (xs) => {
        const x = tensor(xs), xf = xs.map(Math.fround);
        const r = await values(ops.relu(x)), rn = await values(ops.relu(x.neg()));
        assertClose(r.map((v, i) => v - rn[i]), xf, { atol: 0, rtol: 0 });
        const sp = await values(ops.softplus(x)), spn = await values(ops.softplus(x.neg()));
        assertClose(sp.map((v, i) => v - spn[i]), xf, { atol: 1e-5, rtol: 1e-6 });
        sp.forEach((v, i) => {
          if (v < r[i]) throw new Error(`softplus(${xf[i]}) = ${v} is below relu = ${r[i]}`);
        });
      },
    ),
    { numRuns: 60 },
  );
});

Deno.test("clip keeps values in [lo, hi], is idempotent, and minimum picks the smaller operand", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.tuple(fc.double({ min: -10, max: 10, noNaN: true }), fc.double({ min: -10, max: 10, noNaN: true })), {
        minLength: 1,
        maxLength: 30,
      }),
      fc.double({ min: -5, max: 0, noNaN: true }),
      fc.double({ min: 0, max: 5, noNaN: true }),
      async (pairs, lo, hi) => {
        const a = pairs.map(([p]) => Math.fround(p)), b = pairs.map(([, q]) => Math.fround(q));
        const [loF, hiF] = [Math.fround(lo), Math.fround(hi)];
        const c = ops.clip(tensor(a), lo, hi);
        assertClose(await values(c), a.map((v) => Math.min(Math.max(v, loF), hiF)), { atol: 0, rtol: 0 });
        assertClose(await values(ops.clip(c, lo, hi)), await values(c), { atol: 0, rtol: 0 });
        assertClose(await values(ops.minimum(tensor(a), tensor(b))), a.map((v, i) => Math.min(v, b[i])), {
          atol: 0,
          rtol: 0,
        });
      },
    ),
    { numRuns: 60 },
  );
});

Deno.test("minimum and clip broadcast a number against a tensor", async () => {
  assertClose(await values(ops.minimum(tensor([[-1, 2], [3, 0.5]]), 1)), [-1, 1, 1, 0.5], { atol: 0, rtol: 0 });
  assertClose(await values(ops.minimum(0.5, tensor([-1, 2]))), [-1, 0.5], { atol: 0, rtol: 0 });
  assertClose(await values(ops.clip(tensor([-3, -0.5, 0.25, 7]), -1, 0.5)), [-1, -0.5, 0.25, 0.5], {
    atol: 0,
    rtol: 0,
  });
});

Deno.test("activation gradients at their kinks follow the documented conventions and the true derivatives", async () => {
  const zero = tensor([0]);
  const d = async (f: (x: Tensor) => Tensor, x = zero) => (await values(grad((v: Tensor) => f(v).sum())(x)))[0];
  // relu and abs are not differentiable at 0: both use the subgradient 0 (as documented).
  assertClose([await d(ops.relu), await d(ops.abs)], [0, 0], { atol: 0, rtol: 0 });
  // softplus and elu (alpha = 1) are differentiable at 0: softplus'(0) = 1/2, elu'(0) = 1.
  assertClose([await d(ops.softplus), await d(ops.elu)], [0.5, 1], { atol: 1e-7 });
  // minimum(x, x) = x, so ties must split the gradient to a total of 1.
  assertClose([await d((x) => ops.minimum(x, x))], [1], { atol: 0, rtol: 0 });
});

Deno.test("abs gradient is the sign of x away from zero", async () => {
  const xs = [-3, -0.5, 0.25, 2];
  assertClose(await values(grad((x: Tensor) => ops.abs(x).sum())(tensor(xs))), [-1, -1, 1, 1], { atol: 0, rtol: 0 });
});

Deno.test("stopGradient passes the value and blocks the gradient: d/dx stopGradient(x) * x = x", async () => {
  const xs = [-2, 0.5, 3];
  const x = tensor(xs);
  assertClose(await values(ops.stopGradient(x)), xs, { atol: 0, rtol: 0 });
  const g = grad((v: Tensor) => ops.stopGradient(v).mul(v).sum())(x);
  assertClose(await values(g), xs, { atol: 0, rtol: 0 }); // not 2x
  // The straight-through pattern x - stopGradient(x) is zero with gradient one.
  const st = (v: Tensor) => v.sub(ops.stopGradient(v)).mul(tensor([1, 2, 3])).sum();
  assertClose(await values(st(x)), [0], { atol: 0, rtol: 0 });
  assertClose(await values(grad(st)(x)), [1, 2, 3], { atol: 0, rtol: 0 });
});

Deno.test("in float64 the activations match their closed forms to 1e-12", async () => {
  await inF64(async () => {
    // Number constants keep their float64 value on the float64 backend.
    const [c3, c1] = [0.044715, Math.sqrt(2 / Math.PI)];
    const refs: Record<string, (x: number) => number> = {
      gelu: (x) => 0.5 * x * (1 + Math.tanh(c1 * (x + c3 * x ** 3))),
    };
    const xs = randomValues(40, 9).map((v) => Math.fround(12 * v));
    for (const { name, op, ref, domain } of UNARY) {
      const inputs = domain === "pos" ? xs.map((v) => Math.fround(v * v + 0.01)) : xs;
      assertClose(await values(op(tensor(inputs))), inputs.map(refs[name] ?? ref), {
        atol: 1e-12,
        rtol: 1e-12,
        msg: name,
      });
    }
  });
});

Deno.test("elementwise composite vjps match finite differences (float64, atol 1e-6, rtol 1e-5)", async () => {
  await inF64(async () => {
    const xs = tensor(randomValues(24, 3).map((v) => 3 * v), { shape: [4, 6] });
    const w = tensor(randomValues(24, 4), { shape: [4, 6] });
    for (const { name, op, domain } of UNARY) {
      const x = domain === "pos" ? xs.mul(xs).add(0.2) : xs;
      await checkGradFD((v) => op(v).mul(w).sum(), [x], { msg: name });
    }
    const ys = tensor(randomValues(24, 5).map((v) => 3 * v), { shape: [4, 6] });
    await checkGradFD((a, b) => ops.minimum(a, b).mul(w).sum(), [xs, ys], { msg: "minimum" });
    await checkGradFD((a) => ops.clip(a, -1, 1.5).mul(w).sum(), [xs], { msg: "clip" });
  });
});

Deno.test("softplus and elu gradients at zero match finite differences (both are smooth there)", async () => {
  await inF64(async () => {
    const x = tensor([0, 0, 0, 1e-3, -1e-3]);
    await checkGradFD((v) => ops.softplus(v).sum(), [x], { msg: "softplus" });
    await checkGradFD((v) => ops.elu(v).sum(), [x], { msg: "elu" });
  });
});

Deno.test("activations take second derivatives that match closed forms", async () => {
  await inF64(async () => {
    const xs = [-2, -0.5, 0.3, 1.7];
    const d2 = (f: (x: Tensor) => Tensor) => grad((x: Tensor) => grad((y: Tensor) => f(y).sum())(x).sum())(tensor(xs));
    // sigmoid'' = s (1 - s) (1 - 2 s)
    const sig = xs.map(sigmoidRef);
    assertClose(await values(d2(ops.sigmoid)), sig.map((s) => s * (1 - s) * (1 - 2 * s)), { atol: 1e-12 });
    // softplus'' = sigmoid' = s (1 - s)
    assertClose(await values(d2(ops.softplus)), sig.map((s) => s * (1 - s)), { atol: 1e-12 });
  });
});

Deno.test("a number operand takes the other operand's dtype, and mean of integers is f32", async () => {
  const { ops, tensor } = await import("../../mod.ts");
  const i = tensor([1, 2], { dtype: "i32" });
  const y = ops.sub(10, i);
  if (y.dtype !== "i32") throw new Error(`10 - i32 gave ${y.dtype}`);
  assertClose(Array.from(await y.data()), [9, 8], { atol: 0, rtol: 0 });
  const m = i.mean();
  if (m.dtype !== "f32") throw new Error(`mean of i32 gave ${m.dtype}`);
  assertClose([await m.item()], [1.5], { atol: 0, rtol: 0 });
});
