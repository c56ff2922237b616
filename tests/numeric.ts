// Closeness checks and deterministic test inputs; no Deno APIs, so the browser suite's page uses them too.

/** Throws unless `|a - e| <= atol + rtol * |e|` elementwise (NaNs must match NaNs). */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  opts: { atol?: number; rtol?: number; msg?: string } = {},
): void {
  const { atol = 1e-6, rtol = 1e-5, msg = "" } = opts;
  if (actual.length !== expected.length) {
    throw new Error(`${msg} length ${actual.length} != expected ${expected.length}`);
  }
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i], e = expected[i];
    if (Number.isNaN(e) && Number.isNaN(a)) continue;
    if (a === e) continue; // also covers matching infinities
    if (!(Math.abs(a - e) <= atol + rtol * Math.abs(e))) {
      throw new Error(`${msg} element ${i}: got ${a}, expected ${e} (atol ${atol}, rtol ${rtol})`);
    }
  }
}

/** Deterministic pseudo-random numbers in [-1, 1) for test inputs. */
export function randomValues(n: number, seed: number): number[] {
  let s = seed >>> 0 || 1;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  });
}

const f32 = new Float32Array(1), f32Bits = new Int32Array(f32.buffer);
/** The f32 ulps between two values of the same sign, both rounded to f32 first. */
export function ulps(a: number, b: number): number {
  f32[0] = a;
  const x = f32Bits[0];
  f32[0] = b;
  return Math.abs(x - f32Bits[0]);
}
