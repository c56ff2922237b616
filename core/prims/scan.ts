// The fused gated delta-rule scan: every state of the recurrence in one kernel, and its reverse scan.

import type { Aval, PrimDef } from "../prim.ts";
import { fmt } from "../shape.ts";
import type { Tensor } from "../tensor.ts";

// B batch, H heads, T time, K key size, V value size. Per head and value column j the state
// column s (K values) evolves as: s <- a_t s; u = beta_t (v_tj - s.k_t); s <- s + k_t u, with
// a_t = exp(g_t). Columns are independent, which is what the kernels parallelize over.

function dims(x: Aval): [number, number, number, number] {
  const [B, H, T, K] = x.shape;
  return [B, H, T, K];
}

function checkScan(op: string, [k, v, g, beta, s0]: readonly Aval[]): [number, number, number, number, number] {
  const [B, H, T, K] = dims(k), V = v.shape[3];
  const same = (x: Aval, want: readonly number[]) =>
    x.shape.length === want.length && x.shape.every((d, i) => d === want[i]);
  const ok = k.shape.length === 4 && v.shape.length === 4 && same(v, [B, H, T, V]) && same(g, [B, H, T]) &&
    same(beta, [B, H, T]) && same(s0, [B, H, K, V]) && [k, v, g, beta, s0].every((x) => x.dtype === "f32");
  if (!ok) {
    throw new Error(
      `${op}: expected f32 k [B, H, T, K], v [B, H, T, V], g and beta [B, H, T], s0 [B, H, K, V]; got ` +
        [k, v, g, beta, s0].map((x) => `${x.dtype} ${fmt(x.shape)}`).join(", "),
    );
  }
  return [B, H, T, K, V];
}

/** Floats per value column in deltaScanGrad's packed output: dk (T*K), dv, dbeta, dg (T each), ds0 (K). */
export function packedLength(T: number, K: number): number {
  return T * (K + 3) + K;
}

/** Records of `deltaScan` (all states) and `deltaScanGrad` (its reverse scan, packed per column). */
export const SCAN: { readonly deltaScan: PrimDef<"deltaScan">; readonly deltaScanGrad: PrimDef<"deltaScanGrad"> } = {
  deltaScan: {
    shape(ins) {
      const [B, H, T, K, V] = checkScan("deltaScan", ins);
      return { shape: [B, H, T, K, V], dtype: "f32" };
    },
    cpu([k, v, g, beta, s0], avals, _out, _p, ctx) {
      const [B, H, T, K, V] = checkScan("deltaScan", avals);
      const out = ctx.alloc("f32", B * H * T * K * V), s = new Float64Array(K);
      for (let bh = 0; bh < B * H; bh++) {
        for (let j = 0; j < V; j++) {
          for (let i = 0; i < K; i++) s[i] = s0[(bh * K + i) * V + j];
          for (let t = 0; t < T; t++) {
            const a = Math.exp(g[bh * T + t]), kt = (bh * T + t) * K;
            let p = 0;
            for (let i = 0; i < K; i++) p += (s[i] *= a) * k[kt + i];
            const u = beta[bh * T + t] * (v[(bh * T + t) * V + j] - p);
            for (let i = 0; i < K; i++) out[((bh * T + t) * K + i) * V + j] = s[i] += k[kt + i] * u;
          }
        }
      }
      return out;
    },
    vjp(dS, [k, v, g, beta, s0], states, _p, ops) {
      const [B, H, T, K] = k.shape, V = v.shape[3];
      const packed = ops.apply("deltaScanGrad", [dS, k, v, g, beta, s0, states], {}); // [B, H, V, L]
      const part = (start: number, len: number) => packed.slice([0, 0, 0, start], [B, H, V, start + len]);
      const dk = part(0, T * K).reshape([B, H, V, T, K]).sum({ axis: 2 });
      const dv = part(T * K, T).permute([0, 1, 3, 2]);
      const dbeta = part(T * K + T, T).sum({ axis: 2 });
      const dg = part(T * K + 2 * T, T).sum({ axis: 2 });
      const ds0 = part(T * (K + 3), K).permute([0, 1, 3, 2]);
      return [dk, dv, dg, dbeta, ds0];
    },
  },
  deltaScanGrad: {
    shape([dS, ...ins]) {
      const [B, H, T, K, V] = checkScan("deltaScanGrad", ins.slice(0, 5));
      if (dS.shape.join() !== [B, H, T, K, V].join() || ins[5].shape.join() !== dS.shape.join()) {
        throw new Error(`deltaScanGrad: the state cotangent and the states must be ${fmt([B, H, T, K, V])}`);
      }
      return { shape: [B, H, V, packedLength(T, K)], dtype: "f32" };
    },
    cpu([dS, k, v, g, beta, s0, S], avals, _out, _p, ctx) {
      const [B, H, T, K, V] = checkScan("deltaScanGrad", avals.slice(1, 6));
      const L = packedLength(T, K), out = ctx.alloc("f32", B * H * V * L);
      const ds = new Float64Array(K), sp = new Float64Array(K);
      for (let bh = 0; bh < B * H; bh++) {
        for (let j = 0; j < V; j++) {
          const o = (bh * V + j) * L;
          ds.fill(0);
          for (let t = T - 1; t >= 0; t--) {
            const kt = (bh * T + t) * K, a = Math.exp(g[bh * T + t]), be = beta[bh * T + t];
            const vv = v[(bh * T + t) * V + j];
            for (let i = 0; i < K; i++) {
              sp[i] = t === 0 ? s0[(bh * K + i) * V + j] : S[((bh * T + t - 1) * K + i) * V + j];
              ds[i] += dS[((bh * T + t) * K + i) * V + j];
            }
            let p = 0, du = 0;
            for (let i = 0; i < K; i++) [p, du] = [p + a * sp[i] * k[kt + i], du + ds[i] * k[kt + i]];
            const u = be * (vv - p), dp = -du * be;
            let da = 0;
            for (let i = 0; i < K; i++) {
              out[o + t * K + i] = ds[i] * u + dp * a * sp[i];
              const dsd = ds[i] + dp * k[kt + i];
              da += dsd * sp[i];
              ds[i] = a * dsd;
            }
            out[o + T * K + t] = du * be;
            out[o + T * K + T + t] = du * (vv - p);
            out[o + T * K + 2 * T + t] = da * a;
          }
          for (let i = 0; i < K; i++) out[o + T * (K + 3) + i] = ds[i];
        }
      }
      return out;
    },
    vjp(): (Tensor | null)[] {
      throw new Error(
        "deltaScanGrad: second derivatives through the fused delta-rule scan are not supported; " +
          "differentiate gatedDeltaRuleChunked instead",
      );
    },
  },
};
