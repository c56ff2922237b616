// Fused primitives: composable in principle, but one kernel instead of several where it matters.

import type { Aval, PrimDef } from "../prim.ts";
import { fmt } from "../shape.ts";

function lastAxis(op: string, x: Aval): void {
  if (x.dtype !== "f32") throw new Error(`${op}: expected f32, got ${x.dtype} of shape ${fmt(x.shape)}`);
  if (x.shape.length === 0) throw new Error(`${op}: needs at least one axis`);
}

/** logsumexp and softmax over the last axis: the heart of attention and cross entropy, one kernel each. */
export const FUSED: { readonly logsumexp: PrimDef<"logsumexp">; readonly softmax: PrimDef<"softmax"> } = {
  logsumexp: {
    shape([x]) {
      lastAxis("logsumexp", x);
      return { shape: x.shape.slice(0, -1), dtype: "f32" };
    },
    cpu([a], [x], out, _p, ctx) {
      const n = x.shape[x.shape.length - 1], rows = n === 0 ? out.shape.reduce((p, d) => p * d, 1) : a.length / n;
      const o = ctx.alloc("f32", rows);
      for (let r = 0; r < rows; r++) {
        let m = -Infinity;
        for (let j = 0; j < n; j++) m = Math.max(m, a[r * n + j]);
        if (m === -Infinity || m === Infinity || m !== m) {
          o[r] = m;
          continue;
        }
        let s = 0;
        for (let j = 0; j < n; j++) s += Math.exp(a[r * n + j] - m);
        o[r] = m + Math.log(s);
      }
      return o;
    },
    // d lse / dx = softmax(x) = exp(x - lse), written with ops so it differentiates again.
    vjp: (g, [x], out) => [x.sub(out.expandDims(-1)).exp().mul(g.expandDims(-1))],
  },
  softmax: {
    shape([x]) {
      lastAxis("softmax", x);
      return x;
    },
    cpu([a], [x], _out, _p, ctx) {
      const n = x.shape[x.shape.length - 1], o = ctx.alloc("f32", a.length);
      for (let r = 0; r * n < a.length; r++) {
        let m = -Infinity, s = 0;
        for (let j = 0; j < n; j++) m = Math.max(m, a[r * n + j]);
        for (let j = 0; j < n; j++) s += o[r * n + j] = Math.exp(a[r * n + j] - m);
        for (let j = 0; j < n; j++) o[r * n + j] /= s;
      }
      return o;
    },
    // The softmax Jacobian applied to g: out * (g - sum(g * out)), again written with ops.
    vjp: (g, _x, out) => [out.mul(g.sub(g.mul(out).sum({ axis: -1, keepdims: true })))],
  },
};
