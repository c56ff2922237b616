// cumsum over one axis in Wasm. f32: each running sum is carried in float64 and each partial sum
// rounded to f32, in the reference's order, so results equal the reference's bit for bit. i32:
// wrapping i32 additions, which equal the reference's float64 sums stored as i32 (modulo 2^32)
// while those sums are exact, i.e. for axes of at most 2^22 entries; longer ones use the reference
// rule. The sums run in place in the module's memory.

import type { PrimDef } from "../prim.ts";
import { liveStats } from "../stats.ts";
import { Func, I32, instantiate, moduleBytes } from "./asm.ts";
import { kernelMemory, reserve } from "./memory.ts";

const F64 = 0x7c;

// (at, outer, n, inner, reverse): the tensor at byte address `at`, [outer, n, inner], summed along n.
function cumsumFunc(int: boolean): Func {
  const f = new Func(["at", "outer", "n", "inner", "rev"]);
  for (const l of ["p", "i", "t", "q", "step", "base"]) f.local(l, I32);
  f.local("s", int ? I32 : F64);
  // step = (rev ? -inner : inner) * 4 bytes
  f.get("inner").i32(4).op(0x6c).set("step");
  f.get("rev").op(0x04, 0x40).i32(0).get("step").op(0x6b).set("step").op(0x0b);
  f.i32(0).set("p").whileLt("p", "outer", () => {
    // base = at + (p n + (rev ? n - 1 : 0)) inner 4
    f.get("p").get("n").op(0x6c);
    f.get("n").i32(1).op(0x6b).i32(0).get("rev").op(0x1b); // select(n - 1, 0, rev)
    f.op(0x6a).get("inner").op(0x6c).i32(4).op(0x6c).get("at").op(0x6a).set("base");
    f.i32(0).set("i").whileLt("i", "inner", () => {
      f.get("base").get("i").i32(4).op(0x6c).op(0x6a).set("q");
      if (int) f.i32(0).set("s");
      else f.op(0x44, 0, 0, 0, 0, 0, 0, 0, 0).set("s"); // f64.const 0
      f.i32(0).set("t").whileLt("t", "n", () => {
        if (int) {
          // s += a[q]; a[q] = s (i32.load, i32.add; i32.store)
          f.get("s").get("q").op(0x28, 2, 0, 0x6a).set("s");
          f.get("q").get("s").op(0x36, 2, 0);
        } else {
          // s += f64(a[q]); a[q] = f32(s)
          f.get("s").get("q").f32Load().op(0xbb, 0xa0).set("s");
          f.get("q").get("s").op(0xb6, 0x38, 2, 0); // f32.demote_f64; f32.store
        }
        f.bump("q", "step").bump("t", 1);
      });
      f.bump("i", 1);
    });
    f.bump("p", 1);
  });
  return f;
}

type Fn = (at: number, outer: number, n: number, inner: number, rev: number) => void;

/** The cumsum kernel for the Wasm backend's `kernels` table, compiled once (sizes are arguments). */
export function cumsumKernel(reference: PrimDef<"cumsum">["cpu"]): PrimDef<"cumsum">["cpu"] {
  const memory = kernelMemory();
  let fns: { f32: Fn; i32: Fn } | null = null;
  return (ins, srcs, out, params, ctx) => {
    const x = srcs[0], a = ins[0];
    const { axis, reverse } = params, shape = x.shape;
    const f32 = x.dtype === "f32" && a instanceof Float32Array;
    const i32 = x.dtype === "i32" && a instanceof Int32Array && shape[axis] <= 2 ** 22;
    if (!f32 && !i32) return reference(ins, srcs, out, params, ctx);
    const prod = (a: number, b: number) => shape.slice(a, b).reduce((p, d) => p * d, 1);
    const [outer, n, inner] = [prod(0, axis), shape[axis], prod(axis + 1, shape.length)];
    if (fns === null) {
      const bytes = moduleBytes([["f32", cumsumFunc(false)], ["i32", cumsumFunc(true)]], 1, false);
      const ex = instantiate(bytes, memory);
      fns = { f32: ex.f32 as Fn, i32: ex.i32 as Fn };
      liveStats.shaderModules++;
    }
    const size = outer * n * inner;
    reserve(memory, 4 * size);
    // Both dtypes are 4-byte words: moved as i32 bits.
    const mem = new Int32Array(memory.buffer, 0, size);
    mem.set(new Int32Array(a.buffer, a.byteOffset, size));
    if (size > 0) fns[f32 ? "f32" : "i32"](0, outer, n, inner, reverse ? 1 : 0);
    const o = ctx.alloc(x.dtype, size);
    new Int32Array(o.buffer, o.byteOffset, size).set(mem);
    return o;
  };
}
