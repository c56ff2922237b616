// The one primitive without inputs: iota, the index along an axis, so index masks need no uploads.

import type { PrimDef } from "../prim.ts";
import { checkShape, fmt, sizeOf, stridesOf } from "../shape.ts";

/** The record of iota: `out[..., i_axis, ...] = i_axis`, as f32 or i32. */
export const IOTA: { readonly iota: PrimDef<"iota"> } = {
  iota: {
    shape(_ins, { shape, axis, dtype }) {
      checkShape("iota", shape);
      if (!Number.isInteger(axis) || axis < 0 || axis >= shape.length) {
        throw new Error(`iota: axis ${axis} is out of range for shape ${fmt(shape)}`);
      }
      if (dtype !== "f32" && dtype !== "i32") throw new Error(`iota: dtype must be f32 or i32, got ${dtype}`);
      return { shape, dtype };
    },
    cpu(_ins, _avals, out, { axis }, ctx) {
      const n = sizeOf(out.shape), stride = stridesOf(out.shape)[axis], d = out.shape[axis];
      const o = ctx.alloc(out.dtype, n);
      for (let i = 0; i < n; i++) o[i] = Math.floor(i / stride) % d;
      return o;
    },
    vjp: () => [],
  },
};
