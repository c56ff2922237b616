// Tests of the PRNG: Threefry known answers, determinism, key derivation, and sampler statistics.

import fc from "fast-check";
import { foldIn, Key, normal, randint, randomKey, splitKey, type Tensor, uniform } from "../../mod.ts";
import { threefry } from "../../core/random.ts";
import { assertClose } from "../helpers.ts";

/** The raw bits of a tensor's storage, for bit-for-bit comparisons. */
async function bitsOf(t: Tensor): Promise<number[]> {
  const d = await t.data();
  return Array.from(new Uint32Array(d.buffer, d.byteOffset, d.byteLength / 4));
}

function assertSameBits(a: number[], b: number[], msg: string): void {
  if (a.length !== b.length || a.some((v, i) => v !== b[i])) throw new Error(`${msg}: bits differ`);
}

const sameKey = (a: Key, b: Key) => a.hi === b.hi && a.lo === b.lo;

/** Fails when |observed - expected| exceeds `z` standard errors. */
function assertWithin(observed: number, expected: number, se: number, z: number, what: string): void {
  if (Math.abs(observed - expected) > z * se) {
    throw new Error(`${what}: ${observed} is more than ${z} standard errors (${se}) from ${expected}`);
  }
}

Deno.test("threefry2x32 with 20 rounds reproduces the Random123 known-answer vectors", () => {
  // Key words (k0, k1) are (key.hi, key.lo); counter words (x0, x1) are the two counter arguments.
  const cases: [number, number, number, number, number, number][] = [
    [0, 0, 0, 0, 0x6b200159, 0x99ba4efe],
    [0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0x1cb996fc, 0xbb002be7],
    [0x13198a2e, 0x03707344, 0x243f6a88, 0x85a308d3, 0xc4923a9c, 0x483df7a0],
  ];
  for (const [k0, k1, x0, x1, y0, y1] of cases) {
    const [a, b] = threefry(new Key(k0, k1), x0, x1);
    if (a !== y0 || b !== y1) {
      const hex = (v: number) => `0x${v.toString(16).padStart(8, "0")}`;
      throw new Error(`key (${hex(k0)}, ${hex(k1)}): got (${hex(a)}, ${hex(b)}), expected (${hex(y0)}, ${hex(y1)})`);
    }
  }
});

Deno.test("randomKey puts the high and low 32 bits of the seed in the key", () => {
  const k = randomKey(2 ** 32 * 5 + 7);
  if (k.hi !== 5 || k.lo !== 7) throw new Error(`expected (5, 7), got (${k.hi}, ${k.lo})`);
  if (!sameKey(randomKey(123), randomKey(123))) throw new Error("the same seed must give the same key");
});

Deno.test("the same key gives identical numbers bit for bit", async () => {
  await fc.assert(
    fc.asyncProperty(fc.nat(), fc.integer({ min: 1, max: 300 }), async (seed, n) => {
      const k1 = randomKey(seed), k2 = randomKey(seed);
      assertSameBits(await bitsOf(uniform(k1, [n])), await bitsOf(uniform(k2, [n])), "uniform");
      assertSameBits(await bitsOf(normal(k1, [n])), await bitsOf(normal(k2, [n])), "normal");
      assertSameBits(
        await bitsOf(randint(k1, [n], { maxval: 1000 })),
        await bitsOf(randint(k2, [n], { maxval: 1000 })),
        "randint",
      );
      // The shape only arranges the stream: a prefix of a longer draw is the shorter draw.
      const long = await bitsOf(uniform(k1, [n + 5]));
      assertSameBits(long.slice(0, n), await bitsOf(uniform(k1, [n])), "prefix");
    }),
    { numRuns: 30 },
  );
});

Deno.test("splitKey gives distinct keys whose streams differ from each other and from the parent", async () => {
  await fc.assert(
    fc.asyncProperty(fc.nat(), fc.integer({ min: 2, max: 8 }), async (seed, n) => {
      const parent = randomKey(seed);
      const keys = splitKey(parent, n);
      if (keys.length !== n) throw new Error(`expected ${n} keys, got ${keys.length}`);
      const again = splitKey(parent, n);
      if (keys.some((k, i) => !sameKey(k, again[i]))) throw new Error("splitKey must be deterministic");
      // Splitting into more keys extends the list: the first n are the same.
      const more = splitKey(parent, n + 2);
      if (keys.some((k, i) => !sameKey(k, more[i]))) throw new Error("splitKey(k, n) must prefix splitKey(k, n + 2)");
      const streams = await Promise.all([parent, ...keys].map(async (k) => (await bitsOf(uniform(k, [8]))).join()));
      if (new Set(streams).size !== streams.length) throw new Error("two of the streams are identical");
    }),
    { numRuns: 50 },
  );
});

Deno.test("foldIn gives a different key for each datum, deterministically, apart from split keys", () => {
  const k = randomKey(99);
  const folded = Array.from({ length: 200 }, (_, d) => foldIn(k, d));
  const ids = new Set(folded.map((f) => `${f.hi},${f.lo}`));
  if (ids.size !== 200) throw new Error(`foldIn over 200 data gave only ${ids.size} distinct keys`);
  if (!sameKey(foldIn(k, 17), folded[17])) throw new Error("foldIn must be deterministic");
  for (const s of splitKey(k, 200)) {
    if (ids.has(`${s.hi},${s.lo}`)) throw new Error("a folded key coincides with a split key");
  }
  if (ids.has(`${k.hi},${k.lo}`)) throw new Error("a folded key equals its parent");
  if (sameKey(foldIn(randomKey(1), 5), foldIn(randomKey(2), 5))) throw new Error("foldIn must depend on the key");
});

Deno.test("uniform lies in [minval, maxval) with mean 0.5 and variance 1/12 (n = 10000, 4.5 standard errors)", async () => {
  const n = 10000;
  const u = Array.from(await uniform(randomKey(3), [n]).data());
  for (const v of u) if (!(v >= 0 && v < 1)) throw new Error(`sample ${v} is outside [0, 1)`);
  const mean = u.reduce((s, v) => s + v, 0) / n;
  assertWithin(mean, 0.5, Math.sqrt(1 / 12 / n), 4.5, "mean");
  const variance = u.reduce((s, v) => s + (v - mean) ** 2, 0) / n;
  // Var of (U - 1/2)^2 is 1/80 - 1/144 = 1/180.
  assertWithin(variance, 1 / 12, Math.sqrt(1 / 180 / n), 4.5, "variance");
  // Each tenth of the interval gets about a tenth of the samples.
  const bins = new Array(10).fill(0);
  for (const v of u) bins[Math.floor(v * 10)]++;
  bins.forEach((c, i) => assertWithin(c / n, 0.1, Math.sqrt(0.09 / n), 4.5, `bin ${i}`));
});

Deno.test("uniform respects arbitrary [minval, maxval) bounds", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.double({ min: -100, max: 100, noNaN: true }),
      fc.double({ min: 1e-3, max: 100, noNaN: true }),
      fc.nat(),
      async (lo, width, seed) => {
        const hi = lo + width;
        const u = await uniform(randomKey(seed), [200], { minval: lo, maxval: hi }).data();
        for (const v of u) {
          if (!(v >= Math.fround(lo) && v < hi)) throw new Error(`sample ${v} is outside [${lo}, ${hi})`);
        }
      },
    ),
    { numRuns: 60 },
  );
});

Deno.test("uniform never returns maxval, even where f32 rounding of the top samples would reach it", async () => {
  // Seed 2362 draws u = 1 - 4 * 2^-24 at index 1980: 1 + 0.1 u rounds to f32(1.1), which is above 1.1.
  const u = await uniform(randomKey(2362), [4096], { minval: 1, maxval: 1.1 }).data();
  if (!(u[1980] > 1.09999)) throw new Error(`index 1980 should hold a sample near the top, got ${u[1980]}`);
  for (const v of u) if (!(v >= 1 && v < 1.1)) throw new Error(`sample ${v} is outside [1, 1.1)`);
});

Deno.test("normal has mean 0 and std 1 (n = 10000, 4.5 standard errors), and mean/std shift and scale it", async () => {
  const n = 10000;
  const z = Array.from(await normal(randomKey(5), [n]).data());
  if (z.some((v) => !Number.isFinite(v))) throw new Error("normal samples must be finite");
  const mean = z.reduce((s, v) => s + v, 0) / n;
  assertWithin(mean, 0, 1 / Math.sqrt(n), 4.5, "mean");
  const std = Math.sqrt(z.reduce((s, v) => s + (v - mean) ** 2, 0) / n);
  assertWithin(std, 1, 1 / Math.sqrt(2 * n), 4.5, "std");
  // P(|Z| < 1) = 0.682689, P(|Z| < 2) = 0.954500.
  for (const [t, p] of [[1, 0.682689], [2, 0.9545]]) {
    assertWithin(z.filter((v) => Math.abs(v) < t).length / n, p, Math.sqrt((p * (1 - p)) / n), 4.5, `P(|Z| < ${t})`);
  }
  const scaled = await normal(randomKey(5), [n], { mean: 3, std: 2 }).data();
  assertClose(scaled, z.map((v) => 3 + 2 * v), { atol: 1e-5, rtol: 1e-6 });
});

Deno.test("randint stays in [minval, maxval) and is roughly uniform (chi-square, p < 1e-4)", async () => {
  const n = 10000, k = 10;
  const r = await randint(randomKey(11), [n], { minval: -3, maxval: -3 + k }).data();
  const counts = new Array(k).fill(0);
  for (const v of r) {
    if (!Number.isInteger(v) || v < -3 || v >= -3 + k) throw new Error(`sample ${v} is outside [-3, 7)`);
    counts[v + 3]++;
  }
  const chi2 = counts.reduce((s, c) => s + (c - n / k) ** 2 / (n / k), 0);
  // The 1 - 1e-4 quantile of chi-square with 9 degrees of freedom is 33.7.
  if (chi2 > 33.7) throw new Error(`chi-square ${chi2} over counts ${counts} is too large for uniform draws`);
  await fc.assert(
    fc.asyncProperty(fc.integer(), fc.integer({ min: 1, max: 2 ** 31 }), fc.nat(), async (lo, width, seed) => {
      const hi = Math.min(lo + width, 2 ** 31);
      fc.pre(hi > lo);
      const t = randint(randomKey(seed), [100], { minval: lo, maxval: hi });
      if (t.dtype !== "i32") throw new Error(`randint must give i32, got ${t.dtype}`);
      for (const v of await t.data()) {
        if (!(v >= lo && v < hi)) throw new Error(`sample ${v} is outside [${lo}, ${hi})`);
      }
    }),
    { numRuns: 60 },
  );
});
