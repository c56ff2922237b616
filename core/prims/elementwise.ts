// Elementwise primitives: unary math, binary arithmetic, comparisons, where, cast, stopGradient.

import type { Aval, CpuArray, CpuContext, PrimDef } from "../prim.ts";
import { checkDType, type DType, fmt, sameShape } from "../shape.ts";

type Unary = "neg" | "exp" | "log" | "sqrt" | "sin" | "cos" | "tanh";
type Binary = "add" | "sub" | "mul" | "div" | "maximum" | "pow" | "lt" | "eq";

function unaryShape(op: Unary, allowInt: boolean) {
  return ([x]: readonly Aval[]): Aval => {
    if (x.dtype !== "f32" && !(allowInt && x.dtype === "i32")) {
      throw new Error(`${op}: expected an f32 tensor, got ${x.dtype} of shape ${fmt(x.shape)} (cast it first)`);
    }
    return x;
  };
}

function unaryCpu(f: (v: number) => number) {
  return ([a]: readonly CpuArray[], _avals: readonly Aval[], out: Aval, _p: unknown, ctx: CpuContext) => {
    const o = ctx.alloc(out.dtype, a.length);
    for (let i = 0; i < a.length; i++) o[i] = f(a[i]);
    return o;
  };
}

function unary(op: Unary, f: (v: number) => number, vjp: PrimDef<Unary>["vjp"], allowInt = false): PrimDef<Unary> {
  return { shape: unaryShape(op, allowInt), cpu: unaryCpu(f), vjp };
}

const ARITH: ReadonlySet<DType> = new Set(["f32", "i32"]);

function binaryShape(op: Binary, allowed: ReadonlySet<DType>, result?: DType) {
  return ([a, b]: readonly Aval[]): Aval => {
    if (!sameShape(a.shape, b.shape)) throw new Error(`${op}: shapes ${fmt(a.shape)} and ${fmt(b.shape)} differ`);
    if (a.dtype !== b.dtype) {
      throw new Error(`${op}: dtypes differ: ${a.dtype} ${fmt(a.shape)} and ${b.dtype} ${fmt(b.shape)} (cast one)`);
    }
    if (!allowed.has(a.dtype)) {
      throw new Error(`${op}: ${a.dtype} tensors are not supported; expected ${[...allowed].join(" or ")}`);
    }
    return { shape: a.shape, dtype: result ?? a.dtype };
  };
}

function binaryCpu(f: (x: number, y: number) => number, fi32?: (x: number, y: number) => number) {
  return ([a, b]: readonly CpuArray[], avals: readonly Aval[], out: Aval, _p: unknown, ctx: CpuContext) => {
    const o = ctx.alloc(out.dtype, a.length);
    const fn = avals[0].dtype === "i32" && fi32 ? fi32 : f;
    for (let i = 0; i < a.length; i++) o[i] = fn(a[i], b[i]);
    return o;
  };
}

function binary(
  op: Binary,
  allowed: ReadonlySet<DType>,
  f: (x: number, y: number) => number,
  vjp: PrimDef<Binary>["vjp"],
  opts: { result?: DType; fi32?: (x: number, y: number) => number } = {},
): PrimDef<Binary> {
  return { shape: binaryShape(op, allowed, opts.result), cpu: binaryCpu(f, opts.fi32), vjp };
}

const noGrad = () => [null, null];

/** Records of the elementwise primitives. */
export const ELEMENTWISE: { readonly [P in Unary | Binary | "where" | "cast" | "stopGradient"]: PrimDef<P> } = {
  neg: unary("neg", (v) => -v, (g) => [g.neg()], true),
  exp: unary("exp", Math.exp, (g, _x, out) => [g.mul(out)]),
  log: unary("log", Math.log, (g, [x]) => [g.div(x)]),
  sqrt: unary("sqrt", Math.sqrt, (g, _x, out) => [g.div(out.mul(2))]),
  sin: unary("sin", Math.sin, (g, [x]) => [g.mul(x.cos())]),
  cos: unary("cos", Math.cos, (g, [x]) => [g.mul(x.sin()).neg()]),
  tanh: unary("tanh", Math.tanh, (g, _x, out) => [g.mul(out.square().neg().add(1))]),

  add: binary("add", ARITH, (x, y) => x + y, (g) => [g, g]),
  sub: binary("sub", ARITH, (x, y) => x - y, (g) => [g, g.neg()]),
  mul: binary("mul", ARITH, (x, y) => x * y, (g, [a, b]) => [g.mul(b), g.mul(a)], { fi32: Math.imul }),
  div: binary("div", ARITH, (x, y) => x / y, (g, [, b], out) => [g.div(b), g.mul(out).div(b).neg()], {
    fi32: (x, y) => (y === 0 ? 0 : Math.trunc(x / y)),
  }),
  maximum: binary("maximum", ARITH, (x, y) => (x !== x || y !== y ? NaN : Math.max(x, y)), (g, [a, b]) => {
    // Ties split the gradient evenly, so maximum(x, x) still has derivative 1.
    const wa = b.lt(a).cast("f32").add(a.eq(b).cast("f32").mul(0.5));
    return [g.mul(wa), g.mul(wa.neg().add(1))];
  }),
  pow: binary("pow", new Set(["f32"]), Math.pow, (g, [a, b], out) => {
    const safeLog = a.gt(0).where(a, 1).log();
    return [g.mul(b).mul(a.pow(b.sub(1))), g.mul(out).mul(safeLog)];
  }),
  lt: binary("lt", ARITH, (x, y) => (x < y ? 1 : 0), noGrad, { result: "bool" }),
  eq: binary("eq", new Set(["f32", "i32", "bool"]), (x, y) => (x === y ? 1 : 0), noGrad, { result: "bool" }),

  where: {
    shape([c, a, b]) {
      if (c.dtype !== "bool") throw new Error(`where: condition must be bool, got ${c.dtype}`);
      if (!sameShape(c.shape, a.shape) || !sameShape(a.shape, b.shape)) {
        throw new Error(`where: shapes ${fmt(c.shape)}, ${fmt(a.shape)} and ${fmt(b.shape)} differ`);
      }
      if (a.dtype !== b.dtype) throw new Error(`where: branch dtypes differ: ${a.dtype} and ${b.dtype}`);
      return a;
    },
    cpu([c, a, b], _avals, out, _p, ctx) {
      const o = ctx.alloc(out.dtype, c.length);
      for (let i = 0; i < c.length; i++) o[i] = c[i] ? a[i] : b[i];
      return o;
    },
    vjp(g, [c], _out, _p, ops) {
      const zero = ops.scalar(0, g).broadcastTo(g.shape);
      return [null, c.where(g, zero), c.where(zero, g)];
    },
  },
  cast: {
    shape([x], { dtype }) {
      checkDType("cast", dtype);
      return { shape: x.shape, dtype };
    },
    cpu([a], [x], out, _p, ctx) {
      const o = ctx.alloc(out.dtype, a.length);
      if (out.dtype === "bool") { for (let i = 0; i < a.length; i++) o[i] = a[i] !== 0 ? 1 : 0; }
      else if (out.dtype === "i32" && x.dtype === "f32") { for (let i = 0; i < a.length; i++) o[i] = Math.trunc(a[i]); }
      else o.set(a);
      return o;
    },
    vjp: (g, [x], out) => [x.dtype === "f32" && out.dtype === "f32" ? g : null],
  },
  stopGradient: {
    shape: ([x]) => x,
    cpu: ([a]) => a,
    vjp: () => [null],
  },
};
