// Tests of 16-bit float decoding: every bfloat16 and half bit pattern against an independent formula.

import assert from "node:assert/strict";
import { bf16ToF32, f16ToF32, f32ToBf16 } from "../../nn/half.ts";
import { entryValues } from "../../nn/hf_weights.ts";

// The value a bit pattern denotes, from the format's definition (sign, biased exponent, fraction).
function decode(bits: number, expBits: number, fracBits: number): number {
  const sign = bits >> (expBits + fracBits) ? -1 : 1;
  const e = (bits >> fracBits) & ((1 << expBits) - 1), f = bits & ((1 << fracBits) - 1);
  const bias = (1 << (expBits - 1)) - 1;
  if (e === (1 << expBits) - 1) return f === 0 ? sign * Infinity : NaN;
  if (e === 0) return sign * f * 2 ** (1 - bias - fracBits); // subnormal, or a signed zero
  return sign * (1 + f / 2 ** fracBits) * 2 ** (e - bias);
}

const ALL = Uint16Array.from({ length: 65536 }, (_, i) => i);

function classes(bits: number, expBits: number, fracBits: number): string {
  const e = (bits >> fracBits) & ((1 << expBits) - 1), f = bits & ((1 << fracBits) - 1);
  if (e === (1 << expBits) - 1) return f === 0 ? "inf" : "nan";
  if (e === 0) return f === 0 ? "zero" : "subnormal";
  return "normal";
}

for (const [name, fn, expBits, fracBits] of [["bf16", bf16ToF32, 8, 7], ["f16", f16ToF32, 5, 10]] as const) {
  Deno.test(`${name}: all 65536 bit patterns decode to the value the format defines`, () => {
    const got = fn(ALL), seen = new Map<string, number>();
    for (let i = 0; i < 65536; i++) {
      const want = decode(i, expBits, fracBits), cls = classes(i, expBits, fracBits);
      seen.set(cls, (seen.get(cls) ?? 0) + 1);
      if (Number.isNaN(want)) assert.ok(Number.isNaN(got[i]), `${name} 0x${i.toString(16)}: ${got[i]} is not NaN`);
      else assert.ok(Object.is(got[i], want), `${name} 0x${i.toString(16)}: got ${got[i]}, want ${want}`);
    }
    // Every class was visited: normal, subnormal, both zeros, both infinities, NaNs.
    assert.deepEqual([...seen.keys()].sort(), ["inf", "nan", "normal", "subnormal", "zero"]);
    assert.ok(Object.is(got[0x8000], -0) && Object.is(got[0], 0));
  });
}

Deno.test("NaN payloads and signs come through to f32", () => {
  const u32 = (x: Float32Array) => Array.from(new Uint32Array(x.buffer));
  assert.deepEqual(u32(bf16ToF32(Uint16Array.of(0x7fc1, 0xff81))), [0x7fc10000, 0xff810000]);
  assert.deepEqual(u32(f16ToF32(Uint16Array.of(0x7e01, 0xfc01))), [0x7fc02000, 0xff802000]);
});

Deno.test("stored entries decode little-endian for F32, BF16 and F16", () => {
  const entry = (code: string, bytes: number[]) => ({
    name: "w",
    code,
    shape: [2],
    file: "f",
    bytes: Uint8Array.from(bytes),
  });
  assert.deepEqual(Array.from(entryValues(entry("BF16", [0x80, 0x3f, 0x00, 0xc0]))), [1, -2]);
  assert.deepEqual(Array.from(entryValues(entry("F16", [0x00, 0x3c, 0x01, 0x00]))), [1, 2 ** -24]);
  assert.deepEqual(Array.from(entryValues(entry("F32", [0, 0, 0x80, 0x3f, 0, 0, 0x80, 0xff]))), [1, -Infinity]);
});

// The nearest bfloat16 by exact comparison of the two candidates around x, ties to the even pattern.
function nearestBf16(x: number): number {
  if (Number.isNaN(x)) return 0x7fc0;
  const lo = new Uint32Array(Float32Array.of(x).buffer)[0] >>> 16, hi = lo + 1;
  const value = (b: number) => bf16ToF32(Uint16Array.of(b))[0];
  const a = value(lo), b = (hi & 0x7fff) > 0x7f80 ? NaN : value(hi);
  if (!Number.isFinite(a) || Number.isNaN(b)) return lo; // x is an infinity already
  // Beyond the largest finite bfloat16 the next candidate is infinity, at the place 2^128 would be.
  const bv = Number.isFinite(b) ? b : Math.sign(a) * 2 ** 128;
  const da = Math.abs(x - a), db = Math.abs(bv - x);
  return da < db ? lo : db < da ? hi : (lo & 1 ? hi : lo);
}

Deno.test("f32 -> bf16 rounds to the nearest pattern, ties to even, on random and edge bit patterns", () => {
  let seed = 12345;
  const next = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0);
  const patterns = [0, 0x80000000, 0x3f808000, 0x3f818000, 0x7f7fffff, 0x7f7f8000, 0x7f7f7fff, 0x00008000, 0x00018000];
  for (let i = 0; i < 20000; i++) patterns.push(next());
  const values = new Float32Array(Uint32Array.from(patterns).buffer), got = f32ToBf16(values);
  values.forEach((x, i) => {
    assert.equal(got[i], nearestBf16(x), `0x${patterns[i].toString(16)} (${x})`);
  });
  // And bfloat16 values themselves come back unchanged, every one of them.
  const all = bf16ToF32(ALL), back = f32ToBf16(all);
  ALL.forEach((b, i) => {
    if (!Number.isNaN(all[i])) assert.equal(back[i], b);
  });
});
