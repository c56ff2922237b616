// pad on the host as copies of contiguous runs, for the Wasm backend: the innermost axes that are
// not padded, with the padded axis around them, are one run of the input that lands contiguous in
// the output (a sequence padded in time: a whole batch element at once), copied with one set; the
// rest of the output stays zero. A pad only moves values, so the bits are the reference's.

import type { PrimDef } from "../prim.ts";
import { sizeOf, stridesOf } from "../shape.ts";

// Runs shorter than this are copied element by element (a set per run costs more there).
const SHORT_RUN = 16;

/** The pad primitive's host rule by runs (see above). */
export const padRuns: PrimDef<"pad">["cpu"] = ([a], [x], out, { lo, hi }, ctx) => {
  const shape = x.shape, R = shape.length, os = stridesOf(out.shape);
  const o = ctx.alloc(out.dtype, sizeOf(out.shape));
  // Axes [k, R) are not padded; axis k - 1 (if any) holds the runs.
  let k = R, inner = 1;
  while (k > 0 && lo[k - 1] === 0 && hi[k - 1] === 0) inner *= shape[--k];
  if (k === 0) return (o.set(a as ArrayLike<number>), o);
  const run = shape[k - 1] * inner, outer = shape.slice(0, k - 1);
  // The last outer axis is walked in a loop of its own (short runs are many: a column padded in
  // its last axis is one element a run), the axes before it odometer style.
  const last = outer.length - 1, count = last >= 0 ? outer[last] : 1, step = last >= 0 ? os[last] : 0;
  const idx = new Array<number>(Math.max(0, last)).fill(0), groups = sizeOf(outer) / count;
  let dst = lo.reduce((acc, w, i) => acc + w * os[i], 0), src = 0;
  for (let g = 0; g < groups; g++) {
    for (let r = 0, at = dst; r < count; r++, at += step, src += run) {
      if (run >= SHORT_RUN) o.set((a as Float32Array).subarray(src, src + run), at);
      else for (let i = 0; i < run; i++) o[at + i] = a[src + i];
    }
    for (let d = last - 1; d >= 0; d--) {
      dst += os[d];
      if (++idx[d] < outer[d]) break;
      dst -= os[d] * outer[d];
      idx[d] = 0;
    }
  }
  return o;
};
