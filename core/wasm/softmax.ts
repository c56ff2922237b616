// softmax and logsumexp over the last axis on the Wasm backend's host side: the reference's loops
// with the polynomial exp (approx.ts), which costs a few nanoseconds where Math.exp costs 15-30;
// large ones run on the Wasm SIMD rows kernel (softmax_simd.ts).

import type { PrimDef } from "../prim.ts";
import { jfExp } from "./approx.ts";
import type { WasmSoftmax } from "./softmax_simd.ts";

/** softmax(x) along the last axis: max, then exp(x - max) summed in float64, then divided. */
export const softmax: PrimDef<"softmax">["cpu"] = ([a], [x], _out, _p, ctx) => {
  const n = x.shape[x.shape.length - 1], o = ctx.alloc("f32", a.length);
  for (let r = 0; r < a.length; r += n) {
    let m = -Infinity, s = 0;
    for (let j = r; j < r + n; j++) m = Math.max(m, a[j]);
    for (let j = r; j < r + n; j++) s += o[j] = jfExp(a[j] - m);
    for (let j = r; j < r + n; j++) o[j] /= s;
  }
  return o;
};

/** log(sum(exp(x))) along the last axis, shifted by the row's max; infinite or NaN maxima pass through. */
export const logsumexp: PrimDef<"logsumexp">["cpu"] = ([a], [x], out, _p, ctx) => {
  const n = x.shape[x.shape.length - 1], rows = n === 0 ? out.shape.reduce((p, d) => p * d, 1) : a.length / n;
  const o = ctx.alloc("f32", rows);
  for (let r = 0; r < rows; r++) {
    let m = -Infinity;
    for (let j = r * n; j < (r + 1) * n; j++) m = Math.max(m, a[j]);
    if (m === -Infinity || m === Infinity || m !== m) {
      o[r] = m;
      continue;
    }
    let s = 0;
    for (let j = r * n; j < (r + 1) * n; j++) s += jfExp(a[j] - m);
    o[r] = m + Math.log(s);
  }
  return o;
};

/** The fewest elements of a softmax or logsumexp that runs in Wasm (below, the host loop is as fast). */
export const SOFTMAX_SIMD_MIN = 1024;

/** softmax and logsumexp running large inputs on `k` (Wasm SIMD), small ones on the host loops above. */
export function softmaxKernels(
  k: WasmSoftmax,
): { readonly softmax: PrimDef<"softmax">["cpu"]; readonly logsumexp: PrimDef<"logsumexp">["cpu"] } {
  return {
    softmax(ins, srcs, out, p, ctx) {
      const [a] = ins, x = srcs[0], n = x.shape[x.shape.length - 1];
      if (n === 0 || a.length < SOFTMAX_SIMD_MIN) return softmax(ins, srcs, out, p, ctx);
      const o = ctx.alloc("f32", a.length) as Float32Array;
      k.softmax(a, o, a.length / n, n);
      return o;
    },
    logsumexp(ins, srcs, out, p, ctx) {
      const [a] = ins, x = srcs[0], n = x.shape[x.shape.length - 1];
      if (n === 0 || a.length < SOFTMAX_SIMD_MIN) return logsumexp(ins, srcs, out, p, ctx);
      const o = ctx.alloc("f32", a.length / n) as Float32Array;
      k.logsumexp(a, o, a.length / n, n);
      return o;
    },
  };
}
