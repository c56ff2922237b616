// Tests of the index-based constructors and joins (arange, oneHot, tril, triu, concat, stack) and categorical.

import fc from "fast-check";
import { grad, ops, randomKey, splitKey, type Tensor, tensor } from "../../mod.ts";
import { assertClose, checkGradFD, inF64, randomValues, values } from "../helpers.ts";

function assertShape(t: Tensor, shape: readonly number[], dtype?: string): void {
  if (t.shape.join() !== shape.join() || (dtype !== undefined && t.dtype !== dtype)) {
    throw new Error(`expected ${dtype ?? ""} [${shape}], got ${t.dtype} [${t.shape}]`);
  }
}

/** A random tensor of rank 2 to 3 (a batch of matrices) with values in [-5, 5]. */
const arbMatrices = fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 2, maxLength: 3 }).chain((shape) => {
  const n = shape.reduce((p, d) => p * d, 1);
  return fc.record({
    shape: fc.constant(shape),
    data: fc.array(fc.double({ min: -5, max: 5, noNaN: true }).map(Math.fround), { minLength: n, maxLength: n }),
  });
});

Deno.test("arange yields start + i * step below stop, in f32 or i32", async () => {
  const a = ops.arange(5);
  assertShape(a, [5], "f32");
  assertClose(await values(a), [0, 1, 2, 3, 4], { atol: 0, rtol: 0 });
  assertClose(await values(ops.arange(1, 2, { step: 0.25 })), [1, 1.25, 1.5, 1.75], { atol: 0, rtol: 0 });
  assertClose(await values(ops.arange(5, 0, { step: -2 })), [5, 3, 1], { atol: 0, rtol: 0 });
  assertClose(await values(ops.arange(-3, 3, { dtype: "i32" })), [-3, -2, -1, 0, 1, 2], { atol: 0, rtol: 0 });
  assertShape(ops.arange(3, 3), [0]);
  assertShape(ops.arange(3, 1), [0]);
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: -50, max: 50 }),
      fc.integer({ min: -50, max: 50 }),
      fc.integer({ min: -7, max: 7 }).filter((s) => s !== 0),
      async (start, stop, step) => {
        const expected: number[] = [];
        for (let v = start; step > 0 ? v < stop : v > stop; v += step) expected.push(v);
        const got = ops.arange(start, stop, { step, dtype: "i32" });
        assertShape(got, [expected.length], "i32");
        assertClose(await values(got), expected, { atol: 0, rtol: 0 });
      },
    ),
    { numRuns: 100 },
  );
});

Deno.test("oneHot rows are one at the index and zero elsewhere, so they sum to one", async () => {
  const y = ops.oneHot(tensor([[0, 2], [1, 1]], { dtype: "i32" }), 3);
  assertShape(y, [2, 2, 3], "f32");
  assertClose(await values(y), [1, 0, 0, 0, 0, 1, 0, 1, 0, 0, 1, 0], { atol: 0, rtol: 0 });
  assertShape(ops.oneHot(tensor([1], { dtype: "i32" }), 4, { dtype: "i32" }), [1, 4], "i32");
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 9 }).chain((depth) =>
        fc.record({ depth: fc.constant(depth), idx: fc.array(fc.nat(depth - 1), { minLength: 1, maxLength: 12 }) })
      ),
      async ({ depth, idx }) => {
        const y = await values(ops.oneHot(tensor(idx, { dtype: "i32" }), depth));
        const expected = idx.flatMap((k) => Array.from({ length: depth }, (_, j) => (j === k ? 1 : 0)));
        assertClose(y, expected, { atol: 0, rtol: 0 });
        const sums = idx.map((_, r) => y.slice(r * depth, (r + 1) * depth).reduce((s, v) => s + v, 0));
        assertClose(sums, idx.map(() => 1), { atol: 0, rtol: 0 });
      },
    ),
    { numRuns: 60 },
  );
});

Deno.test("tril and triu keep col - row <= k and col - row >= k on the last two axes", async () => {
  const x = tensor([[1, 2, 3], [4, 5, 6], [7, 8, 9]]);
  assertClose(await values(ops.tril(x)), [1, 0, 0, 4, 5, 0, 7, 8, 9], { atol: 0, rtol: 0 });
  assertClose(await values(ops.triu(x)), [1, 2, 3, 0, 5, 6, 0, 0, 9], { atol: 0, rtol: 0 });
  assertClose(await values(ops.tril(x, { k: -1 })), [0, 0, 0, 4, 0, 0, 7, 8, 0], { atol: 0, rtol: 0 });
  assertClose(await values(ops.triu(x, { k: 1 })), [0, 2, 3, 0, 0, 6, 0, 0, 0], { atol: 0, rtol: 0 });
  // A non-square batch.
  const b = tensor([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], { shape: [2, 2, 3] });
  assertClose(await values(ops.tril(b, { k: 1 })), [1, 2, 0, 4, 5, 6, 7, 8, 0, 10, 11, 12], { atol: 0, rtol: 0 });
  const i = ops.tril(tensor([[1, 1], [1, 1]], { dtype: "i32" }));
  assertShape(i, [2, 2], "i32");
  assertClose(await values(i), [1, 0, 1, 1], { atol: 0, rtol: 0 });
});

Deno.test("tril(x) + triu(x, k = 1) == x, for any k shifted alike", async () => {
  await fc.assert(
    fc.asyncProperty(arbMatrices, fc.integer({ min: -6, max: 6 }), async ({ shape, data }, k) => {
      const x = tensor(data, { shape });
      assertClose(await values(ops.tril(x).add(ops.triu(x, { k: 1 }))), data, { atol: 0, rtol: 0 });
      assertClose(await values(ops.tril(x, { k }).add(ops.triu(x, { k: k + 1 }))), data, { atol: 0, rtol: 0 });
      // Each element is kept by exactly one of the two.
      const [m, n] = shape.slice(-2);
      const lower = await values(ops.tril(x, { k }));
      lower.forEach((v, flat) => {
        const row = Math.floor(flat / n) % m, col = flat % n;
        assertClose([v], [col - row <= k ? data[flat] : 0], { atol: 0, rtol: 0 });
      });
    }),
    { numRuns: 60 },
  );
});

Deno.test("concat joins along any axis and stack adds a new axis", async () => {
  const a = tensor([[1, 2], [3, 4]]), b = tensor([[5, 6]]), c = tensor([[7], [8]]);
  assertClose(await values(ops.concat([a, b])), [1, 2, 3, 4, 5, 6], { atol: 0, rtol: 0 });
  assertShape(ops.concat([a, b]), [3, 2]);
  assertClose(await values(ops.concat([a, c], { axis: 1 })), [1, 2, 7, 3, 4, 8], { atol: 0, rtol: 0 });
  assertClose(await values(ops.concat([a, c, a], { axis: -1 })), [1, 2, 7, 1, 2, 3, 4, 8, 3, 4], { atol: 0, rtol: 0 });
  assertShape(ops.concat([a]), [2, 2]);
  const s0 = ops.stack([tensor([1, 2]), tensor([3, 4]), tensor([5, 6])]);
  assertShape(s0, [3, 2]);
  assertClose(await values(s0), [1, 2, 3, 4, 5, 6], { atol: 0, rtol: 0 });
  const s1 = ops.stack([tensor([1, 2]), tensor([3, 4]), tensor([5, 6])], { axis: 1 });
  assertShape(s1, [2, 3]);
  assertClose(await values(s1), [1, 3, 5, 2, 4, 6], { atol: 0, rtol: 0 });
  const sNeg = ops.stack([a, a.mul(10)], { axis: -1 });
  assertShape(sNeg, [2, 2, 2]);
  assertClose(await values(sNeg), [1, 10, 2, 20, 3, 30, 4, 40], { atol: 0, rtol: 0 });
  const ids = ops.concat([tensor([1], { dtype: "i32" }), tensor([2, 3], { dtype: "i32" })]);
  assertShape(ids, [3], "i32");
});

Deno.test("concat of random pieces matches a hand-built row-major join", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.tuple(
        fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 3 }),
        fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 4 }),
      ).chain(([shape, widths]) =>
        fc.record({
          shape: fc.constant(shape),
          widths: fc.constant(widths),
          axis: fc.integer({ min: 0, max: shape.length - 1 }),
        })
      ),
      async ({ shape, widths, axis }) => {
        let seed = 1;
        const parts = widths.map((w) => {
          const s = shape.map((d, i) => (i === axis ? w : d));
          const n = s.reduce((p, d) => p * d, 1);
          return { s, data: randomValues(n, seed++).map(Math.fround) };
        });
        const outer = shape.slice(0, axis).reduce((p, d) => p * d, 1);
        const inner = shape.slice(axis + 1).reduce((p, d) => p * d, 1);
        const expected: number[] = [];
        for (let o = 0; o < outer; o++) {
          for (const { s, data } of parts) expected.push(...data.slice(o * s[axis] * inner, (o + 1) * s[axis] * inner));
        }
        const got = ops.concat(parts.map(({ s, data }) => tensor(data, { shape: s })), { axis });
        assertShape(got, shape.map((d, i) => (i === axis ? widths.reduce((p, w) => p + w, 0) : d)));
        assertClose(await values(got), expected, { atol: 0, rtol: 0 });
      },
    ),
    { numRuns: 60 },
  );
});

Deno.test("gradients through tril, concat and stack route each cotangent back to its source", async () => {
  const x = tensor([[1, 2], [3, 4]]), w = tensor([[10, 20], [30, 40]]);
  assertClose(await values(grad((v: Tensor) => ops.tril(v).mul(w).sum())(x)), [10, 0, 30, 40], { atol: 0, rtol: 0 });
  const g = tensor([1, 2, 3, 4, 5, 6], { shape: [3, 2] });
  const [ga, gb] = grad((a: Tensor, b: Tensor) => ops.concat([a, b]).mul(g).sum(), { argnums: [0, 1] })(
    x,
    tensor([[5, 6]]),
  );
  assertClose(await values(ga), [1, 2, 3, 4], { atol: 0, rtol: 0 });
  assertClose(await values(gb), [5, 6], { atol: 0, rtol: 0 });
  const [s0, s1] = grad((a: Tensor, b: Tensor) => ops.stack([a, b], { axis: 1 }).mul(tensor([[1, 2], [3, 4]])).sum(), {
    argnums: [0, 1],
  })(tensor([1, 2]), tensor([3, 4]));
  // stack([a, b], axis 1) is [[a0, b0], [a1, b1]]: a meets the first column of the cotangent, b the second.
  assertClose(await values(s0), [1, 3], { atol: 0, rtol: 0 });
  assertClose(await values(s1), [2, 4], { atol: 0, rtol: 0 });
});

Deno.test("join and mask vjps match finite differences (float64, atol 1e-6, rtol 1e-5)", async () => {
  await inF64(async () => {
    const a = tensor(randomValues(6, 61), { shape: [2, 3] }), b = tensor(randomValues(9, 62), { shape: [3, 3] });
    const w = tensor(randomValues(15, 63), { shape: [5, 3] });
    await checkGradFD((p, q) => ops.concat([p, q]).mul(w).sum(), [a, b], { msg: "concat axis 0" });
    await checkGradFD((p, q) => ops.concat([p.transpose(), q], { axis: -1 }).mul(w.reshape([3, 5])).sum(), [a, b], {
      msg: "concat axis -1",
    });
    const w3 = tensor(randomValues(12, 64), { shape: [2, 3, 2] });
    await checkGradFD((p, q) => ops.stack([p, q.slice([0], [2]).mul(p)], { axis: -1 }).mul(w3).sum(), [a, b], {
      msg: "stack",
    });
    await checkGradFD(
      (q) => ops.tril(q, { k: -1 }).mul(ops.triu(q)).sum().add(ops.triu(q.mul(q)).mul(w.slice([0], [3])).sum()),
      [b],
      {
        msg: "tril/triu",
      },
    );
  });
});

Deno.test("categorical with very peaked logits returns the argmax", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 2, max: 10 }).chain((c) =>
        fc.record({
          c: fc.constant(c),
          logits: fc.array(fc.double({ min: -1, max: 1, noNaN: true }), { minLength: 4 * c, maxLength: 4 * c }),
          seed: fc.nat(1000),
        })
      ),
      async ({ c, logits, seed }) => {
        // Rows have a unique maximum 1000 above the rest: a Gumbel draw cannot bridge that gap.
        const peaked = logits.map((v, i) => v + (i % c === (Math.floor(i / c) * 7) % c ? 1000 : 0));
        const x = tensor(peaked, { shape: [4, c] });
        const ids = ops.categorical(randomKey(seed), x);
        assertShape(ids, [4], "i32");
        assertClose(await values(ids), await values(ops.argmax(x)), { atol: 0, rtol: 0 });
        const ids0 = ops.categorical(randomKey(seed), x.transpose(), { axis: 0 });
        assertClose(await values(ids0), await values(ops.argmax(x)), { atol: 0, rtol: 0 });
      },
    ),
    { numRuns: 40 },
  );
});

Deno.test("categorical frequencies match softmax probabilities within 4.5 standard errors (n = 20000)", async () => {
  const logits = [0.5, -1, 2, 0, 1];
  const p = logits.map((v) => Math.exp(v) / logits.reduce((s, u) => s + Math.exp(u), 0));
  const n = 20000;
  for (const key of splitKey(randomKey(2024), 2)) {
    const draws = await values(ops.categorical(key, ops.full([n, logits.length], 0).add(tensor(logits))));
    const counts = p.map(() => 0);
    for (const d of draws) counts[d]++;
    p.forEach((pk, k) => {
      const se = Math.sqrt((pk * (1 - pk)) / n);
      if (Math.abs(counts[k] / n - pk) > 4.5 * se) {
        throw new Error(`class ${k}: frequency ${counts[k] / n}, probability ${pk} (> 4.5 standard errors ${se})`);
      }
    });
  }
  // The same key draws the same samples.
  const x = tensor(logits);
  const k = randomKey(7);
  assertClose(
    await values(ops.categorical(k, x.broadcastTo([64, 5]))),
    await values(ops.categorical(k, x.broadcastTo([64, 5]))),
    {
      atol: 0,
    },
  );
});
