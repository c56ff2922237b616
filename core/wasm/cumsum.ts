// cumsum over one axis of an f32 tensor in Wasm: each running sum is carried in float64 and each
// partial sum rounded to f32, in the reference's order, so results equal the reference's bit for
// bit. The sums run in place in the module's memory. Other dtypes use the reference rule.

import type { CpuArray, PrimDef } from "../prim.ts";
import { liveStats } from "../stats.ts";
import { Func, I32, moduleBytes } from "./asm.ts";

const F64 = 0x7c;

// (at, outer, n, inner, reverse): the tensor at byte address `at`, [outer, n, inner], summed along n.
function cumsumFunc(): Func {
  const f = new Func(["at", "outer", "n", "inner", "rev"]);
  for (const l of ["p", "i", "t", "q", "step", "base"]) f.local(l, I32);
  f.local("s", F64);
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
      f.op(0x44, 0, 0, 0, 0, 0, 0, 0, 0).set("s"); // f64.const 0
      f.i32(0).set("t").whileLt("t", "n", () => {
        // s += f64(a[q]); a[q] = f32(s)
        f.get("s").get("q").f32Load().op(0xbb, 0xa0).set("s");
        f.get("q").get("s").op(0xb6, 0x38, 2, 0); // f32.demote_f64; f32.store
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
  const memory = new WebAssembly.Memory({ initial: 1 });
  let fn: Fn | null = null;
  return (ins, srcs, out, params, ctx) => {
    const x = srcs[0];
    if (x.dtype !== "f32" || !(ins[0] instanceof Float32Array)) return reference(ins, srcs, out, params, ctx);
    const { axis, reverse } = params, shape = x.shape;
    const prod = (a: number, b: number) => shape.slice(a, b).reduce((p, d) => p * d, 1);
    const [outer, n, inner] = [prod(0, axis), shape[axis], prod(axis + 1, shape.length)];
    if (fn === null) {
      const bytes = moduleBytes([["cumsum", cumsumFunc()]], 1, false);
      const inst = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { mem: memory } });
      fn = inst.exports.cumsum as Fn;
      liveStats.shaderModules++;
    }
    const size = outer * n * inner, have = memory.buffer.byteLength;
    if (4 * size > have) memory.grow(Math.ceil((4 * size - have) / 65536));
    const mem = new Float32Array(memory.buffer, 0, size);
    mem.set(ins[0].subarray(0, size));
    if (size > 0) fn(0, outer, n, inner, reverse ? 1 : 0);
    const o = ctx.alloc("f32", size) as Float32Array;
    o.set(mem);
    return o as CpuArray;
  };
}
