// Tests of grad, valueAndGrad and vjp: pytrees, argnums, aux outputs, cotangents, realization, nesting, closures.

import { grad, ops, Tensor, tensor, valueAndGrad, vjp, zeros } from "../../mod.ts";
import { assertClose, checkGradFD, randomValues, useF64, values } from "../helpers.ts";

// Float64 throughout: closed forms below are compared at 1e-12 and finite differences need it. Inputs
// tensor() data is stored as f32, so references round it with Math.fround; number operands
// (e.g. the 2 in x.mul(2)) keep their float64 value on the float64 backend.
useF64();
const TIGHT = { atol: 1e-12, rtol: 1e-12 };
const EXACT = { atol: 0, rtol: 0 };

function assertShape(t: Tensor, shape: readonly number[]): void {
  if (!(t instanceof Tensor) || t.shape.join() !== shape.join()) {
    throw new Error(`expected a tensor of shape [${shape}], got ${t instanceof Tensor ? `[${t.shape}]` : t}`);
  }
}

function assertKeys(o: object, keys: string[]): void {
  const got = Object.keys(o).sort().join();
  if (got !== [...keys].sort().join()) throw new Error(`expected keys ${keys}, got ${got}`);
}

Deno.test("grad of a record pytree returns a record of the same structure with closed-form leaves", async () => {
  // loss = sum((x @ w + b)^2): dw = x^T (2 r), db = sum_rows(2 r), with r = x @ w + b.
  const x = [[1, 2], [3, -1]], w = [[0.5, -1, 2], [1, 0, -0.5]], b = [0.1, 0.2, -0.3].map(Math.fround);
  const params = { w: tensor(w), b: tensor(b), extra: null };
  const loss = (p: typeof params) => tensor(x).matmul(p.w).add(p.b).square().sum();
  const g = grad(loss)(params);
  assertKeys(g, ["w", "b", "extra"]);
  if (g.extra !== null) throw new Error(`null leaves must stay null, got ${g.extra}`);
  assertShape(g.w, [2, 3]);
  assertShape(g.b, [3]);
  const r = x.map((row) => b.map((bj, j) => row[0] * w[0][j] + row[1] * w[1][j] + bj));
  const dw = [0, 1].flatMap((k) => b.map((_, j) => r.reduce((s, ri, i) => s + 2 * ri[j] * x[i][k], 0)));
  const db = b.map((_, j) => r.reduce((s, ri) => s + 2 * ri[j], 0));
  assertClose(await values(g.w), dw, TIGHT);
  assertClose(await values(g.b), db, TIGHT);
});

Deno.test("grad of nested arrays keeps the nesting, and valueAndGrad also returns the value", async () => {
  const tree = [tensor([1, 2]), [tensor(3), { k: tensor([[4]]) }]] as const;
  const f = (t: typeof tree) => t[0].mul(t[1][0]).sum().add(t[1][1].k.square().sum());
  const [value, g] = valueAndGrad(f)(tree);
  assertClose(await values(value), [1 * 3 + 2 * 3 + 16], EXACT);
  if (!Array.isArray(g) || g.length !== 2 || !Array.isArray(g[1]) || g[1].length !== 2) {
    throw new Error("the gradient must be [leaf, [leaf, { k: leaf }]]");
  }
  assertKeys(g[1][1], ["k"]);
  assertClose(await values(g[0]), [3, 3], EXACT);
  assertShape(g[1][0], []);
  assertClose(await values(g[1][0]), [3], EXACT);
  assertShape(g[1][1].k, [1, 1]);
  assertClose(await values(g[1][1].k), [8], EXACT);
});

Deno.test("vjp maps a pytree cotangent with non-unit values to closed-form input cotangents", async () => {
  const [out, back] = vjp(
    (p: { a: Tensor; b: Tensor }) => ({ prod: p.a.mul(p.b), parts: [p.a.sin(), p.b.sum()] }),
    { a: tensor([0.5, 1, 2]), b: tensor([3, -1, 4]) },
  );
  assertClose(await values(out.prod), [1.5, -1, 8], EXACT);
  const ct = { prod: tensor([2, -3, 0.5]), parts: [tensor([1, 10, 100]), tensor(7)] };
  const [d] = back(ct);
  // d/da: ct.prod * b + ct.sin * cos(a); d/db: ct.prod * a + ct.sum.
  const a = [0.5, 1, 2], b = [3, -1, 4];
  assertClose(await values(d.a), a.map((ai, i) => [2, -3, 0.5][i] * b[i] + [1, 10, 100][i] * Math.cos(ai)), {
    atol: 1e-12,
  });
  assertClose(await values(d.b), b.map((_, i) => [2, -3, 0.5][i] * a[i] + 7), TIGHT);
});

Deno.test("vjp scales linearly with the cotangent and accepts several primals", async () => {
  const x = tensor([0.3, -1.2, 2]), y = tensor([1, 2, 3]);
  const [, back] = vjp((u: Tensor, v: Tensor) => u.exp().mul(v), x, y);
  const [dx1, dy1] = back(tensor([1, 1, 1]));
  const [dx3, dy3] = back(tensor([3, -2, 0.5]));
  const ex = [0.3, -1.2, 2].map((v) => Math.exp(Math.fround(v)));
  assertClose(await values(dx1), ex.map((e, i) => e * [1, 2, 3][i]), TIGHT);
  assertClose(await values(dy1), ex, TIGHT);
  assertClose(await values(dx3), ex.map((e, i) => e * [1, 2, 3][i] * [3, -2, 0.5][i]), TIGHT);
  assertClose(await values(dy3), ex.map((e, i) => e * [3, -2, 0.5][i]), TIGHT);
});

Deno.test("argnums picks one argument as a number, or a tuple of gradients in the given order", async () => {
  const f = (a: Tensor, b: Tensor, c: Tensor) => a.mul(b).mul(c.square()).sum();
  const a = tensor([1, 2]), b = tensor([3, 4]), c = tensor([5, 6]);
  assertClose(await values(grad(f, { argnums: 1 })(a, b, c)), [1 * 25, 2 * 36], EXACT);
  const [gc, ga] = grad(f, { argnums: [2, 0] })(a, b, c);
  assertClose(await values(gc), [2 * 5 * 3, 2 * 6 * 8], EXACT);
  assertClose(await values(ga), [3 * 25, 4 * 36], EXACT);
  const [value, [gb]] = valueAndGrad(f, { argnums: [1] })(a, b, c);
  assertClose(await values(value), [75 + 288], EXACT);
  assertClose(await values(gb), [25, 72], EXACT);
});

Deno.test("integer arguments outside argnums are passed through undifferentiated", async () => {
  const loss = (logits: Tensor, targets: Tensor) => ops.crossEntropy(logits, targets);
  const g = grad(loss)(tensor([[0, 0], [1, 1]]), tensor([1, 0], { dtype: "i32" }));
  assertClose(await values(g), [0.25, -0.25, -0.25, 0.25], TIGHT);
});

Deno.test("hasAux returns the aux pytree unchanged beside the loss and its gradient", async () => {
  const f = (w: Tensor) => {
    const pred = w.mul(2);
    return [pred.square().sum(), { pred, note: [w.sum()] }] as const;
  };
  const w = tensor([1, -2]);
  const [[loss, aux], g] = valueAndGrad(f, { hasAux: true })(w);
  assertClose(await values(loss), [20], EXACT);
  const { pred, note } = aux as { pred: Tensor; note: Tensor[] };
  assertClose(await values(pred), [2, -4], EXACT);
  assertClose(await values(note[0]), [-1], EXACT);
  assertClose(await values(g), [8, -16], EXACT);
  // grad with hasAux returns [grads, aux], differentiating the loss only.
  const [g2, aux2] = grad(f, { hasAux: true })(w);
  assertClose(await values(g2), [8, -16], EXACT);
  assertClose(await values((aux2 as { pred: Tensor }).pred), [2, -4], EXACT);
});

Deno.test("the gradient of a function that ignores its input is zeros of the input's shapes", async () => {
  const c = tensor([1, 2, 3]);
  const g = grad((p: { a: Tensor; b: Tensor[] }) => c.sum().add(p.b[0].sum().mul(0)))({
    a: tensor([[1, 2], [3, 4]]),
    b: [tensor([5]), tensor([6, 7])],
  });
  assertShape(g.a, [2, 2]);
  assertClose(await values(g.a), [0, 0, 0, 0], EXACT);
  assertClose(await values(g.b[0]), [0], EXACT);
  assertShape(g.b[1], [2]);
  assertClose(await values(g.b[1]), [0, 0], EXACT);
  const [dx] = vjp((_x: Tensor) => c.mul(2), tensor([9]))[1](tensor([1, 1, 1]));
  assertClose(await values(dx), [0], EXACT);
});

Deno.test("reading outputs and intermediates before calling the vjp function does not break the backward pass", async () => {
  const x = tensor([0.5, -1, 2]);
  const [outs, back] = vjp((v: Tensor) => {
    const h = v.exp();
    const y = h.mul(v).sum();
    return [h, y];
  }, x);
  // Realize both the intermediate h and the output y first: their graphs are cut by realization.
  const xs = [0.5, -1, 2];
  assertClose(await values(outs[0]), xs.map(Math.exp), TIGHT);
  assertClose(await values(outs[1]), [xs.reduce((s, v) => s + v * Math.exp(v), 0)], TIGHT);
  const [dx] = back([zeros([3]), tensor(1)]);
  assertClose(await values(dx), xs.map((v) => (1 + v) * Math.exp(v)), TIGHT);
  // Reading the value first and the gradient second works the same through valueAndGrad.
  const [val, g] = valueAndGrad((v: Tensor) => ops.softplus(v).sum())(x);
  await values(val);
  assertClose(await values(g), xs.map((v) => 1 / (1 + Math.exp(-v))), TIGHT);
});

Deno.test("grad through tensors realized before the call uses them as plain inputs", async () => {
  const x = tensor([1, 2, 3]).mul(2);
  await values(x); // x is now realized data
  assertClose(await values(grad((v: Tensor) => v.square().sum())(x)), [4, 8, 12], EXACT);
});

Deno.test("grad(grad(f)) of composites has the closed-form second derivative", async () => {
  const xs = [-1.5, 0.2, 2].map(Math.fround);
  // f = sum(x^4): f'' = 12 x^2 and f''' = 24 x.
  const d2 = grad((v: Tensor) => grad((u: Tensor) => u.pow(4).sum())(v).sum())(tensor(xs));
  assertClose(await values(d2), xs.map((v) => 12 * v * v), TIGHT);
  const d3 = grad((w: Tensor) => grad((v: Tensor) => grad((u: Tensor) => u.pow(4).sum())(v).sum())(w).sum())(
    tensor(xs),
  );
  assertClose(await values(d3), xs.map((v) => 24 * v), TIGHT);
  // Hessian-vector product of logsumexp: H v = p * (v - p.v), p = softmax(x).
  const vv = [1, -2, 0.5];
  const hv = grad((x: Tensor) => grad((u: Tensor) => ops.logsumexp(u))(x).mul(tensor(vv)).sum())(tensor(xs));
  const e = xs.map(Math.exp), z = e.reduce((s, v) => s + v), p = e.map((v) => v / z);
  const pv = p.reduce((s, pi, i) => s + pi * vv[i], 0);
  assertClose(await values(hv), p.map((pi, i) => pi * (vv[i] - pv)), TIGHT);
});

Deno.test("grad of grad matches finite differences on a softmax-and-norm composite", async () => {
  const f = (x: Tensor) =>
    ops.layerNorm(ops.softmax(x.mul(1.5))).mul(tensor(randomValues(8, 2), { shape: [2, 4] }))
      .sum();
  const x = tensor(randomValues(8, 1).map((v) => 2 * v), { shape: [2, 4] });
  const w = tensor(randomValues(8, 3), { shape: [2, 4] });
  await checkGradFD((v) => grad(f)(v).mul(w).sum(), [x], { msg: "d/dx <grad f, w>" });
});

Deno.test("an input used many times accumulates every contribution", async () => {
  const x = tensor([0.5, -2]);
  // sum_{k=1..100} k x, plus x * x * x: gradient 5050 + 3 x^2.
  const g = grad((v: Tensor) => {
    let acc = v.mul(v).mul(v);
    for (let k = 1; k <= 100; k++) acc = acc.add(v.mul(k));
    return acc.sum();
  })(x);
  assertClose(await values(g), [5050 + 0.75, 5050 + 12], { atol: 1e-9, rtol: 1e-12 });
  // Through broadcasting and a reduction in the same expression.
  const gb = grad((v: Tensor) => v.reshape([2, 1]).add(v).square().sum())(x);
  // s_ij = x_i + x_j; d/dx_k sum s^2 = 2 (sum_j s_kj + sum_i s_ik) = 4 sum_j (x_k + x_j).
  assertClose(await values(gb), [4 * (1 + -1.5), 4 * (-1.5 + -4)], TIGHT);
});

Deno.test("the same tensor at two leaves of a pytree gets one gradient per leaf", async () => {
  const t = tensor([1, 2]);
  const g = grad((p: { a: Tensor; b: Tensor }) => p.a.mul(2).add(p.b.mul(3)).sum())({ a: t, b: t });
  assertClose(await values(g.a), [2, 2], EXACT);
  assertClose(await values(g.b), [3, 3], EXACT);
});

Deno.test("tensors closed over by f are constants, including an outer grad's input (no perturbation confusion)", async () => {
  const c = tensor([3, -1]);
  assertClose(await values(grad((x: Tensor) => x.mul(c).add(c.square()).sum())(tensor([1, 1]))), [3, -1], EXACT);
  // f(x) = sum(x * d/dy sum(x * y)) = sum(x * x), so f'(x) = 2x (not x, not 3x).
  const f = (x: Tensor) => x.mul(grad((y: Tensor) => x.mul(y).sum())(tensor([1, 1]))).sum();
  assertClose(await values(grad(f)(tensor([2, -5]))), [4, -10], EXACT);
  // A closed-over input of the outer function counts for the outer grad only.
  const h = (x: Tensor) => grad((y: Tensor) => y.mul(y).mul(x).sum())(x).sum(); // sum(2 x * x)
  assertClose(await values(grad(h)(tensor([1.5, -3]))), [6, -12], EXACT);
});

Deno.test("long chains differentiate without deep recursion", async () => {
  const x = tensor([1]);
  const g = grad((v: Tensor) => {
    let y = v;
    for (let i = 0; i < 5000; i++) y = y.mul(1.0001);
    return y.sum();
  })(x);
  assertClose(await values(g), [1.0001 ** 5000], { atol: 0, rtol: 1e-10 });
});
