// exp and tanh for f32 results, computed in float64 from a polynomial: the engine's Math.exp and
// Math.tanh cost 15-30 ns a call here, these a few. Accurate to about a tenth of an f32 ulp before
// the final rounding, so the rounded result is the correctly rounded one but in rare near-ties.

// 2^n for n in [-152, 130], exact in float64: the scale of exp's range reduction.
const POW2_LO = 152;
const POW2 = Float64Array.from({ length: 283 }, (_, i) => 2 ** (i - POW2_LO));

// The integer nearest y in [-1000, 1000] (ties up): truncation of a positive number, since Math.round
// costs about 8 ns here.
function nearest(y: number): number {
  return ((y + 1024.5) | 0) - 1024;
}

// expm1 of r for |r| <= ln(2)/2, Taylor to r^8 (the next term is below 1e-9 relative).
function expm1Small(r: number): number {
  return r *
    (1 + r * (1 / 2 + r * (1 / 6 + r * (1 / 24 + r * (1 / 120 + r * (1 / 720 + r * (1 / 5040 + r * (1 / 40320))))))));
}

/** e^x, for arguments and results rounded to f32 (beyond f32's range it is 0 or Infinity; NaN stays NaN). */
export function jfExp(x: number): number {
  if (!(x < 89)) return x !== x ? x : Infinity; // e^89 overflows f32
  if (x < -104) return 0; // e^-104 is below half of f32's least subnormal
  const n = nearest(x * Math.LOG2E), r = x - n * Math.LN2;
  return POW2[n + POW2_LO] * (1 + expm1Small(r));
}

// e^y - 1 without cancellation near 0, for y in [-20, 0].
function expm1Neg(y: number): number {
  const n = nearest(y * Math.LOG2E);
  const q = expm1Small(y - n * Math.LN2);
  return n === 0 ? q : POW2[n + POW2_LO] * (1 + q) - 1;
}

/** tanh(x) for f32 results: (1 - e^-2|x|) / (1 + e^-2|x|) with e^-2|x| - 1 computed directly, so small x stay exact. */
export function jfTanh(x: number): number {
  const a = Math.abs(x);
  if (a === 0 || x !== x) return x; // keeps the sign of zero, and NaN
  if (a > 10) return x > 0 ? 1 : -1; // 1 - tanh(10) is below half an f32 ulp of 1
  const m = expm1Neg(-2 * a), t = -m / (2 + m);
  return x < 0 ? -t : t;
}
