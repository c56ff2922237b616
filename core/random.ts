// Explicit PRNG keys (Threefry-2x32, counter based) and samplers that draw on the host.

import { fromHost } from "./creation.ts";
import { checkShape, type Shape, sizeOf } from "./shape.ts";
import type { Tensor } from "./tensor.ts";

/**
 * An immutable PRNG key. The same key always yields the same numbers; derive new keys with
 * `splitKey` or `foldIn` instead of reusing one. Make one with `randomKey(seed)`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Key, randomKey, splitKey } from "../mod.ts";
 * const key = randomKey(7);
 * assert.ok(key instanceof Key && Object.isFrozen(key));
 * const [a, b] = splitKey(key);
 * assert.notDeepEqual(a, b);
 * ```
 */
export class Key {
  /** High 32-bit word. */
  readonly hi: number;
  /** Low 32-bit word. */
  readonly lo: number;
  /** @internal Use `randomKey(seed)`. */
  constructor(hi: number, lo: number) {
    this.hi = hi >>> 0;
    this.lo = lo >>> 0;
    Object.freeze(this);
  }
}

const rotl = (x: number, r: number) => ((x << r) | (x >>> (32 - r))) >>> 0;
const ROT = [[13, 15, 26, 6], [17, 29, 16, 24]];

/** Threefry-2x32 with 20 rounds: a keyed bijection on 64-bit counters. */
export function threefry(key: Key, c0: number, c1: number): [number, number] {
  const ks = [key.hi, key.lo, (key.hi ^ key.lo ^ 0x1bd11bda) >>> 0];
  let x0 = (c0 + ks[0]) >>> 0, x1 = (c1 + ks[1]) >>> 0;
  for (let i = 0; i < 5; i++) {
    for (const r of ROT[i % 2]) {
      x0 = (x0 + x1) >>> 0;
      x1 = (rotl(x1, r) ^ x0) >>> 0;
    }
    x0 = (x0 + ks[(i + 1) % 3]) >>> 0;
    x1 = (x1 + ks[(i + 2) % 3] + i + 1) >>> 0;
  }
  return [x0, x1];
}

function checkKey(op: string, key: unknown): asserts key is Key {
  if (!(key instanceof Key)) throw new Error(`${op}: expected a PRNG key from randomKey(seed), got ${typeof key}`);
}

/**
 * A PRNG key from an integer seed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { normal, randomKey } from "../mod.ts";
 * const x = await normal(randomKey(0), [2, 3]).data();
 * const y = await normal(randomKey(0), [2, 3]).data();
 * assert.deepEqual(x, y); // the same seed, the same numbers
 * ```
 */
export function randomKey(seed: number): Key {
  if (!Number.isSafeInteger(seed) || seed < 0) {
    throw new Error(`randomKey: seed must be a non-negative integer, got ${seed}`);
  }
  return new Key(Math.floor(seed / 2 ** 32), seed % 2 ** 32);
}

/**
 * Derives `n` independent keys from one (2 by default).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { randomKey, splitKey, uniform } from "../mod.ts";
 * const [kInit, kData] = splitKey(randomKey(42));
 * assert.notDeepEqual(await uniform(kInit, [4]).data(), await uniform(kData, [4]).data());
 * assert.equal(splitKey(randomKey(42), 5).length, 5);
 * ```
 */
export function splitKey(key: Key, n = 2): Key[] {
  checkKey("splitKey", key);
  if (!Number.isInteger(n) || n < 1) throw new Error(`splitKey: n must be a positive integer, got ${n}`);
  return Array.from({ length: n }, (_, i) => new Key(...threefry(key, i, 1)));
}

/**
 * Derives a key from a key and an integer (e.g. a step or layer index).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { foldIn, randomKey } from "../mod.ts";
 * const base = randomKey(0);
 * assert.deepEqual(foldIn(base, 17), foldIn(base, 17));
 * assert.notDeepEqual(foldIn(base, 17), foldIn(base, 18));
 * ```
 */
export function foldIn(key: Key, data: number): Key {
  checkKey("foldIn", key);
  return new Key(...threefry(key, data >>> 0, 2));
}

/** `n` random 32-bit words for a key (counters `(i, 0)`, disjoint from those of split and foldIn). */
export function randomBits(key: Key, n: number): Uint32Array {
  const out = new Uint32Array(n);
  for (let i = 0; i < n; i += 2) {
    const [a, b] = threefry(key, i >>> 1, 0);
    out[i] = a;
    if (i + 1 < n) out[i + 1] = b;
  }
  return out;
}

// 24 random bits as a float in [0, 1).
const unit = (w: number) => (w >>> 8) / 16777216;

/**
 * Uniform f32 samples in `[minval, maxval)`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { randomKey, uniform } from "../mod.ts";
 * const u = await uniform(randomKey(1), [1000], { minval: -1, maxval: 1 }).data();
 * assert.ok(u.every((v) => v >= -1 && v < 1));
 * ```
 */
export function uniform(
  key: Key,
  shape: Shape,
  opts: { readonly minval?: number; readonly maxval?: number } = {},
): Tensor {
  checkKey("uniform", key);
  checkShape("uniform", shape);
  const { minval = 0, maxval = 1 } = opts;
  const bits = randomBits(key, sizeOf(shape));
  const out = new Float32Array(bits.length);
  // Rounding to f32 can land on maxval itself (e.g. 1 + 0.1 * u near u = 1 rounds to 1.1); the largest
  // f32 below maxval keeps the interval half-open.
  const below = f32Below(maxval);
  for (let i = 0; i < bits.length; i++) {
    out[i] = minval + (maxval - minval) * unit(bits[i]);
    if (out[i] >= maxval) out[i] = below;
  }
  return fromHost(out, shape, "f32");
}

// The largest f32 value strictly below x.
function f32Below(x: number): number {
  const f = Math.fround(x);
  if (f < x || Number.isNaN(f)) return f;
  if (f === 0) return -(2 ** -149);
  const word = new Int32Array(Float32Array.of(f).buffer);
  word[0] += f > 0 ? -1 : 1;
  return new Float32Array(word.buffer)[0];
}

/**
 * Normal f32 samples (Box-Muller on pairs of words).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { normal, randomKey } from "../mod.ts";
 * const w = await normal(randomKey(2), [10000], { mean: 1, std: 0.5 }).data();
 * const mean = Array.from(w).reduce((a, b) => a + b) / w.length;
 * assert.ok(Math.abs(mean - 1) < 0.02); // within 4 standard errors
 * ```
 */
export function normal(key: Key, shape: Shape, opts: { readonly mean?: number; readonly std?: number } = {}): Tensor {
  checkKey("normal", key);
  checkShape("normal", shape);
  const { mean = 0, std = 1 } = opts;
  const n = sizeOf(shape), bits = randomBits(key, 2 * n);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u1 = ((bits[2 * i] >>> 8) + 1) / 16777216, u2 = unit(bits[2 * i + 1]);
    out[i] = mean + std * Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }
  return fromHost(out, shape, "f32");
}

/**
 * Uniform i32 samples in `[minval, maxval)`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { randint, randomKey } from "../mod.ts";
 * const tokens = randint(randomKey(3), [2, 8], { maxval: 256 });
 * assert.equal(tokens.dtype, "i32");
 * assert.ok((await tokens.data()).every((t) => t >= 0 && t < 256));
 * ```
 */
export function randint(key: Key, shape: Shape, opts: { readonly minval?: number; readonly maxval: number }): Tensor {
  checkKey("randint", key);
  const { minval = 0, maxval } = opts ?? {};
  checkShape("randint", shape);
  if (!Number.isInteger(minval) || !Number.isInteger(maxval) || maxval <= minval || maxval - minval > 2 ** 32) {
    throw new Error(`randint: need integers minval < maxval, got ${minval} and ${maxval}`);
  }
  const bits = randomBits(key, sizeOf(shape));
  const out = new Int32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = minval + Math.floor((bits[i] / 2 ** 32) * (maxval - minval));
  return fromHost(out, shape, "i32");
}
