// 16-bit floats (bfloat16, IEEE half) to and from f32, bit-exactly: subnormals, signed zeros, inf and NaN.

/**
 * Widens bfloat16 bit patterns to f32 values. Exact: a bfloat16 is the top half of an f32, so NaN
 * payloads, infinities, subnormals and -0 come through unchanged.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { bf16ToF32 } from "./half.ts";
 * const out = bf16ToF32(Uint16Array.of(0x3f80, 0xc000, 0x7f80, 0x0001, 0x8000));
 * assert.deepEqual(Array.from(out.subarray(0, 3)), [1, -2, Infinity]);
 * assert.equal(out[3], 2 ** -133); // the smallest bfloat16 subnormal
 * assert.ok(Object.is(out[4], -0));
 * ```
 */
export function bf16ToF32(bits: Uint16Array): Float32Array {
  const out = new Uint32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = bits[i] << 16;
  return new Float32Array(out.buffer);
}

/**
 * Widens IEEE half-precision bit patterns to f32 values, exactly (every half is an f32): normals
 * and subnormals keep their value, the sign of zero is kept, infinities stay infinite and a NaN
 * keeps its payload in the top mantissa bits.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { f16ToF32 } from "./half.ts";
 * const out = f16ToF32(Uint16Array.of(0x3c00, 0xc000, 0x0001, 0x7c00, 0x7e00));
 * assert.deepEqual(Array.from(out.subarray(0, 4)), [1, -2, 2 ** -24, Infinity]);
 * assert.ok(Number.isNaN(out[4]));
 * ```
 */
export function f16ToF32(bits: Uint16Array): Float32Array {
  const out = new Uint32Array(bits.length);
  for (let i = 0; i < bits.length; i++) {
    const h = bits[i], sign = (h & 0x8000) << 16, exp = (h >> 10) & 0x1f;
    let mant = h & 0x3ff;
    if (exp === 0x1f) out[i] = sign | 0x7f800000 | (mant << 13); // inf, or NaN with its payload
    else if (exp !== 0) out[i] = sign | ((exp + 112) << 23) | (mant << 13); // rebias 15 -> 127
    else if (mant === 0) out[i] = sign; // +-0
    else {
      // A subnormal mant * 2^-24: shift the leading one into the implicit bit, lowering the exponent.
      let e = 113; // the exponent field of 2^-14, the subnormals' scale times 2^10
      while ((mant & 0x400) === 0) mant <<= 1, e--;
      out[i] = sign | (e << 23) | ((mant & 0x3ff) << 13);
    }
  }
  return new Float32Array(out.buffer);
}

/**
 * Rounds f32 values to bfloat16 bit patterns, to nearest with ties to even as PyTorch does
 * (values beyond the largest bfloat16 become infinities; every NaN becomes the quiet NaN 0x7fc0).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { f32ToBf16 } from "./half.ts";
 * const bits = f32ToBf16(Float32Array.of(1, 1 + 2 ** -8, 1 + 3 * 2 ** -8, -0, NaN));
 * assert.deepEqual(Array.from(bits), [0x3f80, 0x3f80, 0x3f82, 0x8000, 0x7fc0]); // ties go to even
 * ```
 */
export function f32ToBf16(values: Float32Array): Uint16Array {
  const bits = new Uint32Array(Float32Array.from(values).buffer), out = new Uint16Array(values.length);
  for (let i = 0; i < bits.length; i++) {
    const b = bits[i];
    // Adding 0x7fff plus the kept half's lowest bit carries into it exactly when the dropped half
    // is above a tie, or a tie with an odd kept half; an overflow of the exponent gives infinity.
    out[i] = (b & 0x7fffffff) > 0x7f800000 ? 0x7fc0 : (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
  }
  return out;
}
