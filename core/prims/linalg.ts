// Contractions and indexing: batched matmul, gather with its scatter-add vjp, cumsum.

import type { Aval, PrimDef } from "../prim.ts";
import { fmt, type Shape, sizeOf } from "../shape.ts";

// Splits a shape around `axis` spanning `width` axes: [outer, middle, inner] element counts.
function around(shape: Shape, axis: number, width = 1): [number, number, number] {
  return [sizeOf(shape.slice(0, axis)), sizeOf(shape.slice(axis, axis + width)), sizeOf(shape.slice(axis + width))];
}

function checkF32(op: string, x: Aval): void {
  if (x.dtype !== "f32") throw new Error(`${op}: expected f32, got ${x.dtype} of shape ${fmt(x.shape)}`);
}

/** Records of matmul, gather, scatterAdd and cumsum. */
export const LINALG: { readonly [P in "matmul" | "gather" | "scatterAdd" | "cumsum"]: PrimDef<P> } = {
  matmul: {
    // B batch, M rows of a, K contraction, N columns of b.
    shape([a, b]) {
      checkF32("matmul", a);
      checkF32("matmul", b);
      const r = a.shape.length;
      const ok = r >= 2 && b.shape.length === r && a.shape[r - 1] === b.shape[r - 2] &&
        a.shape.slice(0, -2).every((d, i) => d === b.shape[i]);
      if (!ok) throw new Error(`matmul: cannot multiply ${fmt(a.shape)} by ${fmt(b.shape)}`);
      return { shape: [...a.shape.slice(0, -1), b.shape[r - 1]], dtype: "f32" };
    },
    cpu([a, b], [av, bv], _out, _p, ctx) {
      const r = av.shape.length, M = av.shape[r - 2], K = av.shape[r - 1], N = bv.shape[r - 1];
      const B = sizeOf(av.shape.slice(0, -2));
      const o = ctx.alloc("f32", B * M * N);
      // Four rows at a time share each load of b's row; sums are kept in float64.
      const acc = new Float64Array(4 * N);
      for (let bi = 0; bi < B; bi++) {
        const ao = bi * M * K, bo = bi * K * N, oo = bi * M * N;
        for (let i0 = 0; i0 < M; i0 += 4) {
          const rows = Math.min(4, M - i0);
          acc.fill(0);
          for (let k = 0; k < K; k++) {
            const brow = bo + k * N;
            const a0 = a[ao + i0 * K + k];
            const a1 = rows > 1 ? a[ao + (i0 + 1) * K + k] : 0;
            const a2 = rows > 2 ? a[ao + (i0 + 2) * K + k] : 0;
            const a3 = rows > 3 ? a[ao + (i0 + 3) * K + k] : 0;
            for (let j = 0; j < N; j++) {
              const v = b[brow + j];
              acc[j] += a0 * v;
              acc[N + j] += a1 * v;
              acc[2 * N + j] += a2 * v;
              acc[3 * N + j] += a3 * v;
            }
          }
          for (let r2 = 0; r2 < rows; r2++) o.set(acc.subarray(r2 * N, r2 * N + N), oo + (i0 + r2) * N);
        }
      }
      return o;
    },
    vjp: (g, [a, b]) => [g.matmul(b.transpose()), a.transpose().matmul(g)],
  },
  gather: {
    shape([x, idx], { axis }) {
      if (idx.dtype !== "i32") throw new Error(`gather: indices must be i32, got ${idx.dtype}`);
      if (axis < 0 || axis >= x.shape.length) {
        throw new Error(`gather: axis ${axis} is out of range for ${fmt(x.shape)}`);
      }
      return { shape: [...x.shape.slice(0, axis), ...idx.shape, ...x.shape.slice(axis + 1)], dtype: x.dtype };
    },
    cpu([a, idx], [x], out, { axis }, ctx) {
      const [outer, n, inner] = around(x.shape, axis), m = idx.length;
      const o = ctx.alloc(out.dtype, outer * m * inner);
      // Indices computed on a backend are clamped into range, as a kernel must (host-known ones were
      // checked when the node was built).
      for (let p = 0; p < outer; p++) {
        for (let j = 0; j < m; j++) {
          const src = (p * n + Math.min(Math.max(idx[j], 0), n - 1)) * inner;
          o.set(a.subarray(src, src + inner), (p * m + j) * inner);
        }
      }
      return o;
    },
    vjp: (g, [x, idx], _out, { axis }, ops) => [ops.apply("scatterAdd", [g, idx], { axis, size: x.shape[axis] }), null],
  },
  scatterAdd: {
    shape([g, idx], { axis, size }) {
      const k = idx.shape.length;
      const ok = idx.dtype === "i32" && axis >= 0 && axis + k <= g.shape.length &&
        idx.shape.every((d, i) => d === g.shape[axis + i]);
      if (!ok) {
        throw new Error(
          `scatterAdd: updates ${fmt(g.shape)} do not match indices ${idx.dtype} ${fmt(idx.shape)} at axis ${axis}`,
        );
      }
      return { shape: [...g.shape.slice(0, axis), size, ...g.shape.slice(axis + k)], dtype: g.dtype };
    },
    cpu([a, idx], [gv, iv], out, { axis, size }, ctx) {
      const [outer, m, inner] = around(gv.shape, axis, iv.shape.length);
      const acc = new Float64Array(outer * size * inner);
      for (let p = 0; p < outer; p++) {
        for (let j = 0; j < m; j++) {
          const k = Math.min(Math.max(idx[j], 0), size - 1); // clamped like gather's, so it is gather's vjp
          const dst = (p * size + k) * inner, src = (p * m + j) * inner;
          for (let i = 0; i < inner; i++) acc[dst + i] += a[src + i];
        }
      }
      const o = ctx.alloc(out.dtype, acc.length);
      o.set(acc);
      return o;
    },
    vjp: (g, [, idx], _out, { axis }) => [g.gather(idx, axis), null],
  },
  cumsum: {
    shape([x], { axis }) {
      if (x.dtype === "bool") throw new Error("cumsum: bool tensors are not supported; cast first");
      if (axis < 0 || axis >= x.shape.length) {
        throw new Error(`cumsum: axis ${axis} is out of range for ${fmt(x.shape)}`);
      }
      return x;
    },
    cpu([a], [x], out, { axis, reverse }, ctx) {
      const [outer, n, inner] = around(x.shape, axis);
      const o = ctx.alloc(out.dtype, a.length);
      for (let p = 0; p < outer; p++) {
        for (let i = 0; i < inner; i++) {
          let s = 0;
          for (let t = 0; t < n; t++) {
            const j = (p * n + (reverse ? n - 1 - t : t)) * inner + i;
            s += a[j];
            o[j] = s;
          }
        }
      }
      return o;
    },
    vjp: (g, _x, _out, { axis, reverse }) => [g.cumsum(axis, { reverse: !reverse })],
  },
};
