// Tests of the reducing composites (mean, variance, logsumexp, softmax, logSoftmax, argmax) against plain JS math.

import fc from "fast-check";
import { grad, ops, type Tensor, tensor } from "../../mod.ts";
import { assertClose, checkGradFD, inF64, randomValues, values } from "../helpers.ts";

/** For each output position of a reduction over `axes` (row-major over kept axes), the flat input indices. */
function lanes(shape: readonly number[], axes: readonly number[]): number[][] {
  const kept = shape.filter((_, a) => !axes.includes(a));
  const out: number[][] = Array.from({ length: kept.reduce((p, d) => p * d, 1) }, () => []);
  const size = shape.reduce((p, d) => p * d, 1);
  for (let flat = 0; flat < size; flat++) {
    const idx: number[] = [];
    let rem = flat;
    for (let a = shape.length - 1; a >= 0; a--) {
      idx[a] = rem % shape[a];
      rem = Math.floor(rem / shape[a]);
    }
    let o = 0;
    for (let a = 0; a < shape.length; a++) if (!axes.includes(a)) o = o * shape[a] + idx[a];
    out[o].push(flat);
  }
  return out;
}

const meanRef = (v: number[]) => v.reduce((s, x) => s + x, 0) / v.length;
const varRef = (v: number[]) => meanRef(v.map((x) => (x - meanRef(v)) ** 2));
function lseRef(v: number[]): number {
  const m = Math.max(...v);
  if (m === -Infinity) return -Infinity;
  return m + Math.log(v.reduce((s, x) => s + Math.exp(x - m), 0));
}

/** Reduces each lane of `data` to one number. */
function reduceRef(data: number[], shape: number[], axes: number[], f: (v: number[]) => number): number[] {
  return lanes(shape, axes).map((idx) => f(idx.map((i) => data[i])));
}

/** Maps each lane along `axis` to a lane of the same length, in place of the input. */
function alongAxis(data: number[], shape: number[], axis: number, f: (v: number[]) => number[]): number[] {
  const out = new Array<number>(data.length);
  for (const idx of lanes(shape, [axis])) f(idx.map((i) => data[i])).forEach((y, j) => (out[idx[j]] = y));
  return out;
}
const softmaxRef = (v: number[]) => v.map((x) => Math.exp(x - lseRef(v)));

/** A random f32 tensor of rank 1 to 3 with values in [lo, hi], and its f32-rounded values. */
const arbTensor = (lo: number, hi: number, maxRank = 3) =>
  fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 1, maxLength: maxRank }).chain((shape) => {
    const n = shape.reduce((p, d) => p * d, 1);
    return fc.record({
      shape: fc.constant(shape),
      data: fc.array(fc.double({ min: lo, max: hi, noNaN: true }).map(Math.fround), { minLength: n, maxLength: n }),
    });
  });

const arbAxes = (rank: number) =>
  fc.oneof(
    fc.constant(undefined),
    fc.integer({ min: -rank, max: rank - 1 }),
    fc.subarray([...Array(rank).keys()], { minLength: 1 }),
  );

const normalize = (axis: number | number[] | undefined, rank: number): number[] =>
  axis === undefined
    ? [...Array(rank).keys()]
    : (typeof axis === "number" ? [axis] : axis).map((a) => (a + rank) % rank);

Deno.test("mean and variance have their closed-form values on small examples", async () => {
  const x = tensor([[1, 2, 3, 4], [2, 2, 2, 10]]);
  assertClose(await values(ops.mean(x)), [26 / 8], { atol: 1e-6 });
  assertClose(await values(ops.mean(x, { axis: -1 })), [2.5, 4], { atol: 1e-6 });
  assertClose(await values(ops.variance(tensor([1, 2, 3, 4]))), [1.25], { atol: 1e-6 });
  assertClose(await values(ops.variance(x, { axis: 1 })), [1.25, 12], { atol: 1e-6 });
  assertClose(await values(ops.variance(x, { axis: 0 })), [0.25, 0, 0.25, 9], { atol: 1e-6 });
});

Deno.test("mean and variance over any axes match hand-computed sums (f32, atol 1e-5, rtol 1e-5)", async () => {
  await fc.assert(
    fc.asyncProperty(
      arbTensor(-10, 10).chain((t) =>
        fc.record({ t: fc.constant(t), axis: arbAxes(t.shape.length), keep: fc.boolean() })
      ),
      async ({ t: { shape, data }, axis, keep }) => {
        const x = tensor(data, { shape }), axes = normalize(axis, shape.length);
        const m = ops.mean(x, { axis, keepdims: keep }), v = ops.variance(x, { axis, keepdims: keep });
        const shapeRef = keep
          ? shape.map((d, a) => (axes.includes(a) ? 1 : d))
          : shape.filter((_, a) => !axes.includes(a));
        if (m.shape.join() !== shapeRef.join() || v.shape.join() !== shapeRef.join()) {
          throw new Error(`reduced shape [${m.shape}] / [${v.shape}], expected [${shapeRef}]`);
        }
        assertClose(await values(m), reduceRef(data, shape, axes, meanRef), { atol: 1e-5, rtol: 1e-5 });
        assertClose(await values(v), reduceRef(data, shape, axes, varRef), { atol: 1e-5, rtol: 1e-5 });
      },
    ),
    { numRuns: 80 },
  );
});

Deno.test("logsumexp, softmax and logSoftmax match hand-written float64 versions along any axis", async () => {
  await fc.assert(
    fc.asyncProperty(
      arbTensor(-15, 15).chain((t) =>
        fc.record({ t: fc.constant(t), axis: fc.integer({ min: -t.shape.length, max: t.shape.length - 1 }) })
      ),
      async ({ t: { shape, data }, axis }) => {
        const x = tensor(data, { shape }), a = (axis + shape.length) % shape.length;
        assertClose(await values(ops.logsumexp(x, { axis })), reduceRef(data, shape, [a], lseRef), {
          atol: 1e-5,
          rtol: 1e-6,
        });
        assertClose(await values(ops.softmax(x, { axis })), alongAxis(data, shape, a, softmaxRef), {
          atol: 1e-6,
          rtol: 1e-5,
        });
        const logSm = (v: number[]) => v.map((y) => y - lseRef(v));
        assertClose(await values(ops.logSoftmax(x, { axis })), alongAxis(data, shape, a, logSm), {
          atol: 1e-5,
          rtol: 1e-6,
        });
      },
    ),
    { numRuns: 80 },
  );
});

Deno.test("logsumexp over any set of axes, with or without keepdims, matches the float64 reference", async () => {
  await fc.assert(
    fc.asyncProperty(
      arbTensor(-15, 15).chain((t) =>
        fc.record({ t: fc.constant(t), axis: arbAxes(t.shape.length), keep: fc.boolean() })
      ),
      async ({ t: { shape, data }, axis, keep }) => {
        const axes = normalize(axis, shape.length);
        const out = ops.logsumexp(tensor(data, { shape }), { axis, keepdims: keep });
        const shapeRef = keep
          ? shape.map((d, a) => (axes.includes(a) ? 1 : d))
          : shape.filter((_, a) => !axes.includes(a));
        if (out.shape.join() !== shapeRef.join()) throw new Error(`shape [${out.shape}], expected [${shapeRef}]`);
        assertClose(await values(out), reduceRef(data, shape, axes, lseRef), { atol: 1e-5, rtol: 1e-6 });
      },
    ),
    { numRuns: 80 },
  );
});

Deno.test("logsumexp reduces all axes by default and keeps reduced axes on request", async () => {
  const data = [0.5, -1, 2, 3, 0, -2];
  const x = tensor(data, { shape: [2, 3] });
  const all = ops.logsumexp(x);
  if (all.ndim !== 0) throw new Error(`expected a scalar, got shape [${all.shape}]`);
  assertClose(await values(all), [lseRef(data.map(Math.fround))], { atol: 1e-6 });
  const kept = ops.logsumexp(x, { axis: 0, keepdims: true });
  if (kept.shape.join() !== "1,3") throw new Error(`expected shape [1, 3], got [${kept.shape}]`);
  assertClose(await values(kept), [lseRef([0.5, 3]), lseRef([-1, 0]), lseRef([2, -2])], { atol: 1e-6 });
});

Deno.test("softmax rows sum to one and ignore shifts", async () => {
  await fc.assert(
    fc.asyncProperty(
      arbTensor(-10, 10, 2),
      fc.double({ min: -30, max: 30, noNaN: true }),
      async ({ shape, data }, c) => {
        const x = tensor(data, { shape });
        const p = ops.softmax(x);
        const rows = reduceRef(await values(p), shape, [shape.length - 1], (v) => v.reduce((s, y) => s + y, 0));
        assertClose(rows, rows.map(() => 1), { atol: 1e-6, rtol: 0, msg: "row sums" });
        // x + c is rounded to f32 (error up to 2e-6 per logit), hence atol 1e-5 on the probabilities.
        assertClose(await values(ops.softmax(x.add(c))), await values(p), { atol: 1e-5, rtol: 0, msg: "shifted" });
      },
    ),
    { numRuns: 80 },
  );
});

Deno.test("logSoftmax equals the log of softmax", async () => {
  await fc.assert(
    fc.asyncProperty(arbTensor(-10, 10), async ({ shape, data }) => {
      const x = tensor(data, { shape });
      assertClose(await values(ops.logSoftmax(x)), await values(ops.softmax(x).log()), { atol: 2e-5, rtol: 1e-6 });
    }),
    { numRuns: 80 },
  );
});

Deno.test("logsumexp handles values of 1e4 without overflow, and an all -Infinity row gives -Infinity", async () => {
  const offsets = randomValues(12, 11).map((v) => 5 * v);
  for (const big of [1e4, -1e4]) {
    const data = offsets.map((v) => Math.fround(v + big));
    const x = tensor(data, { shape: [3, 4] });
    // The f32 ulp at 1e4 is ~1e-3, so the result is only known to about 2e-3.
    assertClose(await values(ops.logsumexp(x, { axis: -1 })), reduceRef(data, [3, 4], [1], lseRef), {
      atol: 2e-3,
      rtol: 0,
    });
    assertClose(await values(ops.softmax(x)), alongAxis(data, [3, 4], 1, softmaxRef), { atol: 1e-6, rtol: 1e-5 });
  }
  assertClose(await values(ops.logsumexp(tensor([1e4, 1e4]))), [1e4 + Math.LN2], { atol: 2e-3, rtol: 0 });
  const masked = tensor([[-Infinity, -Infinity, -Infinity], [-Infinity, 0, Math.log(3)]]);
  assertClose(await values(ops.logsumexp(masked, { axis: -1 })), [-Infinity, Math.log(4)], { atol: 1e-6 });
  assertClose(await values(ops.logSoftmax(masked).slice([1])), [-Infinity, Math.log(0.25), Math.log(0.75)], {
    atol: 1e-6,
  });
});

Deno.test("argmax picks the index of the maximum, the first one on ties, along any axis", async () => {
  assertClose(await values(ops.argmax(tensor([1, 9, 3]))), [1], { atol: 0, rtol: 0 });
  assertClose(await values(ops.argmax(tensor([[1, 3, 3], [2, 2, 2], [-5, -1, -1]]))), [1, 0, 1], { atol: 0, rtol: 0 });
  assertClose(await values(ops.argmax(tensor([[1, 3, 3], [4, 3, 0]]), { axis: 0 })), [1, 0, 0], { atol: 0, rtol: 0 });
  const kept = ops.argmax(tensor([[1, 3], [4, 0]]), { keepdims: true });
  if (kept.dtype !== "i32" || kept.shape.join() !== "2,1") {
    throw new Error(`expected i32 [2, 1], got ${kept.dtype} [${kept.shape}]`);
  }
  // Few distinct values make ties common.
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 3 }).chain((shape) =>
        fc.record({
          shape: fc.constant(shape),
          data: fc.array(fc.integer({ min: -2, max: 2 }), {
            minLength: shape.reduce((p, d) => p * d, 1),
            maxLength: shape.reduce((p, d) => p * d, 1),
          }),
          axis: fc.integer({ min: -shape.length, max: shape.length - 1 }),
        })
      ),
      async ({ shape, data, axis }) => {
        const a = (axis + shape.length) % shape.length;
        const expected = reduceRef(data, shape, [a], (v) => v.indexOf(Math.max(...v)));
        assertClose(await values(ops.argmax(tensor(data, { shape }), { axis })), expected, { atol: 0, rtol: 0 });
      },
    ),
    { numRuns: 80 },
  );
});

Deno.test("gradients of mean and logsumexp have their closed forms (1/n and softmax)", async () => {
  const data = [0.5, -1, 2, 3, 0, -2];
  const x = tensor(data, { shape: [2, 3] });
  assertClose(await values(grad((v: Tensor) => ops.mean(v))(x)), data.map(() => 1 / 6), { atol: 1e-7 });
  const dLse = grad((v: Tensor) => ops.logsumexp(v, { axis: -1 }).sum())(x);
  assertClose(await values(dLse), alongAxis(data, [2, 3], 1, softmaxRef), { atol: 1e-6 });
  // The softmax Jacobian is diag(p) - p p^T, so d/dx_j p_0 = p_0 (delta_0j - p_j).
  const p = softmaxRef([0.5, -1, 2]);
  const dP0 = grad((v: Tensor) => ops.softmax(v).slice([0], [1]).sum())(tensor([0.5, -1, 2]));
  assertClose(await values(dP0), p.map((pj, j) => p[0] * ((j === 0 ? 1 : 0) - pj)), { atol: 1e-6 });
});

Deno.test("in float64, mean, variance, logsumexp, softmax and logSoftmax match the references to 1e-12", async () => {
  await inF64(async () => {
    const shape = [3, 4, 5], data = randomValues(60, 71).map((v) => Math.fround(8 * v));
    const x = tensor(data, { shape });
    const tight = { atol: 1e-12, rtol: 1e-12 };
    assertClose(await values(ops.mean(x, { axis: [0, 2] })), reduceRef(data, shape, [0, 2], meanRef), tight);
    assertClose(await values(ops.variance(x, { axis: 1 })), reduceRef(data, shape, [1], varRef), tight);
    assertClose(await values(ops.logsumexp(x, { axis: [1, 2] })), reduceRef(data, shape, [1, 2], lseRef), tight);
    for (const a of [0, 1, 2]) {
      assertClose(await values(ops.softmax(x, { axis: a })), alongAxis(data, shape, a, softmaxRef), tight);
      const logSm = (v: number[]) => v.map((y) => y - lseRef(v));
      assertClose(await values(ops.logSoftmax(x, { axis: a })), alongAxis(data, shape, a, logSm), tight);
    }
  });
});

Deno.test("reduction vjps match finite differences (float64, atol 1e-6, rtol 1e-5)", async () => {
  await inF64(async () => {
    const x = tensor(randomValues(24, 21).map((v) => 4 * v), { shape: [2, 3, 4] });
    const w = (shape: number[], seed: number) =>
      tensor(randomValues(shape.reduce((p, d) => p * d, 1), seed), { shape });
    await checkGradFD((v) => ops.mean(v, { axis: [0, 2] }).mul(w([3], 1)).sum(), [x], { msg: "mean" });
    await checkGradFD((v) => ops.variance(v).add(ops.variance(v, { axis: 1 }).mul(w([2, 4], 2)).sum()), [x], {
      msg: "variance",
    });
    await checkGradFD((v) => ops.logsumexp(v, { axis: 1 }).mul(w([2, 4], 3)).sum(), [x], { msg: "logsumexp" });
    await checkGradFD((v) => ops.logsumexp(v), [x], { msg: "logsumexp over all axes" });
    await checkGradFD((v) => ops.logsumexp(v, { axis: [0, 2] }).mul(w([3], 6)).sum(), [x], {
      msg: "logsumexp over axes 0 and 2",
    });
    for (const axis of [0, -1]) {
      await checkGradFD((v) => ops.softmax(v, { axis }).mul(w([2, 3, 4], 4)).sum(), [x], { msg: `softmax ${axis}` });
      await checkGradFD((v) => ops.logSoftmax(v, { axis }).mul(w([2, 3, 4], 5)).sum(), [x], {
        msg: `logSoftmax ${axis}`,
      });
    }
  });
});

Deno.test("softmax gradients stay finite and correct at logits of 1e4 (float64 finite differences)", async () => {
  await inF64(async () => {
    const x = tensor(randomValues(8, 31).map((v) => 1e4 + v), { shape: [2, 4] });
    const w = tensor(randomValues(8, 32), { shape: [2, 4] });
    await checkGradFD((v) => ops.softmax(v).mul(w).sum(), [x], { msg: "softmax at 1e4", eps: 1e-4 });
    await checkGradFD((v) => ops.logsumexp(v, { axis: -1 }).mul(w.slice([0, 0], [2, 1]).reshape([2])).sum(), [x], {
      msg: "logsumexp at 1e4",
      eps: 1e-4,
    });
  });
});
