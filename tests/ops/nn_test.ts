// Tests of the norms and the loss (rmsNorm, layerNorm, l2Normalize, crossEntropy) against plain JS math.

import fc from "fast-check";
import { grad, ops, type Tensor, tensor } from "../../mod.ts";
import { assertClose, checkGradFD, inF64, randomValues, values } from "../helpers.ts";

const rowsOf = (data: number[], cols: number) =>
  Array.from({ length: data.length / cols }, (_, r) => data.slice(r * cols, (r + 1) * cols));
const meanOf = (v: number[]) => v.reduce((s, x) => s + x, 0) / v.length;
function lse(v: number[]): number {
  const m = Math.max(...v);
  return m + Math.log(v.reduce((s, x) => s + Math.exp(x - m), 0));
}

/** A random [rows, cols] f32 matrix with values in [lo, hi]. */
const arbMatrix = (lo: number, hi: number, maxRows = 5, maxCols = 8) =>
  fc.tuple(fc.integer({ min: 1, max: maxRows }), fc.integer({ min: 1, max: maxCols })).chain(([r, c]) =>
    fc.record({
      rows: fc.constant(r),
      cols: fc.constant(c),
      data: fc.array(fc.double({ min: lo, max: hi, noNaN: true }).map(Math.fround), {
        minLength: r * c,
        maxLength: r * c,
      }),
    })
  );

Deno.test("rmsNorm, layerNorm and l2Normalize match hand-computed values", async () => {
  const data = [1, -2, 3, 0.5, 4, 4, 4, 4];
  const x = tensor(data, { shape: [2, 4] });
  const weight = [0.5, 1, -1, 2], bias = [0.1, 0, -0.2, 1];
  const eps = 1e-6;
  const rms = rowsOf(data, 4).flatMap((r) => {
    const s = Math.sqrt(meanOf(r.map((v) => v * v)) + eps);
    return r.map((v, j) => (v / s) * weight[j]);
  });
  assertClose(await values(ops.rmsNorm(x, { weight: tensor(weight) })), rms, { atol: 1e-6, rtol: 1e-5 });
  const ln = rowsOf(data, 4).flatMap((r) => {
    const m = meanOf(r), s = Math.sqrt(meanOf(r.map((v) => (v - m) ** 2)) + eps);
    return r.map((v, j) => ((v - m) / s) * weight[j] + bias[j]);
  });
  assertClose(await values(ops.layerNorm(x, { weight: tensor(weight), bias: tensor(bias) })), ln, {
    atol: 1e-5,
    rtol: 1e-5,
  });
  // A constant row has zero variance: eps keeps layerNorm at exactly 0 + bias instead of NaN.
  assertClose(await values(ops.layerNorm(x).slice([1])), [0, 0, 0, 0], { atol: 0, rtol: 0 });
  assertClose(await values(ops.l2Normalize(tensor([3, 4]))), [0.6, 0.8], { atol: 1e-6 });
  assertClose(await values(ops.l2Normalize(tensor([[3, 1], [4, 0]]), { axis: 0 })), [0.6, 1, 0.8, 0], { atol: 1e-6 });
  // mean square 12.5, plus eps 0.5.
  assertClose(await values(ops.rmsNorm(tensor([3, 4]), { eps: 0.5 })), [3 / Math.sqrt(13), 4 / Math.sqrt(13)], {
    atol: 1e-6,
  });
});

Deno.test("rmsNorm output has unit RMS (atol 1e-4 for rows with mean square >= 0.01)", async () => {
  await fc.assert(
    fc.asyncProperty(arbMatrix(-5, 5), async ({ cols, data }) => {
      const rows = rowsOf(data, cols);
      fc.pre(rows.every((r) => meanOf(r.map((v) => v * v)) >= 0.01));
      const y = rowsOf(await values(ops.rmsNorm(tensor(data, { shape: [rows.length, cols] }))), cols);
      // With eps = 1e-6 the exact RMS is sqrt(ms / (ms + eps)) >= 1 - 5e-5.
      assertClose(y.map((r) => Math.sqrt(meanOf(r.map((v) => v * v)))), rows.map(() => 1), { atol: 1e-4, rtol: 0 });
    }),
    { numRuns: 80 },
  );
});

Deno.test("layerNorm gives zero mean and unit variance per row, then applies weight and bias", async () => {
  await fc.assert(
    fc.asyncProperty(arbMatrix(-5, 5), async ({ cols, data }) => {
      const rows = rowsOf(data, cols);
      fc.pre(cols >= 2 && rows.every((r) => meanOf(r.map((v) => (v - meanOf(r)) ** 2)) >= 0.01));
      const x = tensor(data, { shape: [rows.length, cols] });
      const y = rowsOf(await values(ops.layerNorm(x)), cols);
      assertClose(y.map(meanOf), rows.map(() => 0), { atol: 1e-5, rtol: 0, msg: "mean" });
      assertClose(y.map((r) => meanOf(r.map((v) => v * v))), rows.map(() => 1), { atol: 2e-4, rtol: 0, msg: "var" });
      const w = randomValues(cols, cols), b = randomValues(cols, cols + 1);
      const yw = await values(ops.layerNorm(x, { weight: tensor(w), bias: tensor(b) }));
      assertClose(yw, y.flatMap((r) => r.map((v, j) => v * Math.fround(w[j]) + Math.fround(b[j]))), {
        atol: 1e-5,
        rtol: 1e-5,
      });
    }),
    { numRuns: 80 },
  );
});

Deno.test("l2Normalize gives unit L2 norm along the chosen axis", async () => {
  await fc.assert(
    fc.asyncProperty(arbMatrix(-5, 5), fc.constantFrom(0, 1, -1), async ({ rows, cols, data }, axis) => {
      const x = tensor(data, { shape: [rows, cols] });
      const y = await values(ops.l2Normalize(x, { axis }));
      const a = (axis + 2) % 2;
      const lines = a === 1
        ? rowsOf(data, cols).map((_, r) => [...Array(cols).keys()].map((c) => r * cols + c))
        : [...Array(cols).keys()].map((c) => [...Array(rows).keys()].map((r) => r * cols + c));
      for (const line of lines) {
        const ss = line.reduce((s, i) => s + data[i] ** 2, 0);
        if (ss < 0.01) continue;
        const norm = Math.sqrt(line.reduce((s, i) => s + y[i] ** 2, 0));
        assertClose([norm], [1], { atol: 1e-4, rtol: 0, msg: `axis ${axis}` });
        // Direction is kept: y is a positive multiple of x.
        line.forEach((i) => assertClose([y[i]], [data[i] / Math.sqrt(ss + 1e-6)], { atol: 1e-6, rtol: 1e-5 }));
      }
    }),
    { numRuns: 80 },
  );
});

Deno.test("crossEntropy equals -mean log softmax at the targets, for each reduction", async () => {
  await fc.assert(
    fc.asyncProperty(
      arbMatrix(-8, 8, 6, 7).chain((m) =>
        fc.record({
          m: fc.constant(m),
          targets: fc.array(fc.nat(m.cols - 1), { minLength: m.rows, maxLength: m.rows }),
        })
      ),
      async ({ m: { rows, cols, data }, targets }) => {
        const logits = tensor(data, { shape: [rows, cols] }), t = tensor(targets, { dtype: "i32" });
        const nll = rowsOf(data, cols).map((r, i) => lse(r) - r[targets[i]]);
        assertClose(await values(ops.crossEntropy(logits, t, { reduction: "none" })), nll, { atol: 1e-5, rtol: 1e-5 });
        assertClose(await values(ops.crossEntropy(logits, t, { reduction: "sum" })), [nll.reduce((s, v) => s + v)], {
          atol: 1e-4,
          rtol: 1e-5,
        });
        assertClose(await values(ops.crossEntropy(logits, t)), [meanOf(nll)], { atol: 1e-5, rtol: 1e-5 });
        // The same through the library's own softmax: -mean log p[target].
        const p = rowsOf(await values(ops.softmax(logits)), cols);
        assertClose(await values(ops.crossEntropy(logits, t)), [-meanOf(p.map((r, i) => Math.log(r[targets[i]])))], {
          atol: 1e-4,
          rtol: 1e-5,
        });
      },
    ),
    { numRuns: 80 },
  );
});

Deno.test("crossEntropy of uniform logits is log(C), with extra leading axes", async () => {
  for (const [c, value] of [[2, 0], [5, 7.5], [50, -3]] as const) {
    const logits = ops.full([2, 3, c], value), t = tensor([[0, 1, c - 1], [1, 0, 0]], { dtype: "i32" });
    assertClose(await values(ops.crossEntropy(logits, t)), [Math.log(c)], { atol: 1e-6, rtol: 1e-6 });
    const none = ops.crossEntropy(logits, t, { reduction: "none" });
    if (none.shape.join() !== "2,3") throw new Error(`reduction none: expected shape [2, 3], got [${none.shape}]`);
  }
});

Deno.test("crossEntropy stays finite when other classes are masked with -Infinity", async () => {
  const logits = tensor([[0, -Infinity, Math.log(3)], [-Infinity, 1, -Infinity]]);
  const t = tensor([0, 1], { dtype: "i32" });
  assertClose(await values(ops.crossEntropy(logits, t, { reduction: "none" })), [Math.log(4), 0], { atol: 1e-6 });
  const g = await values(grad((l: Tensor) => ops.crossEntropy(l, t))(logits));
  // d/dlogits mean CE = (softmax - onehot) / N; masked classes get 0.
  assertClose(g, [(0.25 - 1) / 2, 0, 0.75 / 2, 0, 0, 0], { atol: 1e-6 });
});

Deno.test("crossEntropy gradient is (softmax - onehot) / N", async () => {
  const data = randomValues(12, 41).map((v) => 3 * v), targets = [2, 0, 3];
  const g = await values(
    grad((l: Tensor) => ops.crossEntropy(l, tensor(targets, { dtype: "i32" })))(
      tensor(data, { shape: [3, 4] }),
    ),
  );
  const expected = rowsOf(data.map(Math.fround), 4).flatMap((r, i) =>
    r.map((v, j) => (Math.exp(v - lse(r)) - (j === targets[i] ? 1 : 0)) / 3)
  );
  assertClose(g, expected, { atol: 1e-6, rtol: 1e-5 });
});

Deno.test("in float64 the norms and crossEntropy match the references to 1e-12", async () => {
  await inF64(async () => {
    const eps = 1e-6; // number constants keep their float64 value on the float64 backend
    const data = randomValues(20, 81).map((v) => Math.fround(4 * v)), w = randomValues(5, 82).map(Math.fround);
    const b = randomValues(5, 83).map(Math.fround);
    const x = tensor(data, { shape: [4, 5] });
    const tight = { atol: 1e-12, rtol: 1e-12 };
    const rows = rowsOf(data, 5);
    assertClose(
      await values(ops.rmsNorm(x, { weight: tensor(w) })),
      rows.flatMap((r) => r.map((v, j) => (v / Math.sqrt(meanOf(r.map((u) => u * u)) + eps)) * w[j])),
      tight,
    );
    assertClose(
      await values(ops.layerNorm(x, { weight: tensor(w), bias: tensor(b) })),
      rows.flatMap((r) => {
        const m = meanOf(r), s = Math.sqrt(meanOf(r.map((u) => (u - m) ** 2)) + eps);
        return r.map((v, j) => ((v - m) / s) * w[j] + b[j]);
      }),
      tight,
    );
    assertClose(
      await values(ops.l2Normalize(x)),
      rows.flatMap((r) => r.map((v) => v / Math.sqrt(r.reduce((acc, u) => acc + u * u, 0) + eps))),
      tight,
    );
    const targets = [4, 0, 2, 2];
    assertClose(
      await values(ops.crossEntropy(x, tensor(targets, { dtype: "i32" }), { reduction: "none" })),
      rows.map((r, i) => lse(r) - r[targets[i]]),
      tight,
    );
  });
});

Deno.test("norm and loss vjps match finite differences (float64, atol 1e-6, rtol 1e-5)", async () => {
  await inF64(async () => {
    const x = tensor(randomValues(24, 51).map((v) => 3 * v), { shape: [2, 3, 4] });
    const w = tensor(randomValues(4, 52).map((v) => 1 + v / 2));
    const b = tensor(randomValues(4, 53));
    const out = tensor(randomValues(24, 54), { shape: [2, 3, 4] });
    await checkGradFD((v, s) => ops.rmsNorm(v, { weight: s }).mul(out).sum(), [x, w], { msg: "rmsNorm" });
    await checkGradFD((v, s, c) => ops.layerNorm(v, { weight: s, bias: c }).mul(out).sum(), [x, w, b], {
      msg: "layerNorm",
    });
    await checkGradFD((v) => ops.l2Normalize(v).mul(out).sum(), [x], { msg: "l2Normalize" });
    await checkGradFD((v) => ops.l2Normalize(v, { axis: 1 }).mul(out).sum(), [x], { msg: "l2Normalize axis 1" });
    const t = tensor([[0, 3, 1], [2, 2, 0]], { dtype: "i32" });
    await checkGradFD((v) => ops.crossEntropy(v, t), [x], { msg: "crossEntropy mean" });
    await checkGradFD(
      (v) => ops.crossEntropy(v, t, { reduction: "none" }).mul(out.slice([0, 0, 0], [2, 3, 1]).reshape([2, 3])).sum(),
      [x],
      {
        msg: "crossEntropy none",
      },
    );
  });
});
