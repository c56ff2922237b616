// Long f32 sums on WebGPU against the float64 reference: blocked accumulation keeps vocabulary-sized
// logsumexps, large-batch means and multi-million sums well inside the spec table's f32 tolerance.

import { type BackendOptions, full, ops, readAll, setBackend, type Tensor, tensor } from "../../../mod.ts";
import { assertClose } from "../../helpers.ts";
import { gpuTest } from "./gpu.ts";
import { TOL } from "./spec_checks.ts";

// Values within 1e-6 of 0.1 (not exact in binary), so every add of a one-at-a-time f32 sum rounds
// about the same way: the worst case for drift (sums over 150k of them drifted by 2e-5 relative).
const N = 150_000;
const near = (n: number, base: number) => Float32Array.from({ length: n }, (_, i) => base + ((i * 7919) % 13) * 1e-7);

async function both(make: () => Tensor[]): Promise<[Float32Array[], Float64Array[]]> {
  await setBackend("webgpu");
  const gpu = (await readAll(make())) as Float32Array[];
  await setBackend("cpu", { precision: "f64" } as BackendOptions);
  const ref = (await readAll(make())) as Float64Array[];
  await setBackend("cpu");
  return [gpu, ref];
}

// Ten times tighter than the spec table's f32 tolerance, and relative only: what blocked sums reach on these rows (the
// one-at-a-time sums before them missed it on the 150k and 3M sums and the batch mean; logsumexp,
// which sees the sum's error only through a log, met it already).
const TIGHT = { rtol: TOL.rtol / 10, atol: 0 };

gpuTest("a sum of 150k values and a sum of 3M (two stages) stay within 1e-5 of float64", async () => {
  const [gpu, ref] = await both(() => [tensor(near(N, 0.1)).sum(), full([3_000_000], 0.1).sum()]);
  assertClose(gpu[0], ref[0], { ...TIGHT, msg: "sum of 150k" });
  assertClose(gpu[1], ref[1], { ...TIGHT, msg: "sum of 3M" });
});

gpuTest("a large batch mean and many long row sums stay within 1e-5 of float64", async () => {
  const x = near(N * 4, 0.1);
  const rows = near(512 * 8192, 0.1); // 512 outputs of 8192 terms: one thread per row
  const [gpu, ref] = await both(() => [
    tensor(x, { shape: [N, 4] }).mean({ axis: 0 }),
    tensor(rows, { shape: [512, 8192] }).sum({ axis: 1 }),
  ]);
  assertClose(gpu[0], ref[0], { ...TIGHT, msg: "mean over the batch axis" });
  assertClose(gpu[1], ref[1], { ...TIGHT, msg: "row sums" });
});

gpuTest("a vocabulary-sized logsumexp, softmax and cross-entropy stay within 1e-5 of float64", async () => {
  // One logit above the rest by 2.3: every other term of the sum is exp(-2.3 + small) ~ 0.1.
  const logits = near(N, 0).map((v, i) => (i === 777 ? 2.3 : v));
  const x = () => tensor(logits, { shape: [1, N] });
  const [gpu, ref] = await both(() => [
    ops.logsumexp(x(), { axis: 1 }),
    ops.softmax(x()).slice([0, 770], [1, 790]),
    ops.crossEntropy(x(), tensor(Int32Array.of(777))),
  ]);
  assertClose(gpu[0], ref[0], { ...TIGHT, msg: "logsumexp" });
  assertClose(gpu[1], ref[1], { ...TIGHT, msg: "softmax" });
  assertClose(gpu[2], ref[2], { ...TIGHT, msg: "cross-entropy" });
});

gpuTest(
  "logsumexp and softmax over rows of 2^20 and 5M entries (staged past the loop budget) match float64",
  async () => {
    // 5M entries is past one workgroup's loop budget (64 x 2^15 values): the row goes in blocks.
    const long = near(5_000_000, 0).map((v, i) => (i === 4_999_999 ? 3 : i === 12_345 ? -Infinity : v));
    const mid = near(1 << 20, -1);
    const [gpu, ref] = await both(() => [
      ops.logsumexp(tensor(long, { shape: [1, long.length] }), { axis: 1 }),
      ops.logsumexp(tensor(mid, { shape: [1, mid.length] }), { axis: 1 }),
      ops.softmax(tensor(long, { shape: [1, long.length] })).slice([0, 4_999_990], [1, 5_000_000]),
      ops.softmax(tensor(long, { shape: [1, long.length] })).slice([0, 12_340], [1, 12_350]),
    ]);
    assertClose(gpu[0], ref[0], { ...TIGHT, msg: "logsumexp of 5M" });
    assertClose(gpu[1], ref[1], { ...TIGHT, msg: "logsumexp of 2^20" });
    assertClose(gpu[2], ref[2], { rtol: TOL.rtol, atol: 0, msg: "softmax of 5M, its last entries" });
    assertClose(gpu[3], ref[3], { rtol: TOL.rtol, atol: 0, msg: "softmax of 5M, around a -inf" });
  },
);
