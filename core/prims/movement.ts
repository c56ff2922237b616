// Movement primitives (reshape, permute, broadcast, slice, pad, concat) and the reductions.

import type { Aval, CpuArray, PrimDef } from "../prim.ts";
import { fmt, sameShape, type Shape, sizeOf, stridesOf } from "../shape.ts";

/** Offset `base + sum(index[a] * strides[a])` of every row-major index of `shape`. */
export function offsets(shape: Shape, strides: readonly number[], base = 0): Int32Array {
  const n = sizeOf(shape), rank = shape.length;
  const out = new Int32Array(n);
  const idx = new Array<number>(rank).fill(0);
  let off = base;
  for (let i = 0; i < n; i++) {
    out[i] = off;
    for (let a = rank - 1; a >= 0; a--) {
      idx[a]++;
      off += strides[a];
      if (idx[a] < shape[a]) break;
      off -= strides[a] * shape[a];
      idx[a] = 0;
    }
  }
  return out;
}

function gatherInto(o: CpuArray, a: CpuArray, offs: Int32Array): CpuArray {
  for (let i = 0; i < offs.length; i++) o[i] = a[offs[i]];
  return o;
}

function checkNumeric(op: string, x: Aval): void {
  if (x.dtype === "bool") throw new Error(`${op}: bool tensors cannot be reduced; cast to i32 or f32 first`);
}

function reduceShape(op: "sum" | "max") {
  return ([x]: readonly Aval[], { axes }: { readonly axes: readonly number[] }): Aval => {
    checkNumeric(op, x);
    for (const a of axes) {
      if (!Number.isInteger(a) || a < 0 || a >= x.shape.length) {
        throw new Error(`${op}: axis ${a} is out of range for shape ${fmt(x.shape)}`);
      }
      if (op === "max" && x.shape[a] === 0) {
        throw new Error(`max: cannot reduce axis ${a} of shape ${fmt(x.shape)}: it is empty and max has no identity`);
      }
    }
    return { shape: x.shape.filter((_, i) => !axes.includes(i)), dtype: x.dtype };
  };
}

/** Strides that send each input index to its reduced output position (0 on reduced axes). */
function reducedStrides(shape: Shape, axes: readonly number[]): number[] {
  const outStrides = stridesOf(shape.filter((_, i) => !axes.includes(i)));
  let k = 0;
  return shape.map((_, i) => (axes.includes(i) ? 0 : outStrides[k++]));
}

/** Records of the movement primitives and reductions. */
export const MOVEMENT: {
  readonly [P in "sum" | "max" | "reshape" | "permute" | "broadcast" | "slice" | "pad" | "concat"]: PrimDef<P>;
} = {
  sum: {
    shape: reduceShape("sum"),
    cpu([a], [x], out, { axes }, ctx) {
      const offs = offsets(x.shape, reducedStrides(x.shape, axes));
      const acc = new Float64Array(sizeOf(out.shape));
      for (let i = 0; i < a.length; i++) acc[offs[i]] += a[i];
      const o = ctx.alloc(out.dtype, acc.length);
      o.set(acc);
      return o;
    },
    vjp: (g, [x], _out, { axes }) => [g.reshape(keptShape(x.shape, axes)).broadcastTo(x.shape)],
  },
  max: {
    shape: reduceShape("max"),
    cpu([a], [x], out, { axes }, ctx) {
      const offs = offsets(x.shape, reducedStrides(x.shape, axes));
      const acc = new Float64Array(sizeOf(out.shape)).fill(-Infinity);
      for (let i = 0; i < a.length; i++) {
        const v = a[i], j = offs[i];
        if (v > acc[j] || v !== v) acc[j] = v;
      }
      const o = ctx.alloc(out.dtype, acc.length);
      o.set(acc);
      return o;
    },
    vjp(g, [x], out, { axes }) {
      const kept = keptShape(x.shape, axes);
      const mask = x.eq(out.reshape(kept)).cast("f32");
      const count = mask.sum({ axis: axes, keepdims: true });
      return [mask.mul(g.reshape(kept).div(count))];
    },
  },
  reshape: {
    shape([x], { shape }) {
      if (sizeOf(shape) !== sizeOf(x.shape)) {
        throw new Error(`reshape: cannot reshape ${fmt(x.shape)} (${sizeOf(x.shape)} elements) to ${fmt(shape)}`);
      }
      return { shape, dtype: x.dtype };
    },
    cpu: ([a]) => a,
    vjp: (g, [x]) => [g.reshape(x.shape)],
  },
  permute: {
    shape([x], { perm }) {
      const ok = perm.length === x.shape.length && [...perm].sort((p, q) => p - q).every((p, i) => p === i);
      if (!ok) throw new Error(`permute: ${JSON.stringify(perm)} is not a permutation of the axes of ${fmt(x.shape)}`);
      return { shape: perm.map((p) => x.shape[p]), dtype: x.dtype };
    },
    cpu([a], [x], out, { perm }, ctx) {
      const s = stridesOf(x.shape);
      return gatherInto(ctx.alloc(out.dtype, a.length), a, offsets(out.shape, perm.map((p) => s[p])));
    },
    vjp(g, _x, _out, { perm }) {
      const inv = new Array<number>(perm.length);
      perm.forEach((p, i) => (inv[p] = i));
      return [g.permute(inv)];
    },
  },
  broadcast: {
    shape([x], { shape }) {
      const lead = shape.length - x.shape.length;
      const bad = lead < 0 ? -1 : x.shape.findIndex((d, i) => d !== 1 && d !== shape[lead + i]);
      if (lead < 0 || bad !== -1) {
        throw new Error(
          `broadcastTo: cannot broadcast ${fmt(x.shape)} to ${fmt(shape)}` +
            (bad >= 0 ? `: axis ${bad} has size ${x.shape[bad]}` : ": target has fewer axes"),
        );
      }
      return { shape, dtype: x.dtype };
    },
    cpu([a], [x], out, _p, ctx) {
      const s = stridesOf(x.shape), lead = out.shape.length - x.shape.length;
      const strides = out.shape.map((_, i) => (i < lead || x.shape[i - lead] === 1 ? 0 : s[i - lead]));
      return gatherInto(ctx.alloc(out.dtype, sizeOf(out.shape)), a, offsets(out.shape, strides));
    },
    vjp(g, [x], out) {
      const lead = out.shape.length - x.shape.length;
      const axes = out.shape.map((_, i) => i).filter((i) =>
        i < lead || (x.shape[i - lead] === 1 && out.shape[i] !== 1)
      );
      return [g.sum({ axis: axes }).reshape(x.shape)];
    },
  },
  slice: {
    shape([x], { starts, ends }) {
      const ok = starts.length === x.shape.length && ends.length === x.shape.length &&
        x.shape.every((d, i) => 0 <= starts[i] && starts[i] <= ends[i] && ends[i] <= d);
      if (!ok) {
        throw new Error(`slice: bounds ${JSON.stringify(starts)}..${JSON.stringify(ends)} do not fit ${fmt(x.shape)}`);
      }
      return { shape: x.shape.map((_, i) => ends[i] - starts[i]), dtype: x.dtype };
    },
    cpu([a], [x], out, { starts }, ctx) {
      const s = stridesOf(x.shape), base = starts.reduce((acc, st, i) => acc + st * s[i], 0);
      return gatherInto(ctx.alloc(out.dtype, sizeOf(out.shape)), a, offsets(out.shape, s, base));
    },
    vjp: (g, [x], _out, { starts, ends }) => [g.pad(x.shape.map((d, i) => [starts[i], d - ends[i]] as const))],
  },
  pad: {
    shape([x], { lo, hi }) {
      const ok = lo.length === x.shape.length && hi.length === x.shape.length &&
        [...lo, ...hi].every((w) => Number.isInteger(w) && w >= 0);
      if (!ok) {
        throw new Error(
          `pad: widths ${JSON.stringify(lo)}/${JSON.stringify(hi)} must be non-negative, one per axis of ${
            fmt(x.shape)
          }`,
        );
      }
      return { shape: x.shape.map((d, i) => lo[i] + d + hi[i]), dtype: x.dtype };
    },
    cpu([a], [x], out, { lo }, ctx) {
      const s = stridesOf(out.shape), base = lo.reduce((acc, w, i) => acc + w * s[i], 0);
      const o = ctx.alloc(out.dtype, sizeOf(out.shape)), offs = offsets(x.shape, s, base);
      for (let i = 0; i < offs.length; i++) o[offs[i]] = a[i];
      return o;
    },
    vjp: (g, [x], _out, { lo }) => [g.slice(lo, lo.map((w, i) => w + x.shape[i]))],
  },
  concat: {
    shape(xs, { axis }) {
      if (xs.length === 0) throw new Error("concat: needs at least one tensor");
      const first = xs[0];
      if (axis < 0 || axis >= first.shape.length) {
        throw new Error(`concat: axis ${axis} is out of range for ${fmt(first.shape)}`);
      }
      for (const x of xs) {
        const rest = (s: Shape) => s.filter((_, i) => i !== axis);
        if (x.dtype !== first.dtype || !sameShape(rest(x.shape), rest(first.shape))) {
          throw new Error(
            `concat: ${x.dtype} ${fmt(x.shape)} does not match ${first.dtype} ${fmt(first.shape)} off axis ${axis}`,
          );
        }
      }
      const total = xs.reduce((acc, x) => acc + x.shape[axis], 0);
      return { shape: first.shape.map((d, i) => (i === axis ? total : d)), dtype: first.dtype };
    },
    cpu(ins, avals, out, { axis }, ctx) {
      const o = ctx.alloc(out.dtype, sizeOf(out.shape)), s = stridesOf(out.shape);
      let at = 0;
      ins.forEach((a, k) => {
        const offs = offsets(avals[k].shape, s, at * s[axis]);
        for (let i = 0; i < offs.length; i++) o[offs[i]] = a[i];
        at += avals[k].shape[axis];
      });
      return o;
    },
    vjp(g, xs, _out, { axis }) {
      let at = 0;
      return xs.map((x) => {
        const starts = g.shape.map((_, i) => (i === axis ? at : 0));
        at += x.shape[axis];
        return g.slice(starts, g.shape.map((d, i) => (i === axis ? at : d)));
      });
    },
  },
};

function keptShape(shape: Shape, axes: readonly number[]): number[] {
  return shape.map((d, i) => (axes.includes(i) ? 1 : d));
}
