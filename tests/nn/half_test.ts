// Tests of 16-bit float decoding: every bfloat16 and half bit pattern against an independent formula.

import assert from "node:assert/strict";
import { bf16ToF32, f16ToF32 } from "../../nn/half.ts";
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
