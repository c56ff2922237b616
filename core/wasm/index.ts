// gather and scatter-add (embedding lookup and its gradient) in Wasm. gather copies rows of
// 4-byte elements (f32 or i32, bits unchanged); scatterAdd sums f32 updates into float64
// accumulators in the reference's order (outer, then index, then inner) and rounds once, so both
// equal the reference rules bit for bit. Indices are clamped into range as the reference clamps
// them. Other dtypes (bool), and gathers of few long rows from a large table, use the reference
// rules. One module, compiled on first use.

import type { CpuArray, PrimDef } from "../prim.ts";
import { liveStats } from "../stats.ts";
import { Func, I32, instantiate, moduleBytes } from "./asm.ts";
import { kernelMemory, reserve } from "./memory.ts";

// k = clamp(idx[j], 0, lim), reading idx at byte address `ix` + 4 j.
function clampIndex(f: Func): void {
  f.get("ix").get("j").i32(4).op(0x6c).op(0x6a).op(0x28, 2, 0).set("k"); // i32.load
  f.i32(0).get("k").get("k").i32(0).op(0x48).op(0x1b).set("k"); // k < 0 ? 0 : k
  f.get("lim").get("k").get("k").get("lim").op(0x4a).op(0x1b).set("k"); // k > lim ? lim : k
}

// (a, ix, o, outer, n, m, inner): o[p, j, :] = a[p, clamp(ix[j]), :], 4-byte elements.
function gatherFunc(): Func {
  const f = new Func(["a", "ix", "o", "outer", "n", "m", "inner"]);
  for (const l of ["p", "j", "k", "lim", "s", "d", "e", "row", "lim2"]) f.local(l, I32);
  f.get("n").i32(1).op(0x6b).set("lim");
  f.get("inner").i32(4).op(0x6c).set("row");
  f.get("o").set("d");
  f.i32(0).set("p").whileLt("p", "outer", () => {
    f.i32(0).set("j").whileLt("j", "m", () => {
      clampIndex(f);
      // s = a + (p n + k) row; e = d + row
      f.get("p").get("n").op(0x6c).get("k").op(0x6a).get("row").op(0x6c).get("a").op(0x6a).set("s");
      f.get("d").get("row").op(0x6a).set("e");
      // 16 bytes at a time while d + 16 <= e (e >= 16 as the output starts at 16 or later), then 4
      f.get("e").i32(15).op(0x6b).set("lim2");
      f.whileLt("d", "lim2", () => {
        f.get("d").get("s").simd(0, [0, 0]).simd(11, [0, 0]); // v128.load; v128.store
        f.bump("d", 16).bump("s", 16);
      });
      f.op(0x02, 0x40, 0x03, 0x40); // block, loop: while d != e
      f.get("d").get("e").op(0x46, 0x0d, 1); // i32.eq; br_if 1
      f.get("d").get("s").op(0x28, 2, 0).op(0x36, 2, 0); // i32.load; i32.store
      f.bump("d", 4).bump("s", 4);
      f.op(0x0c, 0, 0x0b, 0x0b);
      f.bump("j", 1);
    });
    f.bump("p", 1);
  });
  return f;
}

// (g, ix, acc, outer, m, size, inner): acc[p, clamp(ix[j]), :] += f64(g[p, j, :]) in order.
function scatterFunc(): Func {
  const f = new Func(["g", "ix", "acc", "outer", "m", "size", "inner"]);
  for (const l of ["p", "j", "k", "lim", "s", "d", "i"]) f.local(l, I32);
  f.get("size").i32(1).op(0x6b).set("lim");
  f.get("g").set("s");
  f.i32(0).set("p").whileLt("p", "outer", () => {
    f.i32(0).set("j").whileLt("j", "m", () => {
      clampIndex(f);
      // d = acc + (p size + k) inner 8
      f.get("p").get("size").op(0x6c).get("k").op(0x6a).get("inner").op(0x6c).i32(8).op(0x6c);
      f.get("acc").op(0x6a).set("d");
      f.i32(0).set("i").whileLt("i", "inner", () => {
        // acc[d] = acc[d] + f64(g[s]): the same f64 additions as the reference, lane by lane
        f.get("d").get("d").op(0x2b, 3, 0).get("s").f32Load().op(0xbb, 0xa0).op(0x39, 3, 0);
        f.bump("d", 8).bump("s", 4).bump("i", 1);
      });
      f.bump("j", 1);
    });
    f.bump("p", 1);
  });
  return f;
}

type Fn = (a: number, ix: number, o: number, outer: number, n: number, m: number, inner: number) => void;

// Splits a shape around `axis` spanning `width` axes: [outer, middle, inner] element counts.
function around(shape: readonly number[], axis: number, width = 1): [number, number, number] {
  const prod = (a: number, b: number) => shape.slice(a, b).reduce((p, d) => p * d, 1);
  return [prod(0, axis), prod(axis, axis + width), prod(axis + width, shape.length)];
}

const is4 = (x: CpuArray) => x instanceof Float32Array || x instanceof Int32Array;
const up = (bytes: number, align: number) => Math.ceil(bytes / align) * align;

/** gather and scatterAdd for the Wasm backend's `kernels` table, sharing one module and memory. */
export function indexKernels(
  ref: { gather: PrimDef<"gather">["cpu"]; scatterAdd: PrimDef<"scatterAdd">["cpu"] },
): { gather: PrimDef<"gather">["cpu"]; scatterAdd: PrimDef<"scatterAdd">["cpu"] } {
  const memory = kernelMemory();
  let fns: { gather: Fn; scatter: Fn } | null = null;
  const ready = (bytes: number) => {
    if (fns === null) {
      const ex = instantiate(moduleBytes([["gather", gatherFunc()], ["scatter", scatterFunc()]], 1, false), memory);
      fns = { gather: ex.gather as Fn, scatter: ex.scatter as Fn };
      liveStats.shaderModules++;
    }
    reserve(memory, bytes);
    return fns;
  };
  return {
    gather(ins, srcs, out, params, ctx) {
      const [a, idx] = ins;
      if (!is4(a) || !(idx instanceof Int32Array) || srcs[0].shape[params.axis] === 0) {
        return ref.gather(ins, srcs, out, params, ctx);
      }
      const [outer, n, inner] = around(srcs[0].shape, params.axis), m = srcs[1].shape.reduce((p, d) => p * d, 1);
      const na = outer * n * inner, no = outer * m * inner;
      // Copying a large table into the module costs more than the rows read from it: long rows copy
      // as fast on the host (measured: 4096 x 256 table, 1024 rows, Wasm no faster).
      if (inner >= 64 && na > 2 * no) return ref.gather(ins, srcs, out, params, ctx);
      const ix = 4 * na, o = up(ix + 4 * m, 16); // o >= 16: a holds at least one element
      const { gather } = ready(o + 4 * no);
      const I = new Int32Array(memory.buffer);
      I.set(new Int32Array(a.buffer, a.byteOffset, na));
      I.set(idx.subarray(0, m), ix / 4);
      if (no > 0) gather(0, ix, o, outer, n, m, inner);
      const res = ctx.alloc(out.dtype, no);
      new Int32Array(res.buffer, res.byteOffset, no).set(I.subarray(o / 4, o / 4 + no));
      return res;
    },
    scatterAdd(ins, srcs, out, params, ctx) {
      const [g, idx] = ins;
      if (!(g instanceof Float32Array) || !(idx instanceof Int32Array)) {
        return ref.scatterAdd(ins, srcs, out, params, ctx);
      }
      const { axis, size } = params;
      const [outer, m, inner] = around(srcs[0].shape, axis, srcs[1].shape.length);
      const ng = outer * m * inner, no = outer * size * inner;
      const ix = 4 * ng, acc = up(ix + 4 * m, 16);
      const { scatter } = ready(acc + 8 * no);
      new Float32Array(memory.buffer).set(g.subarray(0, ng));
      new Int32Array(memory.buffer).set(idx.subarray(0, m), ix / 4);
      const sums = new Float64Array(memory.buffer, acc, no);
      sums.fill(0);
      if (ng > 0 && size > 0) scatter(0, ix, acc, outer, m, size, inner);
      const res = ctx.alloc(out.dtype, no);
      res.set(sums);
      return res;
    },
  };
}
