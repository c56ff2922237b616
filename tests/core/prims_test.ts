// Per-primitive tests driven by the spec table: values against float64 references, vjps against finite
// differences, algebraic laws, and second derivatives against closed forms.

import fc from "fast-check";
import { grad, ops, setBackend, type Tensor, tensor } from "../../mod.ts";
import { PRIMS } from "../../core/prims/mod.ts";
import { assertClose, assertThrowsMsg, checkGradFD, randomValues, useF64, values } from "../helpers.ts";
import { Draw, PRIM_NAMES, PRIM_SPECS, real, sizeOf, toTensor } from "./prim_specs.ts";

// CPU against the float64 reference. Every CPU rule evaluates in float64 (Math.* on the f32 inputs;
// sum, matmul, scatterAdd, cumsum and the fused rules accumulate in float64) and rounds once when it
// stores, so on the f32 backend each element lies within half an f32 ulp (2^-24 relative) of the exact
// result; the reference itself differs from exact only by float64 rounding (~1e-16 relative to the
// terms). rtol 2^-22 (4 half-ulps, 2.4e-7) leaves headroom for that and no more, so an f32 rule that
// rounds twice fails. atol 1e-10 only matters for results that cancel to ~0. On the f64 backend only
// the summation order can differ from the reference. bool and i32 results are exact.
const TOL = { f32: { rtol: 2 ** -22, atol: 1e-10 }, f64: { rtol: 1e-12, atol: 1e-12 } } as const;
const EXACT = { rtol: 0, atol: 0 };
// Central differences in float64 with eps 1e-5 err by ~eps^2 * f''' / 6 (~1e-10 relative on the
// generators' domains) plus ~1e-16 / eps rounding; checkGradFD's f32-stored step adds 2.5e-8.
const FD = { rtol: 1e-6, atol: 1e-8 };
const RUNS = 40, GRAD_RUNS = 15;

function assertShape(t: Tensor, shape: readonly number[], dtype: string, msg: string): void {
  if (t.dtype !== dtype || t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw new Error(`${msg}: got ${t.dtype} [${t.shape}], expected ${dtype} [${shape}]`);
  }
}

/** Same shape, dtype and values, bit for bit (used where the law involves no arithmetic). */
async function assertSame(actual: Tensor, expected: Tensor, msg = ""): Promise<void> {
  assertShape(actual, expected.shape, expected.dtype, msg);
  assertClose(await values(actual), await values(expected), { ...EXACT, msg });
}

function f32Tensor(d: Draw, shape: readonly number[], min = -4, max = 4): Tensor {
  return toTensor(d.host(shape, "f32", real(min, max)));
}

Deno.test("the spec table has one entry per primitive, filed under its name", () => {
  const table = Object.keys(PRIMS).sort().join(" "), specs = [...PRIM_NAMES].sort().join(" ");
  if (table !== specs) throw new Error(`primitives: ${table}\nspecs: ${specs}`);
  for (const name of PRIM_NAMES) {
    if (PRIM_SPECS[name].name !== name) throw new Error(`spec ${name} is named ${PRIM_SPECS[name].name}`);
  }
});

// ---- (1) CPU values against the float64 references ------------------------------------------------

for (const name of PRIM_NAMES) {
  const spec = PRIM_SPECS[name];
  Deno.test(`${name} matches its float64 reference on random inputs`, async () => {
    await fc.assert(
      fc.asyncProperty(spec.cases, async (c) => {
        const want = c.reference();
        for (const precision of ["f32", "f64"] as const) {
          await setBackend("cpu", { precision });
          const out = c.build(...c.inputs.map(toTensor));
          assertShape(out, want.shape, want.dtype, `${name} on the ${precision} backend`);
          const tol = want.dtype === "f32" ? TOL[precision] : EXACT;
          assertClose(await values(out), want.data, { ...tol, msg: `${name} on the ${precision} backend` });
        }
      }),
      { numRuns: RUNS },
    );
  });
}

// ---- (2) vjps against central finite differences, in float64 ---------------------------------------

for (const name of PRIM_NAMES) {
  const spec = PRIM_SPECS[name];
  if (spec.differentiable.length > 0) {
    Deno.test(`${name} vjp matches finite differences`, async () => {
      useF64();
      await fc.assert(
        fc.asyncProperty(spec.gradCases, fc.integer({ min: 1, max: 2 ** 30 }), async (c, seed) => {
          const xs = c.inputs.map(toTensor);
          // Random output weights, so every output element enters the scalar with its own factor.
          const shape = c.reference().shape;
          const w = tensor(randomValues(sizeOf(shape), seed + 7919), { shape });
          const f = (...ds: Tensor[]) => {
            const all = [...xs];
            spec.differentiable.forEach((k, i) => (all[k] = ds[i]));
            return c.build(...all).mul(w).sum();
          };
          await checkGradFD(f, spec.differentiable.map((k) => xs[k]), { seed, ...FD, msg: name });
        }),
        { numRuns: GRAD_RUNS },
      );
    });
  } else if (spec.noVjp !== undefined) {
    Deno.test(`${name} refuses to be differentiated, saying why`, async () => {
      const [c] = fc.sample(spec.gradCases, 1);
      const xs = c.inputs.map(toTensor);
      await assertThrowsMsg(() => grad((x: Tensor) => c.build(x, ...xs.slice(1)).sum())(xs[0]), spec.noVjp!);
    });
  } else if (fc.sample(spec.gradCases, 1)[0].inputs.some((x) => x.dtype === "f32")) { // iota has no inputs
    Deno.test(`${name} passes no gradient to its f32 inputs`, async () => {
      useF64();
      await fc.assert(
        fc.asyncProperty(spec.gradCases, async (c) => {
          const xs = c.inputs.map(toTensor);
          const argnums = xs.flatMap((x, i) => (x.dtype === "f32" ? [i] : []));
          const shape = c.reference().shape;
          const w = tensor(randomValues(sizeOf(shape), 3), { shape });
          const gs: Tensor[] = grad((...ys: Tensor[]) => c.build(...ys).cast("f32").mul(w).sum(), { argnums })(...xs);
          for (const g of gs) assertClose(await values(g), new Array(g.size).fill(0), { ...EXACT, msg: name });
        }),
        { numRuns: 10 },
      );
    });
  }
}

// ---- (3) Algebraic laws ------------------------------------------------------------------------------

function law(name: string, body: (d: Draw) => Promise<void>, precision: "f32" | "f64" = "f32"): void {
  Deno.test(name, async () => {
    await setBackend("cpu", { precision });
    await fc.assert(fc.asyncProperty(fc.noShrink(fc.gen()), (g) => body(new Draw(g))), { numRuns: RUNS });
  });
}

law("add and mul commute under broadcasting", async (d) => {
  const out = d.shape(0, 3, true);
  const x = f32Tensor(d, d.broadcastable(out)), y = f32Tensor(d, d.broadcastable(out));
  await assertSame(x.add(y), y.add(x), "add");
  await assertSame(x.mul(y), y.mul(x), "mul");
});

law("a broadcast equals explicit tiling with concat", async (d) => {
  const target = d.shape(0, 3), shape = d.broadcastable(target), x = f32Tensor(d, shape);
  let tiled = x.reshape([...new Array(target.length - shape.length).fill(1), ...shape]);
  target.forEach((n, a) => {
    if (tiled.shape[a] === 1 && n !== 1) tiled = ops.concat(new Array(n).fill(tiled), { axis: a });
  });
  await assertSame(x.broadcastTo(target), tiled);
  // And a broadcasting add equals the add of the explicitly tiled operands.
  const y = f32Tensor(d, target);
  await assertSame(x.add(y), tiled.add(y), "add");
});

law("permuting by a permutation and then by its inverse is the identity", async (d) => {
  const x = f32Tensor(d, d.shape(0, 4, true)), perm = d.shuffle([...x.shape.keys()]);
  const inv = new Array<number>(perm.length);
  perm.forEach((p, i) => (inv[p] = i));
  await assertSame(x.permute(perm).permute(inv), x);
  await assertSame(x.permute(inv).permute(perm), x);
});

law("reshaping there and back is the identity", async (d) => {
  const x = f32Tensor(d, d.shape(0, 3, true)), dims = d.shuffle(x.shape);
  if (d.bool()) dims.push(1);
  await assertSame(x.reshape(dims).reshape(x.shape), x);
  await assertSame(x.reshape([x.size]).reshape(x.shape), x);
});

law("sum is linear: sum(a x + b y) = a sum(x) + b sum(y)", async (d) => {
  const x = f32Tensor(d, d.shape(0, 3, true)), y = f32Tensor(d, x.shape);
  const a = d.int(-8, 8) / 4, b = d.int(-8, 8) / 4; // exact in float32
  const axis = [...x.shape.keys()].filter(() => d.bool());
  const lhs = x.mul(a).add(y.mul(b)).sum({ axis });
  const rhs = x.sum({ axis }).mul(a).add(y.sum({ axis }).mul(b));
  assertClose(await values(lhs), await values(rhs), { rtol: 1e-12, atol: 1e-12 });
}, "f64");

law("cumsum's last element along the axis equals the sum (reverse: the first)", async (d) => {
  const x = f32Tensor(d, d.shape(1, 3)), [a] = d.axis(x.ndim), n = x.shape[a];
  const total = x.sum({ axis: a, keepdims: true });
  const last = x.cumsum(a).slice(x.shape.map((_, i) => (i === a ? n - 1 : 0)));
  const first = x.cumsum(a, { reverse: true }).slice([], x.shape.map((dim, i) => (i === a ? 1 : dim)));
  assertClose(await values(last), await values(total), { rtol: 1e-12, atol: 1e-12, msg: "forward" });
  assertClose(await values(first), await values(total), { rtol: 1e-12, atol: 1e-12, msg: "reverse" });
}, "f64");

law("slicing out the padding recovers the input", async (d) => {
  const x = f32Tensor(d, d.shape(0, 3, true));
  const widths = x.shape.map(() => [d.int(0, 3), d.int(0, 3)] as const);
  const padded = x.pad(widths);
  await assertSame(padded.slice(widths.map(([lo]) => lo), widths.map(([lo], i) => lo + x.shape[i])), x);
  assertClose([await padded.sum().item()], [await x.sum().item()], { rtol: 1e-6, atol: 1e-6, msg: "zeros" });
});

law("concat then slice recovers each part", async (d) => {
  const base = d.shape(1, 3, true), [a, written] = d.axis(base.length);
  const parts = [0, 1, 2].map(() => f32Tensor(d, base.map((dim, i) => (i === a ? d.pick([0, 1, 2, 5]) : dim))));
  const joined = ops.concat(parts, { axis: written });
  let at = 0;
  for (const p of parts) {
    const starts = base.map((_, i) => (i === a ? at : 0));
    at += p.shape[a];
    await assertSame(joined.slice(starts, joined.shape.map((dim, i) => (i === a ? at : dim))), p);
  }
});

law("gather with arange indices is the identity", async (d) => {
  const x = f32Tensor(d, d.shape(1, 3, true)), [a, written] = d.axis(x.ndim);
  await assertSame(x.gather(ops.arange(x.shape[a], undefined, { dtype: "i32" }), written), x);
});

law("gather and scatterAdd are adjoint: <gather(x, i), g> = <x, scatterAdd(g, i)>", async (d) => {
  const x = f32Tensor(d, d.shape(1, 3)), [a] = d.axis(x.ndim);
  const idx = toTensor(d.host(d.shape(0, 2), "i32", fc.integer({ min: 0, max: x.shape[a] - 1 })));
  const gathered = x.gather(idx, a), g = f32Tensor(d, gathered.shape);
  // The vjp of gather is scatterAdd; read it back through vjp of a linear function of x.
  const scattered: Tensor = grad((y: Tensor) => y.gather(idx, a).mul(g).sum())(x);
  const lhs = await gathered.mul(g).sum().item(), rhs = await x.mul(scattered).sum().item();
  assertClose([lhs], [rhs], { rtol: 1e-12, atol: 1e-12 });
}, "f64");

law("matmul is associative", async (d) => {
  const [m, k, n, p] = [0, 1, 2, 3].map(() => d.pick([1, 2, 3, 5]));
  const a = f32Tensor(d, [m, k]), b = f32Tensor(d, [k, n]), c = f32Tensor(d, [n, p]);
  assertClose(await values(a.matmul(b).matmul(c)), await values(a.matmul(b.matmul(c))), { rtol: 1e-12, atol: 1e-12 });
}, "f64");

// ---- (4) Higher derivatives against closed forms, in float64 -----------------------------------------

const D2 = { rtol: 1e-10, atol: 1e-12 };
const X = [-1.5, -0.75, -0.2, 0.3, 1, 1.7].map(Math.fround);
const POS = [0.2, 0.5, 1, 1.5, 2.5].map(Math.fround);

/** f'' elementwise, as grad of the sum of the elementwise first derivative. */
function secondDerivative(f: (x: Tensor) => Tensor): (x: Tensor) => Tensor {
  return grad((x: Tensor) => grad((y: Tensor) => f(y).sum())(x).sum());
}

const SECOND: [string, readonly number[], (x: Tensor) => Tensor, (x: number) => number][] = [
  ["x * x * x is 6x", X, (x) => x.mul(x).mul(x), (x) => 6 * x],
  ["pow(x, 3) is 6x", POS, (x) => x.pow(3), (x) => 6 * x],
  ["sin is -sin", X, (x) => x.sin(), (x) => -Math.sin(x)],
  ["cos is -cos", X, (x) => x.cos(), (x) => -Math.cos(x)],
  ["exp is exp", X, (x) => x.exp(), Math.exp],
  ["tanh is -2 tanh (1 - tanh^2)", X, (x) => x.tanh(), (x) => -2 * Math.tanh(x) * (1 - Math.tanh(x) ** 2)],
  ["log is -1/x^2", POS, (x) => x.log(), (x) => -1 / x ** 2],
  ["sqrt is -x^(-3/2) / 4", POS, (x) => x.sqrt(), (x) => -0.25 * x ** -1.5],
  ["1/x is 2/x^3", POS, (x) => tensor(1).div(x), (x) => 2 / x ** 3],
];

for (const [what, xs, f, d2] of SECOND) {
  Deno.test(`grad(grad) of ${what}`, async () => {
    useF64();
    assertClose(await values(secondDerivative(f)(tensor(xs))), xs.map(d2), D2);
  });
}

Deno.test("grad(grad(grad)) of x^3 is 6 and of sin is -cos", async () => {
  useF64();
  const d3 = (f: (x: Tensor) => Tensor) => grad(grad(grad(f)));
  assertClose([await d3((x) => x.mul(x).mul(x))(tensor(Math.fround(0.7))).item()], [6], D2);
  assertClose(await values(d3((x) => x.sin())(tensor(0.7))), [-Math.cos(Math.fround(0.7))], D2);
});

Deno.test("mixed partials of x*y are 1 and of x^2 y^3 are 6 x y^2, in either order", async () => {
  useF64();
  const x0 = tensor(Math.fround(0.6)), y0 = tensor(Math.fround(1.3)), [x, y] = [0.6, 1.3].map(Math.fround);
  const xy = grad((y: Tensor) => grad((x: Tensor) => x.mul(y))(x0))(y0);
  assertClose(await values(xy), [1], D2);
  const f = (x: Tensor, y: Tensor) => x.square().mul(y.pow(3));
  const fxy = grad((y: Tensor) => grad((x: Tensor) => f(x, y))(x0))(y0);
  const fyx = grad((x: Tensor) => grad((y: Tensor) => f(x, y))(y0))(x0);
  assertClose(await values(fxy), [6 * x * y ** 2], D2);
  assertClose(await values(fyx), [6 * x * y ** 2], D2);
});

// The inner grad must treat the outer x as a constant ("perturbation confusion" otherwise):
// h(x) = x * [d/dy (x y)] at y = x = x * x, so h'(x) = 2x. A confused implementation that also lets
// the inner derivative flow into x (because y = x) gets d/dy = 2x, h = 2x^2 and h' = 4x.
Deno.test("nested grad over a closed-over input: d/dx [x * d/dy (x y) at y = x] is 2x", async () => {
  useF64();
  const h = grad((x: Tensor) => x.mul(grad((y: Tensor) => x.mul(y))(x)));
  assertClose(await values(h(tensor(3))), [6], D2);
  assertClose(await values(h(tensor([-1, 0.5, 2]).sum())), [2 * 1.5], D2);
  // Siskind and Pearlmutter's example: d/dx [x * d/dy (x + y) at y = 1] = d/dx [x] = 1 (confusion gives 2).
  const k = grad((x: Tensor) => x.mul(grad((y: Tensor) => x.add(y))(tensor(1))));
  assertClose(await values(k(tensor(5))), [1], D2);
});

Deno.test("a Hessian-vector product of |A x|^2 / 2 is A^T A v", async () => {
  useF64();
  const [m, n] = [3, 5], A = randomValues(m * n, 11).map(Math.fround);
  const x = randomValues(n, 12).map(Math.fround), v = randomValues(n, 13).map(Math.fround);
  const a = tensor(A, { shape: [m, n] });
  const f = (x: Tensor) => a.matmul(x).square().sum().mul(0.5);
  const hv = grad((x: Tensor) => grad(f)(x).mul(tensor(v)).sum())(tensor(x));
  const av = Array.from({ length: m }, (_, i) => v.reduce((s, vj, j) => s + A[i * n + j] * vj, 0));
  const want = Array.from({ length: n }, (_, j) => av.reduce((s, avi, i) => s + A[i * n + j] * avi, 0));
  assertClose(await values(hv), want, D2);
});

Deno.test("a Hessian-vector product of logsumexp is p v - p (p . v), p = softmax(x)", async () => {
  useF64();
  const x = randomValues(6, 21).map((v) => Math.fround(3 * v)), v = randomValues(6, 22).map(Math.fround);
  const hv = grad((y: Tensor) => grad((z: Tensor) => ops.logsumexp(z))(y).mul(tensor(v)).sum())(tensor(x));
  const m = Math.max(...x), e = x.map((xi) => Math.exp(xi - m)), s = e.reduce((a, b) => a + b, 0);
  const p = e.map((ei) => ei / s), pv = p.reduce((acc, pi, i) => acc + pi * v[i], 0);
  assertClose(await values(hv), p.map((pi, i) => pi * v[i] - pi * pv), D2);
});

Deno.test("ties split the gradient evenly between maximum's operands and among max's winners", async () => {
  useF64();
  const x = tensor([1, -2, 3]), y = tensor([1, 0, 3]);
  assertClose(await values(grad((x: Tensor) => x.maximum(x).sum())(x)), [1, 1, 1], EXACT);
  const [dx, dy] = grad((x: Tensor, y: Tensor) => x.maximum(y).sum(), { argnums: [0, 1] })(x, y);
  assertClose(await values(dx), [0.5, 0, 0.5], EXACT);
  assertClose(await values(dy), [0.5, 1, 0.5], EXACT);
  assertClose(await values(grad((x: Tensor) => x.max())(tensor([1, 3, 3, -4]))), [0, 0.5, 0.5, 0], EXACT);
  const rows = grad((x: Tensor) => x.max({ axis: 1 }).mul(tensor([1, 2])).sum())(tensor([[2, 2, 1], [0, 5, 4]]));
  assertClose(await values(rows), [0.5, 0.5, 0, 0, 2, 0], EXACT);
});
