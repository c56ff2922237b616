// The per-primitive spec table: random valid inputs, the primitive applied through the public API, and
// an independent float64 reference. Generation is kept apart from the checks, so the CPU tests here
// (prims_test.ts) and a later WebGPU-vs-CPU test iterate the same table.

import fc from "fast-check";
import { type DType, ops, type Shape, type Tensor, tensor } from "../../mod.ts";
import type { Prim } from "../../core/prim.ts";
// scatterAdd (gather's vjp) and iota (behind arange) have no public form of their own; apply them directly.
import { apply } from "../../core/tensor.ts";

/** Plain host data: f32 values are exactly representable in float32, bool values are 0 or 1. */
export interface HostTensor {
  readonly shape: Shape;
  readonly dtype: DType;
  readonly data: readonly number[];
}

/** One random instance of a primitive: its inputs, how to apply it, and what it must produce. */
export interface PrimCase {
  readonly inputs: readonly HostTensor[];
  /** The primitive's parameters in this case (axes, shapes, ...), shown in failure messages. */
  readonly params: unknown;
  /** Applies the primitive to tensors made from `inputs`, through the public methods and ops. */
  readonly build: (...xs: Tensor[]) => Tensor;
  /** The expected output, computed in float64 from `inputs` without calling jetfold. */
  readonly reference: () => HostTensor;
}

/** What the tests need to know about one primitive. */
export interface PrimSpec {
  readonly name: Prim;
  /** Valid random cases: several dtypes, size-1, odd and empty axes, broadcasts, negative axes. */
  readonly cases: fc.Arbitrary<PrimCase>;
  /** f32 cases away from kinks, ties and poles, where central finite differences are accurate. */
  readonly gradCases: fc.Arbitrary<PrimCase>;
  /** Inputs with a derivative; the others (indices, conditions) are held fixed. Empty: no vjp. */
  readonly differentiable: readonly number[];
  /** Where the generators keep the inputs, and why. */
  readonly domain: string;
  /** Set when taking a vjp must fail: a fragment of the error it must raise. */
  readonly noVjp?: string;
}

/** The table type: a primitive without a spec is a type error. */
export type SpecTable = { readonly [P in Prim]: PrimSpec };

// ---- Drawing random inputs --------------------------------------------------------------------

const DIMS = [1, 2, 3, 5, 7]; // size 1 and sizes that are not multiples of 4
const DTYPES: readonly DType[] = ["f32", "i32", "bool"];

/**
 * f32 values spread evenly over [min, max], sometimes exactly an end or 0, rounded to float32 so the
 * tensor holds exactly the drawn number. (fc.double spreads over bit patterns instead: most of its
 * draws in [-4, 4] round to 0 in float32, which would leave sums and products nearly untested.)
 */
export function real(min: number, max: number): fc.Arbitrary<number> {
  const even = fc.noBias(fc.integer({ min: 0, max: 2 ** 30 })).map((i) => Math.fround(min + (max - min) * i / 2 ** 30));
  const ends = fc.constantFrom(...[min, max, ...(min < 0 && max > 0 ? [0] : [])].map(Math.fround));
  return fc.oneof({ weight: 9, arbitrary: even }, { weight: 1, arbitrary: ends });
}
const integer = (min: number, max: number) => fc.noBias(fc.integer({ min, max }));
const bits = fc.constantFrom(0, 1);
/** Values of either sign with magnitude in [min, max]: keeps divisors away from zero. */
const apart = (min: number, max: number, ints = false) =>
  fc.tuple(fc.boolean(), ints ? integer(min, max) : real(min, max)).map(([neg, v]) => (neg ? -v : v));
/** Values that often collide, so comparisons and reductions see ties. */
const tying = (dtype: DType) =>
  dtype === "bool" ? bits : fc.oneof(dtype === "f32" ? real(-4, 4) : integer(-20, 20), fc.constantFrom(-1, 0, 1));

function anyValue(dtype: DType): fc.Arbitrary<number> {
  return dtype === "f32" ? real(-4, 4) : dtype === "i32" ? integer(-20, 20) : bits;
}

/** Imperative drawing on top of `fc.gen()`, so that each spec's generator reads top to bottom. */
export class Draw {
  constructor(private readonly g: fc.GeneratorValue) {}
  /** A uniform integer in [min, max] (unbiased: fc.integer favours the ends, which would skew shapes). */
  int(min: number, max: number): number {
    return this.g(() => fc.noBias(fc.integer({ min, max })));
  }
  bool(): boolean {
    return this.g(fc.boolean);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(0, xs.length - 1)];
  }
  shuffle<T>(xs: readonly T[]): T[] {
    const out = [...xs];
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.int(0, i);
      [out[i], out[j]] = [out[j], out[i]];
    }
    return out;
  }
  /** A shape of rank in [minRank, maxRank]; with `empty`, an axis is sometimes 0. */
  shape(minRank: number, maxRank: number, empty = false): number[] {
    const rank = this.int(minRank, maxRank);
    return Array.from({ length: rank }, () => (empty && this.int(0, 11) === 0 ? 0 : this.pick(DIMS)));
  }
  /** The shape itself, or one that broadcasts to it: leading axes dropped, some axes set to 1. */
  broadcastable(out: Shape): number[] {
    if (this.bool()) return [...out];
    const drop = this.int(0, out.length);
    return out.slice(drop).map((d) => (this.bool() ? 1 : d));
  }
  /** An axis of a rank-`rank` tensor, sometimes written as a negative number. */
  axis(rank: number): [axis: number, written: number] {
    const a = this.int(0, rank - 1);
    return [a, this.bool() ? a - rank : a];
  }
  /** A host tensor whose elements are drawn from `value`. */
  host(shape: Shape, dtype: DType, value: fc.Arbitrary<number>): HostTensor {
    const n = sizeOf(shape);
    return { shape: [...shape], dtype, data: this.g(() => fc.array(value, { minLength: n, maxLength: n })) };
  }
  /** Distinct f32 values at least 0.15 apart, in random order (no ties for max). */
  distinct(shape: Shape): HostTensor {
    const n = sizeOf(shape);
    const jitter = this.g(() => fc.array(real(-0.05, 0.05), { minLength: n, maxLength: n }));
    const ranks = this.shuffle([...Array(n).keys()]);
    return { shape: [...shape], dtype: "f32", data: ranks.map((r, i) => Math.fround((r - n / 2) * 0.25 + jitter[i])) };
  }
}

// ---- Indexing helpers for the references (plain row-major arithmetic) --------------------------

/** Number of elements of a shape. */
export function sizeOf(shape: Shape): number {
  return shape.reduce((acc, d) => acc * d, 1);
}

function unravel(i: number, shape: Shape): number[] {
  const idx = new Array<number>(shape.length);
  for (let a = shape.length - 1; a >= 0; a--) {
    idx[a] = i % shape[a];
    i = Math.floor(i / shape[a]);
  }
  return idx;
}

function ravel(idx: readonly number[], shape: Shape): number {
  return idx.reduce((acc, v, a) => acc * shape[a] + v, 0);
}

/** The element of `x` at a full index. */
function at(x: HostTensor, idx: readonly number[]): number {
  return x.data[ravel(idx, x.shape)];
}

/** NumPy broadcasting: right-aligned, size-1 axes repeat. `at` for an index of the broadcast shape. */
function atBroadcast(x: HostTensor, idx: readonly number[]): number {
  const lead = idx.length - x.shape.length;
  return at(x, x.shape.map((d, a) => (d === 1 ? 0 : idx[lead + a])));
}

function broadcastShape(shapes: readonly Shape[]): number[] {
  const rank = Math.max(...shapes.map((s) => s.length));
  return Array.from({ length: rank }, (_, a) => {
    const dims = shapes.map((s) => s[s.length - rank + a] ?? 1).filter((d) => d !== 1);
    return dims.length > 0 ? dims[0] : 1;
  });
}

/** The tensor of this shape whose element at each index is `f(index)`. */
function tabulate(shape: Shape, dtype: DType, f: (idx: number[]) => number): HostTensor {
  return { shape: [...shape], dtype, data: Array.from({ length: sizeOf(shape) }, (_, i) => f(unravel(i, shape))) };
}

function elementwise(xs: readonly HostTensor[], dtype: DType, f: (...vs: number[]) => number): HostTensor {
  return tabulate(broadcastShape(xs.map((x) => x.shape)), dtype, (idx) => f(...xs.map((x) => atBroadcast(x, idx))));
}

const norm = (axis: number, rank: number) => (axis < 0 ? axis + rank : axis);
const range = (n: number) => [...Array(n).keys()];

// ---- The delta-rule scan, written per column over nested arrays ------------------------------

function scanInputs(d: Draw, B: number, H: number, T: number, K: number, V: number): HostTensor[] {
  return [
    d.host([B, H, T, K], "f32", real(-1, 1)),
    d.host([B, H, T, V], "f32", real(-2, 2)),
    d.host([B, H, T], "f32", real(-1, 0)),
    d.host([B, H, T], "f32", real(0.05, 1)),
    d.host([B, H, K, V], "f32", real(-1, 1)),
  ];
}

// States after each token: s <- exp(g) s; u = beta (v_j - s.k); s <- s + k u, per value column j.
function scanStates(k: HostTensor, v: HostTensor, g: HostTensor, beta: HostTensor, s0: HostTensor): HostTensor {
  const [B, H, T, K] = k.shape, V = v.shape[3];
  const out = new Array<number>(B * H * T * K * V);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let j = 0; j < V; j++) {
        const s = range(K).map((i) => at(s0, [b, h, i, j]));
        for (let t = 0; t < T; t++) {
          const kt = range(K).map((i) => at(k, [b, h, t, i]));
          const decayed = s.map((x) => x * Math.exp(at(g, [b, h, t])));
          const u = at(beta, [b, h, t]) * (at(v, [b, h, t, j]) - decayed.reduce((acc, x, i) => acc + x * kt[i], 0));
          decayed.forEach((x, i) => (s[i] = x + kt[i] * u));
          s.forEach((x, i) => (out[(((b * H + h) * T + t) * K + i) * V + j] = x));
        }
      }
    }
  }
  return { shape: [B, H, T, K, V], dtype: "f32", data: out };
}

// The reverse scan by the chain rule, step by step; packed per column as dk (T*K), dv, dbeta, dg, ds0.
function scanGrad(
  dS: HostTensor,
  k: HostTensor,
  v: HostTensor,
  g: HostTensor,
  beta: HostTensor,
  s0: HostTensor,
  S: HostTensor,
): HostTensor {
  const [B, H, T, K] = k.shape, V = v.shape[3], L = T * (K + 3) + K;
  const out = new Array<number>(B * H * V * L).fill(0);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let j = 0; j < V; j++) {
        const o = ((b * H + h) * V + j) * L;
        let carry = new Array<number>(K).fill(0); // d loss / d state after token t, from later tokens
        for (let t = T - 1; t >= 0; t--) {
          const grad = carry.map((c, i) => c + at(dS, [b, h, t, i, j]));
          const prev = range(K).map((i) => (t === 0 ? at(s0, [b, h, i, j]) : at(S, [b, h, t - 1, i, j])));
          const kt = range(K).map((i) => at(k, [b, h, t, i])), a = Math.exp(at(g, [b, h, t]));
          const be = at(beta, [b, h, t]), vj = at(v, [b, h, t, j]);
          const decayed = prev.map((x) => a * x);
          const pred = decayed.reduce((acc, x, i) => acc + x * kt[i], 0), u = be * (vj - pred);
          // state = decayed + k u: d decayed = grad, d k = grad u, d u = grad . k
          const du = grad.reduce((acc, x, i) => acc + x * kt[i], 0);
          // u = be (vj - decayed . k)
          const dPred = -du * be;
          const dDecayed = grad.map((x, i) => x + dPred * kt[i]);
          kt.forEach((_, i) => (out[o + t * K + i] = grad[i] * u + dPred * decayed[i]));
          out[o + T * K + t] = du * be;
          out[o + T * K + T + t] = du * (vj - pred);
          out[o + T * K + 2 * T + t] = dDecayed.reduce((acc, x, i) => acc + x * prev[i], 0) * a; // d/dg of exp(g)
          carry = dDecayed.map((x) => x * a);
        }
        carry.forEach((x, i) => (out[o + T * (K + 3) + i] = x));
      }
    }
  }
  return { shape: [B, H, V, L], dtype: "f32", data: out };
}

// ---- Building specs -----------------------------------------------------------------------------

interface SpecDef<P> {
  /** Draws inputs and parameters; `forGrad` asks for f32 inputs where finite differences are accurate. */
  readonly gen: (d: Draw, forGrad: boolean) => readonly [readonly HostTensor[], P];
  readonly build: (p: P, ...xs: Tensor[]) => Tensor;
  readonly reference: (p: P, ...xs: HostTensor[]) => HostTensor;
  readonly differentiable: readonly number[];
  readonly domain: string;
  readonly noVjp?: string;
}

// Cases are drawn imperatively through fc.gen(), whose shrinker makes no progress on them (it loops),
// so they are not shrunk: a failure reports its first counterexample, printed in full, and the seed.
function spec<P>(name: Prim, def: SpecDef<P>): PrimSpec {
  const cases = (forGrad: boolean) =>
    fc.noShrink(fc.gen()).map((g): PrimCase => {
      const [inputs, params] = def.gen(new Draw(g), forGrad);
      const shown = inputs.map((x) => `${x.dtype}[${x.shape}] ${JSON.stringify(x.data)}`).join(", ");
      return {
        inputs,
        params,
        build: (...xs) => def.build(params, ...xs),
        reference: () => def.reference(params, ...inputs),
        [fc.toStringMethod]: () => `${name} ${JSON.stringify(params) ?? ""} of ${shown}`,
      } as PrimCase;
    });
  return {
    name,
    cases: cases(false),
    gradCases: cases(true),
    differentiable: def.differentiable,
    domain: def.domain,
    noVjp: def.noVjp,
  };
}

type Unary = "neg" | "exp" | "log" | "sqrt" | "sin" | "cos" | "tanh";

function unary(
  name: Unary,
  f: (v: number) => number,
  values: { readonly value: fc.Arbitrary<number>; readonly grad?: fc.Arbitrary<number> },
  opts: { readonly ints?: boolean; readonly domain?: string } = {},
): PrimSpec {
  return spec<null>(name, {
    gen(d, forGrad) {
      const dtype: DType = opts.ints && !forGrad && d.bool() ? "i32" : "f32";
      const value = dtype === "i32" ? integer(-20, 20) : forGrad ? values.grad ?? values.value : values.value;
      return [[d.host(d.shape(0, 3, !forGrad), dtype, value)], null];
    },
    build: (_p, x) => x[name](),
    reference: (_p, x) => ({ ...x, data: x.data.map(f) }),
    differentiable: [0],
    domain: opts.domain ?? "any finite f32",
  });
}

type Binary = "add" | "sub" | "mul" | "div" | "maximum" | "pow" | "lt" | "eq";

interface BinaryDef {
  readonly dtypes: readonly DType[];
  /** Element values of the left (side 0) or right (side 1) operand. */
  readonly values: (dtype: DType, side: number, forGrad: boolean) => fc.Arbitrary<number>;
  readonly f: (x: number, y: number, dtype: DType) => number;
  readonly out?: DType;
  readonly differentiable?: readonly number[];
  readonly domain: string;
}

function binary(name: Binary, def: BinaryDef): PrimSpec {
  return spec<null>(name, {
    gen(d, forGrad) {
      const dtype = forGrad ? "f32" : d.pick(def.dtypes);
      const out = d.shape(0, 3, !forGrad);
      return [[0, 1].map((side) => d.host(d.broadcastable(out), dtype, def.values(dtype, side, forGrad))), null];
    },
    build: (_p, x, y) => x[name](y),
    reference: (_p, x, y) => elementwise([x, y], def.out ?? x.dtype, (a, b) => def.f(a, b, x.dtype)),
    differentiable: def.differentiable ?? [0, 1],
    domain: def.domain,
  });
}

/** Options of sum, max and logsumexp as the tests write them: undefined (all axes), one axis, or a list. */
interface ReduceParams {
  readonly axis?: number | readonly number[];
  readonly keepdims: boolean;
}

function drawReduce(d: Draw, shape: Shape, reducible: (dim: number) => boolean): ReduceParams {
  const rank = shape.length, keepdims = d.bool(), mode = d.int(0, 3);
  if (mode === 0 && shape.every(reducible)) return { keepdims };
  const candidates = range(rank).filter((a) => reducible(shape[a]));
  if (mode === 1 && candidates.length > 0) {
    const a = d.pick(candidates);
    return { axis: d.bool() ? a - rank : a, keepdims };
  }
  const axes = d.shuffle(candidates).slice(0, d.int(0, candidates.length));
  return { axis: axes.map((a) => (d.bool() ? a - rank : a)), keepdims };
}

/** Reduces the groups of elements that land on each output position (a group may be empty). */
function reduceRef(x: HostTensor, p: ReduceParams, f: (group: number[]) => number): HostTensor {
  const rank = x.shape.length;
  const list = p.axis === undefined ? range(rank) : typeof p.axis === "number" ? [p.axis] : p.axis;
  const axes = list.map((a) => norm(a, rank));
  const shape = p.keepdims
    ? x.shape.map((d, a) => (axes.includes(a) ? 1 : d))
    : x.shape.filter((_, a) => !axes.includes(a));
  const groups = Array.from({ length: sizeOf(shape) }, () => [] as number[]);
  x.data.forEach((v, i) => {
    const idx = unravel(i, x.shape);
    const o = p.keepdims ? idx.map((k, a) => (axes.includes(a) ? 0 : k)) : idx.filter((_, a) => !axes.includes(a));
    groups[ravel(o, shape)].push(v);
  });
  return { shape, dtype: x.dtype, data: groups.map(f) };
}

const maxOf = (vs: readonly number[]) => vs.reduce((acc, v) => (v > acc ? v : acc), -Infinity);
/** log(sum(exp(v))), shifted by the maximum so that nothing overflows; -Infinity for no values. */
const logSumExp = (vs: readonly number[]) => {
  const m = maxOf(vs);
  return vs.length === 0 ? -Infinity : m + Math.log(vs.reduce((acc, v) => acc + Math.exp(v - m), 0));
};

// ---- The table -------------------------------------------------------------------------------------

/** One spec per primitive of core/prim.ts. */
export const PRIM_SPECS: SpecTable = {
  neg: unary("neg", (v) => -v, { value: real(-4, 4) }, { ints: true }),
  exp: unary("exp", Math.exp, { value: real(-8, 8) }, { domain: "[-8, 8]: no overflow" }),
  log: unary("log", Math.log, { value: real(1e-3, 100), grad: real(0.1, 10) }, {
    domain: "positive: [1e-3, 100]; [0.1, 10] for finite differences (the third derivative is 2/x^3)",
  }),
  sqrt: unary("sqrt", Math.sqrt, { value: real(0, 100), grad: real(0.1, 10) }, {
    domain: "non-negative: [0, 100]; [0.1, 10] for finite differences (no derivative at 0)",
  }),
  sin: unary("sin", Math.sin, { value: real(-10, 10) }),
  cos: unary("cos", Math.cos, { value: real(-10, 10) }),
  tanh: unary("tanh", Math.tanh, { value: real(-6, 6) }),

  add: binary("add", { dtypes: ["f32", "i32"], values: anyValue, f: (x, y) => x + y, domain: "f32 or small i32" }),
  sub: binary("sub", { dtypes: ["f32", "i32"], values: anyValue, f: (x, y) => x - y, domain: "f32 or small i32" }),
  mul: binary("mul", { dtypes: ["f32", "i32"], values: anyValue, f: (x, y) => x * y, domain: "f32 or small i32" }),
  div: binary("div", {
    dtypes: ["f32", "i32"],
    values: (dtype, side, forGrad) =>
      side === 0 ? anyValue(dtype) : dtype === "i32" ? apart(1, 20, true) : forGrad ? apart(0.5, 4) : apart(0.1, 8),
    // i32 division truncates toward zero.
    f: (x, y, dtype) => (dtype === "i32" ? Math.trunc(x / y) : x / y),
    domain: "divisor away from zero: |y| in [0.1, 8] ([0.5, 4] for finite differences), i32 |y| in [1, 20]",
  }),
  maximum: binary("maximum", {
    dtypes: ["f32", "i32"],
    // For finite differences the left operand sits on multiples of 0.5 and the right one between them,
    // so the operands differ by at least 0.15 and no step crosses the kink.
    values: (dtype, side, forGrad) =>
      !forGrad
        ? tying(dtype)
        : fc.tuple(integer(-6, 6), real(-0.05, 0.05)).map(([k, j]) => Math.fround(k * 0.5 + side * 0.25 + j)),
    f: (x, y) => (x > y ? x : y),
    domain: "ties in value checks; operands at least 0.15 apart for finite differences",
  }),
  pow: binary("pow", {
    dtypes: ["f32"],
    values: (_dtype, side, forGrad) => (side === 0 ? (forGrad ? real(0.5, 3) : real(0.1, 4)) : real(-3, 3)),
    f: (x, y) => Math.exp(y * Math.log(x)),
    domain: "positive base in [0.1, 4] ([0.5, 3] for finite differences), exponent in [-3, 3]",
  }),
  lt: binary("lt", {
    dtypes: ["f32", "i32"],
    values: tying,
    f: (x, y) => (x < y ? 1 : 0),
    out: "bool",
    differentiable: [],
    domain: "values that often tie",
  }),
  eq: binary("eq", {
    dtypes: ["f32", "i32", "bool"],
    values: tying,
    f: (x, y) => (x === y ? 1 : 0),
    out: "bool",
    differentiable: [],
    domain: "values that often tie",
  }),

  where: spec<null>("where", {
    gen(d, forGrad) {
      const dtype = forGrad ? "f32" : d.pick(["f32", "i32"] as const);
      const out = d.shape(0, 3, !forGrad);
      const [c, a, b] = [0, 1, 2].map(() => d.broadcastable(out));
      return [[d.host(c, "bool", bits), d.host(a, dtype, anyValue(dtype)), d.host(b, dtype, anyValue(dtype))], null];
    },
    build: (_p, c, a, b) => c.where(a, b),
    reference: (_p, c, a, b) => elementwise([c, a, b], a.dtype, (k, u, v) => (k !== 0 ? u : v)),
    differentiable: [1, 2],
    domain: "bool condition; f32 or i32 branches; all three broadcast",
  }),
  cast: spec<{ readonly to: DType }>("cast", {
    gen(d, forGrad) {
      const from = forGrad ? "f32" : d.pick(DTYPES);
      const to = d.pick(DTYPES.filter((t) => t !== from));
      const fractions = fc.constantFrom(0, -0, 0.5, -0.5, 2.75, -2.75);
      const value = from === "f32" ? fc.oneof(real(-50, 50), fractions) : from === "i32" ? integer(-50, 50) : bits;
      return [[d.host(d.shape(0, 3, !forGrad), from, value)], { to }];
    },
    build: ({ to }, x) => x.cast(to),
    // f32 -> i32 truncates toward zero; to bool, nonzero is true; the rest keep the value.
    reference: ({ to }, x) => ({
      shape: x.shape,
      dtype: to,
      data: x.data.map((v) => (to === "bool" ? (v !== 0 ? 1 : 0) : to === "i32" ? Math.trunc(v) : v)),
    }),
    differentiable: [],
    domain: "f32 values within the i32 range, with fractions and zeros",
  }),
  stopGradient: spec<null>("stopGradient", {
    gen(d, forGrad) {
      const dtype = forGrad ? "f32" : d.pick(DTYPES);
      return [[d.host(d.shape(0, 3, !forGrad), dtype, anyValue(dtype))], null];
    },
    build: (_p, x) => ops.stopGradient(x),
    reference: (_p, x) => x,
    differentiable: [],
    domain: "any",
  }),

  sum: spec<ReduceParams>("sum", {
    gen(d, forGrad) {
      const dtype = forGrad ? "f32" : d.pick(["f32", "i32"] as const);
      const shape = d.shape(0, 3, !forGrad);
      return [[d.host(shape, dtype, anyValue(dtype))], drawReduce(d, shape, () => true)];
    },
    build: (p, x) => x.sum(p),
    reference: (p, x) => reduceRef(x, p, (vs) => vs.reduce((acc, v) => acc + v, 0)),
    differentiable: [0],
    domain: "f32 or i32; reductions over size-0 axes and over no axes included",
  }),
  max: spec<ReduceParams>("max", {
    gen(d, forGrad) {
      const dtype = forGrad ? "f32" : d.pick(["f32", "i32"] as const);
      const shape = d.shape(0, 3, !forGrad);
      const x = forGrad ? d.distinct(shape) : d.host(shape, dtype, tying(dtype));
      return [[x], drawReduce(d, shape, (dim) => dim > 0)];
    },
    build: (p, x) => x.max(p),
    reference: (p, x) => reduceRef(x, p, maxOf),
    differentiable: [0],
    domain: "reduced axes non-empty (max has no identity); distinct values for finite differences",
  }),
  reshape: spec<{ readonly shape: readonly number[] }>("reshape", {
    gen(d, forGrad) {
      const from = d.shape(0, 3, !forGrad);
      const dims = d.shuffle(from);
      if (dims.length >= 2 && d.bool()) dims.splice(0, 2, dims[0] * dims[1]);
      if (d.bool()) dims.splice(d.int(0, dims.length), 0, 1);
      if (dims.length > 0 && sizeOf(from) > 0 && d.bool()) dims[d.int(0, dims.length - 1)] = -1;
      const dtype = forGrad ? "f32" : d.pick(DTYPES);
      return [[d.host(from, dtype, anyValue(dtype))], { shape: dims }];
    },
    build: (p, x) => x.reshape(p.shape),
    reference: (p, x) => {
      const known = sizeOf(p.shape.filter((v) => v !== -1));
      return { ...x, shape: p.shape.map((v) => (v === -1 ? sizeOf(x.shape) / known : v)) };
    },
    differentiable: [0],
    domain: "same element count; one axis may be -1",
  }),
  permute: spec<{ readonly perm: readonly number[] }>("permute", {
    gen(d, forGrad) {
      const shape = d.shape(0, 4, !forGrad), rank = shape.length;
      const perm = d.shuffle(range(rank)).map((a) => (d.bool() ? a - rank : a));
      const dtype = forGrad ? "f32" : d.pick(DTYPES);
      return [[d.host(shape, dtype, anyValue(dtype))], { perm }];
    },
    build: (p, x) => x.permute(p.perm),
    reference: (p, x) => {
      const perm = p.perm.map((a) => norm(a, x.shape.length));
      return tabulate(perm.map((a) => x.shape[a]), x.dtype, (idx) => {
        const src = new Array<number>(perm.length);
        perm.forEach((a, i) => (src[a] = idx[i]));
        return at(x, src);
      });
    },
    differentiable: [0],
    domain: "ranks 0 to 4, axes sometimes negative",
  }),
  broadcast: spec<{ readonly shape: readonly number[] }>("broadcast", {
    gen(d, forGrad) {
      const shape = d.shape(0, 3, !forGrad);
      const dtype = forGrad ? "f32" : d.pick(DTYPES);
      return [[d.host(d.broadcastable(shape), dtype, anyValue(dtype))], { shape }];
    },
    build: (p, x) => x.broadcastTo(p.shape),
    reference: (p, x) => tabulate(p.shape, x.dtype, (idx) => atBroadcast(x, idx)),
    differentiable: [0],
    domain: "input shapes that broadcast to the target (leading axes missing, size-1 axes)",
  }),
  slice: spec<{ readonly starts: readonly number[]; readonly ends?: readonly number[] }>("slice", {
    gen(d, forGrad) {
      const shape = d.shape(1, 3, !forGrad), starts: number[] = [], ends: number[] = [];
      for (const dim of shape) {
        const s = d.int(0, dim), e = d.int(s, dim);
        starts.push(s < dim && d.bool() ? s - dim : s); // negative indices count from the end
        ends.push(e < dim && d.bool() ? e - dim : e);
      }
      const dtype = forGrad ? "f32" : d.pick(DTYPES);
      return [[d.host(shape, dtype, anyValue(dtype))], d.int(0, 3) === 0 ? { starts } : { starts, ends }];
    },
    build: (p, x) => x.slice(p.starts, p.ends),
    reference: (p, x) => {
      const s = x.shape.map((dim, a) => norm(p.starts[a], dim));
      const e = x.shape.map((dim, a) => (p.ends === undefined ? dim : norm(p.ends[a], dim)));
      return tabulate(e.map((v, a) => v - s[a]), x.dtype, (idx) => at(x, idx.map((v, a) => v + s[a])));
    },
    differentiable: [0],
    domain: "in-range bounds, sometimes negative, ends sometimes omitted",
  }),
  pad: spec<{ readonly widths: readonly (readonly [number, number])[] }>("pad", {
    gen(d, forGrad) {
      const shape = d.shape(0, 3, !forGrad);
      const widths = shape.map(() => [d.int(0, 2), d.int(0, 2)] as const).slice(0, d.int(0, shape.length));
      const dtype = forGrad ? "f32" : d.pick(DTYPES);
      return [[d.host(shape, dtype, anyValue(dtype))], { widths }];
    },
    build: (p, x) => x.pad(p.widths),
    reference: (p, x) => {
      const lo = x.shape.map((_, a) => p.widths[a]?.[0] ?? 0), hi = x.shape.map((_, a) => p.widths[a]?.[1] ?? 0);
      return tabulate(x.shape.map((dim, a) => lo[a] + dim + hi[a]), x.dtype, (idx) => {
        const src = idx.map((v, a) => v - lo[a]);
        return src.every((v, a) => v >= 0 && v < x.shape[a]) ? at(x, src) : 0;
      });
    },
    differentiable: [0],
    domain: "widths 0 to 2 per side; trailing axes sometimes unlisted",
  }),
  concat: spec<{ readonly axis: number }>("concat", {
    gen(d, forGrad) {
      const base = d.shape(1, 3, !forGrad), [a, written] = d.axis(base.length);
      const dtype = forGrad ? "f32" : d.pick(DTYPES);
      const parts = [0, 1, 2].map(() => {
        const shape = base.map((dim, i) => (i === a ? d.pick(forGrad ? DIMS : [0, ...DIMS]) : dim));
        return d.host(shape, dtype, anyValue(dtype));
      });
      return [parts, { axis: written }];
    },
    build: (p, ...xs) => ops.concat(xs, { axis: p.axis }),
    reference: (p, ...xs) => {
      const a = norm(p.axis, xs[0].shape.length);
      const shape = xs[0].shape.map((dim, i) => (i === a ? xs.reduce((acc, x) => acc + x.shape[a], 0) : dim));
      return tabulate(shape, xs[0].dtype, (idx) => {
        let k = idx[a];
        for (const x of xs) {
          if (k < x.shape[a]) return at(x, idx.map((v, i) => (i === a ? k : v)));
          k -= x.shape[a];
        }
        throw new Error("concat reference: index out of range");
      });
    },
    differentiable: [0, 1, 2],
    domain: "three parts, sizes along the axis 0 to 7",
  }),
  matmul: spec<null>("matmul", {
    gen(d, forGrad) {
      const m = d.pick(DIMS), k = d.pick(forGrad ? DIMS : [0, ...DIMS]), n = d.pick(DIMS);
      const batch = Array.from({ length: d.int(0, 2) }, () => d.pick([1, 2, 3]));
      const a = d.int(0, 4) === 0 ? [k] : [...d.broadcastable(batch), m, k]; // 1-D operands are vectors
      const b = d.int(0, 4) === 0 ? [k] : [...d.broadcastable(batch), k, n];
      return [[d.host(a, "f32", real(-2, 2)), d.host(b, "f32", real(-2, 2))], null];
    },
    build: (_p, a, b) => a.matmul(b),
    reference: (_p, a, b) => {
      const a2 = { ...a, shape: a.shape.length === 1 ? [1, a.shape[0]] : a.shape };
      const b2 = { ...b, shape: b.shape.length === 1 ? [b.shape[0], 1] : b.shape };
      const [M, K] = a2.shape.slice(-2), N = b2.shape[b2.shape.length - 1];
      const batch = broadcastShape([a2.shape.slice(0, -2), b2.shape.slice(0, -2)]);
      const out = tabulate([...batch, M, N], "f32", (idx) => {
        const bi = idx.slice(0, -2), [i, j] = idx.slice(-2);
        let s = 0;
        for (let kk = 0; kk < K; kk++) s += atBroadcast(a2, [...bi, i, kk]) * atBroadcast(b2, [...bi, kk, j]);
        return s;
      });
      const shape = [...batch, ...(a.shape.length === 1 ? [] : [M]), ...(b.shape.length === 1 ? [] : [N])];
      return { ...out, shape };
    },
    differentiable: [0, 1],
    domain: "f32 in [-2, 2]; batch axes broadcast; 1-D operands; contraction size 0 in value checks",
  }),
  gather: spec<{ readonly axis: number }>("gather", {
    gen(d, forGrad) {
      const shape = d.shape(1, 3, !forGrad), [a, written] = d.axis(shape.length);
      shape[a] = d.pick(DIMS);
      const dtype = forGrad ? "f32" : d.pick(DTYPES);
      const idx = d.host(d.shape(0, 2, !forGrad), "i32", integer(0, shape[a] - 1));
      return [[d.host(shape, dtype, anyValue(dtype)), idx], { axis: written }];
    },
    build: (p, x, idx) => x.gather(idx, p.axis),
    reference: (p, x, idx) => {
      const a = norm(p.axis, x.shape.length), k = idx.shape.length;
      const shape = [...x.shape.slice(0, a), ...idx.shape, ...x.shape.slice(a + 1)];
      return tabulate(shape, x.dtype, (o) => at(x, [...o.slice(0, a), at(idx, o.slice(a, a + k)), ...o.slice(a + k)]));
    },
    differentiable: [0],
    domain: "in-range i32 indices of rank 0 to 2, repeats allowed",
  }),
  scatterAdd: spec<{ readonly axis: number; readonly size: number }>("scatterAdd", {
    gen(d, forGrad) {
      const pre = d.shape(0, 2, !forGrad), idxShape = d.shape(0, 2, !forGrad), post = d.shape(0, 1, !forGrad);
      const size = d.pick(DIMS), dtype = forGrad ? "f32" : d.pick(["f32", "i32"] as const);
      const g = d.host([...pre, ...idxShape, ...post], dtype, anyValue(dtype));
      return [[g, d.host(idxShape, "i32", integer(0, size - 1))], { axis: pre.length, size }];
    },
    build: (p, g, idx) => apply("scatterAdd", [g, idx], p),
    reference: (p, g, idx) => {
      const k = idx.shape.length;
      const shape = [...g.shape.slice(0, p.axis), p.size, ...g.shape.slice(p.axis + k)];
      const data = new Array<number>(sizeOf(shape)).fill(0);
      g.data.forEach((v, i) => {
        const gi = unravel(i, g.shape);
        const o = [...gi.slice(0, p.axis), at(idx, gi.slice(p.axis, p.axis + k)), ...gi.slice(p.axis + k)];
        data[ravel(o, shape)] += v;
      });
      return { shape, dtype: g.dtype, data };
    },
    differentiable: [0],
    domain: "in-range i32 indices of rank 0 to 2, repeats accumulate",
  }),
  cumsum: spec<{ readonly axis: number; readonly reverse: boolean }>("cumsum", {
    gen(d, forGrad) {
      const shape = d.shape(1, 3, !forGrad), [, written] = d.axis(shape.length);
      const dtype = forGrad ? "f32" : d.pick(["f32", "i32"] as const);
      return [[d.host(shape, dtype, anyValue(dtype))], { axis: written, reverse: d.bool() }];
    },
    build: (p, x) => x.cumsum(p.axis, { reverse: p.reverse }),
    reference: (p, x) => {
      const a = norm(p.axis, x.shape.length), n = x.shape[a];
      return tabulate(x.shape, x.dtype, (idx) => {
        let s = 0;
        const [from, to] = p.reverse ? [idx[a], n - 1] : [0, idx[a]];
        for (let t = from; t <= to; t++) s += at(x, idx.map((v, i) => (i === a ? t : v)));
        return s;
      });
    },
    differentiable: [0],
    domain: "f32 or i32, forward and reverse, axes sometimes negative",
  }),
  iota: spec<{ readonly shape: readonly number[]; readonly axis: number; readonly dtype: DType }>("iota", {
    gen(d, forGrad) {
      const shape = d.shape(1, 3, !forGrad), [axis] = d.axis(shape.length);
      return [[], { shape, axis, dtype: d.pick(["f32", "i32"] as const) }];
    },
    // Only arange reaches iota publicly, and only in 1-D.
    build: (p) => apply("iota", [], p),
    reference: (p) => tabulate(p.shape, p.dtype, (idx) => idx[p.axis]),
    differentiable: [],
    domain: "no inputs",
  }),
  logsumexp: spec<ReduceParams>("logsumexp", {
    gen(d, forGrad) {
      const shape = d.shape(1, 3, !forGrad);
      const p = d.bool() ? { axis: -1, keepdims: d.bool() } : drawReduce(d, shape, () => true);
      return [[d.host(shape, "f32", forGrad ? real(-5, 5) : real(-60, 60))], p];
    },
    // ops.logsumexp moves the reduced axes last and folds them into one for the primitive.
    build: (p, x) => ops.logsumexp(x, p),
    reference: (p, x) => reduceRef(x, p, logSumExp),
    differentiable: [0],
    domain: "f32 in [-60, 60] (exp would overflow float32 unshifted); empty axes give -Infinity",
  }),
  softmax: spec<{ readonly axis?: number }>("softmax", {
    gen(d, forGrad) {
      const shape = d.shape(1, 3, !forGrad), [, written] = d.axis(shape.length);
      return [[d.host(shape, "f32", forGrad ? real(-5, 5) : real(-60, 60))], d.bool() ? {} : { axis: written }];
    },
    // ops.softmax permutes a non-last axis to the end for the primitive and back.
    build: (p, x) => ops.softmax(x, p),
    reference: (p, x) => {
      const a = norm(p.axis ?? -1, x.shape.length);
      return tabulate(x.shape, "f32", (idx) => {
        const row = range(x.shape[a]).map((t) => at(x, idx.map((v, i) => (i === a ? t : v))));
        return Math.exp(at(x, idx) - logSumExp(row));
      });
    },
    differentiable: [0],
    domain: "f32 in [-60, 60], last or other axis",
  }),
  deltaScan: spec<null>("deltaScan", {
    gen(d) {
      const [B, H, T, K, V] = [d.int(1, 2), d.int(1, 2), d.pick([1, 2, 3, 5]), d.int(1, 3), d.int(1, 3)];
      return [scanInputs(d, B, H, T, K, V), null];
    },
    build: (_p, ...xs) => apply("deltaScan", xs, {}),
    reference: (_p, k, v, g, beta, s0) => scanStates(k, v, g, beta, s0),
    differentiable: [0, 1, 2, 3, 4],
    domain: "keys and states in [-1, 1], values in [-2, 2], g in [-1, 0] (decay), beta in [0.05, 1]",
  }),
  deltaScanGrad: spec<null>("deltaScanGrad", {
    gen(d) {
      const [B, H, T, K, V] = [d.int(1, 2), d.int(1, 2), d.pick([1, 2, 3, 5]), d.int(1, 3), d.int(1, 3)];
      const [k, v, g, beta, s0] = scanInputs(d, B, H, T, K, V);
      const dS = d.host([B, H, T, K, V], "f32", real(-1, 1));
      // Tensors hold float32: the reference must see the states as rounded.
      const S = scanStates(k, v, g, beta, s0);
      return [[dS, k, v, g, beta, s0, { ...S, data: S.data.map(Math.fround) }], null];
    },
    build: (_p, ...xs) => apply("deltaScanGrad", xs, {}),
    reference: (_p, dS, k, v, g, beta, s0, S) => scanGrad(dS, k, v, g, beta, s0, S),
    differentiable: [],
    noVjp: "second derivatives through the fused delta-rule scan are not supported",
    domain: "as deltaScan, with the true states and a random state cotangent",
  }),
};

/** The primitives, in table order. */
export const PRIM_NAMES = Object.keys(PRIM_SPECS) as Prim[];

/** A tensor holding a host tensor's values. */
export function toTensor(x: HostTensor): Tensor {
  return tensor(x.data, { shape: x.shape, dtype: x.dtype });
}
