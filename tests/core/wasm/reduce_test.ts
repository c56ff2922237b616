// Reductions on the Wasm backend: sum and max over adjacent axes run as blocked loops, other axis sets
// on the reference rule; both equal the reference bit for bit, f32 and i32, with size-1 and empty axes.

import fc from "fast-check";
import { normal, randint, randomKey, tensor } from "../../../mod.ts";
import { COLUMN_SUM_MIN, reductionBlock } from "../../../core/wasm/reduce.ts";
import { WasmColumnSums } from "../../../core/wasm/reduce_simd.ts";
import { assertClose } from "../../helpers.ts";
import { onBoth } from "./backend_helpers.ts";

Deno.test("reductionBlock splits adjacent axes into outer, reduced and inner sizes and rejects the rest", () => {
  const eq = (a: unknown, b: unknown) => {
    if (JSON.stringify(a) !== JSON.stringify(b)) throw new Error(`${JSON.stringify(a)} != ${JSON.stringify(b)}`);
  };
  eq(reductionBlock([2, 3, 5], [1]), [2, 3, 5]);
  eq(reductionBlock([2, 3, 5], [2, 1]), [2, 15, 1]);
  eq(reductionBlock([2, 3, 5], [0]), [1, 2, 15]);
  eq(reductionBlock([2, 3, 5], [0, 2]), null);
  eq(reductionBlock([2, 3, 5], []), null);
});

Deno.test("sum and max on Wasm equal the reference bit for bit on random shapes and axis sets", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.integer({ min: 0, max: 7 }), { minLength: 1, maxLength: 4 }),
      fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }),
      fc.nat(1000),
      async (shape, pick, seed) => {
        const axes = shape.map((_, i) => i).filter((i) => pick[i]);
        const x = normal(randomKey(seed), shape).mul(100);
        const k = randint(randomKey(seed + 1), shape, { minval: -50, maxval: 50 });
        const nonEmpty = axes.every((a) => shape[a] > 0);
        const { wasm, cpu } = await onBoth(() => [
          x.sum({ axis: axes }),
          k.sum({ axis: axes }),
          ...(nonEmpty ? [x.max({ axis: axes }), k.max({ axis: axes })] : []),
        ]);
        wasm.forEach((w, i) => assertClose(w, cpu[i], { rtol: 0, atol: 0, msg: `output ${i}, axes ${axes}` }));
      },
    ),
    { numRuns: 60 },
  );
});

Deno.test("max on Wasm propagates NaN as the reference does", async () => {
  const x = tensor([[1, NaN, 3], [4, 5, 6]]);
  const { wasm, cpu } = await onBoth(() => [x.max({ axis: 1 }), x.max({ axis: 0 })]);
  wasm.forEach((w, i) => assertClose(w, cpu[i], { rtol: 0, atol: 0, msg: `output ${i}` }));
  if (!Number.isNaN(wasm[0][0]) || wasm[0][1] !== 6) throw new Error(`got ${Array.from(wasm[0])}`);
});

Deno.test("large f32 sums over a non-last axis (Wasm SIMD column sums) equal the reference bit for bit", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.tuple(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 70 }), fc.integer({ min: 2, max: 67 })),
      fc.nat(1000),
      async ([o, r, i], seed) => {
        // At least COLUMN_SUM_MIN elements, so the Wasm kernel runs; odd inner sizes included.
        const R = Math.max(r, Math.ceil(COLUMN_SUM_MIN / (o * i)));
        const x = normal(randomKey(seed), [o, R, i]).mul(100);
        const { wasm, cpu } = await onBoth(() => [x.sum({ axis: 1 }), x.reshape([o * R, i]).sum({ axis: 0 })]);
        wasm.forEach((w, j) => assertClose(w, cpu[j], { rtol: 0, atol: 0, msg: `output ${j}, [${o}, ${R}, ${i}]` }));
      },
    ),
    { numRuns: 30 },
  );
});

Deno.test("the Wasm column sum equals float64 sums in order, rounded once, with odd inner sizes", () => {
  const cols = new WasmColumnSums();
  for (const [O, R, I] of [[1, 1, 2], [2, 3, 3], [3, 700, 5], [1, 2048, 2], [2, 33, 64]]) {
    const a = Float32Array.from({ length: O * R * I }, (_, k) => Math.fround(Math.sin(k * 1.7) * 10 ** (k % 7)));
    const got = new Float32Array(O * I), want = new Float32Array(O * I);
    cols.run(a, got, O, R, I);
    for (let o = 0; o < O; o++) {
      for (let j = 0; j < I; j++) {
        let s = 0;
        for (let k = 0; k < R; k++) s += a[(o * R + k) * I + j];
        want[o * I + j] = s;
      }
    }
    assertClose(got, want, { rtol: 0, atol: 0, msg: `[${O}, ${R}, ${I}]` });
  }
});
