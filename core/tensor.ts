// The Tensor: an immutable value, as a thin handle on a graph node, with the method forms of the
// primitives. Building never computes; reading asks the active backend.

import { constantNode, Node } from "./graph.ts";
import type { CpuArray, Prim, PrimParams } from "./prim.ts";
import { PRIMS } from "./prims/mod.ts";
import {
  broadcastShapes,
  checkShape,
  type DType,
  fmt,
  type HostArray,
  normAxes,
  normAxis,
  sameShape,
  type Shape,
  sizeOf,
} from "./shape.ts";
import { hostValue, releaseLeaf } from "./storage.ts";
import { realizeMany } from "./backend.ts";

/** Options of the reductions `sum`, `max`, `min` and `mean`. */
export interface ReduceOptions {
  /** Axis or axes to reduce; all axes when omitted. Negative axes count from the end. */
  readonly axis?: number | readonly number[];
  /** Keep reduced axes as size 1. */
  readonly keepdims?: boolean;
}

let nextId = 0;

/**
 * An immutable n-dimensional array. Operations build a lazy graph; reading (`data`, `item`,
 * `array`) realizes it on the current backend.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tensor } from "../mod.ts";
 * const x = tensor([[1, 2], [3, 4]]);
 * assert.deepEqual([x.shape, x.ndim, x.size], [[2, 2], 2, 4]);
 * assert.equal(await x.mul(2).sum().item(), 20); // numbers act as scalars
 * assert.deepEqual(await x.add(tensor([10, 20])).array(), [[11, 22], [13, 24]]); // NumPy broadcasting
 * assert.deepEqual(await x.max({ axis: 1 }).array(), [2, 4]);
 * assert.deepEqual(await x.matmul(x).array(), [[7, 10], [15, 22]]);
 * assert.deepEqual(await x.gt(2).where(x, 0).array(), [[0, 0], [3, 4]]);
 * ```
 */
export class Tensor {
  /** The size of each axis. */
  readonly shape: Shape;
  /** The element type. */
  readonly dtype: DType;
  /** Unique, increasing identity (creation order). */
  readonly id: number;
  // The node this tensor stands for. Realizing moves it from the pending node to the data leaf that
  // holds the same value, so the history behind it can be collected; null after `dispose`.
  #node: Node | null;

  /** @internal Use `tensor()`, `zeros()` and the ops instead. */
  constructor(node: Node) {
    this.shape = Object.freeze([...node.shape]);
    this.dtype = node.dtype;
    this.id = nextId++;
    this.#node = node;
  }

  /** @internal A tensor holding host values (copied by no one: the caller hands them over). */
  static fromHost(data: CpuArray, shape: Shape, dtype: DType): Tensor {
    return new Tensor(constantNode(data, shape, dtype));
  }

  /** @internal The graph node this tensor stands for; throws once disposed. */
  get node(): Node {
    if (this.#node === null) throw new Error(`tensor of shape ${fmt(this.shape)} was disposed`);
    return this.#node;
  }

  /** @internal Moves the handle to the leaf that now holds its value (backends call this). */
  _become(leaf: Node): void {
    if (this.#node !== null) this.#node = leaf;
  }

  /** True once `dispose` was called. */
  get disposed(): boolean {
    return this.#node === null;
  }

  /** Number of axes. */
  get ndim(): number {
    return this.shape.length;
  }

  /** Number of elements. */
  get size(): number {
    return sizeOf(this.shape);
  }

  /**
   * Realizes the tensor and returns a copy of its elements in row-major order (f32 as a
   * Float32Array, or a Float64Array on the CPU backend in float64 precision).
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { tensor } from "../mod.ts";
   * assert.deepEqual(await tensor([[1, 2], [3, 4]], { dtype: "i32" }).data(), Int32Array.of(1, 2, 3, 4));
   * ```
   */
  async data(): Promise<HostArray> {
    return (await realizeMany([this]))[0];
  }

  /** Realizes a tensor with one element and returns it as a number. */
  async item(): Promise<number> {
    if (this.size !== 1) throw new Error(`item: tensor of shape ${fmt(this.shape)} has ${this.size} elements, not 1`);
    return (await this.data())[0];
  }

  /** Realizes the tensor and returns nested arrays (a number for a scalar). */
  async array(): Promise<NestedArray> {
    const flat = Array.from(await this.data());
    const build = (axis: number, offset: number): NestedArray => {
      if (axis === this.ndim) return flat[offset];
      const inner = sizeOf(this.shape.slice(axis + 1));
      return Array.from({ length: this.shape[axis] }, (_, i) => build(axis + 1, offset + i * inner));
    };
    return build(0, 0);
  }

  /**
   * Releases the tensor's storage; using it afterwards is an error, and so is realizing anything
   * built from it that still needs its value.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { tensor } from "../mod.ts";
   * const x = tensor([1, 2]);
   * x.dispose();
   * assert.ok(x.disposed);
   * assert.throws(() => x.add(1), /disposed/);
   * ```
   */
  dispose(): void {
    const n = this.#node;
    this.#node = null;
    if (n !== null && n.op === "data") releaseLeaf(n);
  }

  // Elementwise (numbers are promoted to scalars of this tensor's dtype; shapes broadcast).
  /** `-x` */
  neg(): Tensor {
    return apply("neg", [this], {});
  }
  /** `e^x` */
  exp(): Tensor {
    return apply("exp", [this], {});
  }
  /** Natural logarithm. */
  log(): Tensor {
    return apply("log", [this], {});
  }
  /** Square root. */
  sqrt(): Tensor {
    return apply("sqrt", [this], {});
  }
  /** Sine. */
  sin(): Tensor {
    return apply("sin", [this], {});
  }
  /** Cosine. */
  cos(): Tensor {
    return apply("cos", [this], {});
  }
  /** Hyperbolic tangent. */
  tanh(): Tensor {
    return apply("tanh", [this], {});
  }
  /** `x * x` */
  square(): Tensor {
    return this.mul(this);
  }
  /** `x + y` with broadcasting. */
  add(y: Tensor | number): Tensor {
    return binary("add", this, y);
  }
  /** `x - y` with broadcasting. */
  sub(y: Tensor | number): Tensor {
    return binary("sub", this, y);
  }
  /** `x * y` with broadcasting. */
  mul(y: Tensor | number): Tensor {
    return binary("mul", this, y);
  }
  /** `x / y` with broadcasting (i32 division truncates toward zero). */
  div(y: Tensor | number): Tensor {
    return binary("div", this, y);
  }
  /** Elementwise maximum with broadcasting. */
  maximum(y: Tensor | number): Tensor {
    return binary("maximum", this, y);
  }
  /** Elementwise minimum with broadcasting. */
  minimum(y: Tensor | number): Tensor {
    return binary("maximum", this.neg(), negate(y)).neg();
  }
  /** `x ** y` with broadcasting (f32). */
  pow(y: Tensor | number): Tensor {
    return binary("pow", this, y);
  }
  /** `x < y` as a bool tensor. */
  lt(y: Tensor | number): Tensor {
    return binary("lt", this, y);
  }
  /** `x > y` as a bool tensor. */
  gt(y: Tensor | number): Tensor {
    return binary("lt", scalarLike(y, this), this);
  }
  /** `x <= y` as a bool tensor (false when either is NaN). */
  le(y: Tensor | number): Tensor {
    return this.lt(y).where(true, this.eq(y));
  }
  /** `x >= y` as a bool tensor (false when either is NaN). */
  ge(y: Tensor | number): Tensor {
    return this.gt(y).where(true, this.eq(y));
  }
  /** `x == y` as a bool tensor. */
  eq(y: Tensor | number): Tensor {
    return binary("eq", this, y);
  }
  /** `x != y` as a bool tensor. */
  ne(y: Tensor | number): Tensor {
    return this.eq(y).logicalNot();
  }
  /** Logical not of a bool tensor. */
  logicalNot(): Tensor {
    if (this.dtype !== "bool") throw new Error(`logicalNot: expected a bool tensor, got ${this.dtype}`);
    return binary("eq", this, false);
  }
  /** Picks `a` where this bool tensor is true and `b` elsewhere, with broadcasting. */
  where(a: Tensor | number | boolean, b: Tensor | number | boolean): Tensor {
    const ref = a instanceof Tensor ? a : b instanceof Tensor ? b : undefined;
    const ta = scalarLike(a, ref), tb = scalarLike(b, ref);
    const shape = broadcastShapes("where", broadcastShapes("where", this.shape, ta.shape), tb.shape);
    return apply("where", [this.broadcastTo(shape), ta.broadcastTo(shape), tb.broadcastTo(shape)], {});
  }
  /** Converts to another dtype (f32 to i32 truncates toward zero; nonzero is true). */
  cast(dtype: DType): Tensor {
    return dtype === this.dtype ? this : apply("cast", [this], { dtype });
  }

  // Reductions.
  /** Sum over axes. */
  sum(opts: ReduceOptions = {}): Tensor {
    return reduce("sum", this, opts);
  }
  /** Maximum over axes (the gradient is shared equally among ties). */
  max(opts: ReduceOptions = {}): Tensor {
    return reduce("max", this, opts);
  }
  /** Minimum over axes. */
  min(opts: ReduceOptions = {}): Tensor {
    return reduce("max", this.neg(), opts).neg();
  }
  /** Arithmetic mean over axes, as f32 (integer tensors are converted first). */
  mean(opts: ReduceOptions = {}): Tensor {
    const axes = normAxes("mean", opts.axis, this.ndim);
    const n = axes.reduce((acc, a) => acc * this.shape[a], 1);
    return this.cast("f32").sum(opts).div(n);
  }
  /**
   * Inclusive cumulative sum along an axis (`reverse` sums from the end).
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { tensor } from "../mod.ts";
   * assert.deepEqual(await tensor([1, 2, 3]).cumsum(0).array(), [1, 3, 6]);
   * assert.deepEqual(await tensor([1, 2, 3]).cumsum(0, { reverse: true }).array(), [6, 5, 3]);
   * ```
   */
  cumsum(axis: number, opts: { readonly reverse?: boolean } = {}): Tensor {
    return apply("cumsum", [this], { axis: normAxis("cumsum", axis, this.ndim), reverse: opts.reverse ?? false });
  }

  // Movement.
  /** Same elements, new shape; one axis may be -1 to infer its size. */
  reshape(shape: Shape): Tensor {
    const to = inferShape(shape, this);
    return sameShape(to, this.shape) ? this : apply("reshape", [this], { shape: to });
  }
  /** Reorders axes: output axis i is input axis `perm[i]`. */
  permute(perm: readonly number[]): Tensor {
    const p = perm.map((a) => normAxis("permute", a, this.ndim));
    // The identity (checked in full by the primitive otherwise: a repeated axis is an error).
    if (p.length === this.ndim && p.every((a, i) => a === i)) return this;
    return apply("permute", [this], { perm: p });
  }
  /** Swaps two axes (the last two by default). */
  transpose(a = -2, b = -1): Tensor {
    const perm = [...this.shape.keys()];
    const i = normAxis("transpose", a, this.ndim), j = normAxis("transpose", b, this.ndim);
    [perm[i], perm[j]] = [perm[j], perm[i]];
    return this.permute(perm);
  }
  /** Broadcasts to a larger shape by NumPy rules. */
  broadcastTo(shape: Shape): Tensor {
    checkShape("broadcastTo", shape);
    if (sameShape(shape, this.shape)) return this;
    return apply("broadcast", [this], { shape: [...shape] });
  }
  /** Adds a size-1 axis at `axis`. */
  expandDims(axis: number): Tensor {
    const a = normAxis("expandDims", axis, this.ndim + 1);
    return this.reshape([...this.shape.slice(0, a), 1, ...this.shape.slice(a)]);
  }
  /** Removes size-1 axes (all of them, or those listed). */
  squeeze(axis?: number | readonly number[]): Tensor {
    const axes = axis === undefined
      ? [...this.shape.keys()].filter((a) => this.shape[a] === 1)
      : normAxes("squeeze", axis, this.ndim);
    for (const a of axes) {
      if (this.shape[a] !== 1) {
        throw new Error(`squeeze: axis ${a} of shape ${fmt(this.shape)} has size ${this.shape[a]}, not 1`);
      }
    }
    return this.reshape(this.shape.filter((_, i) => !axes.includes(i)));
  }
  /**
   * Elements `starts[i] <= j < ends[i]` on each axis; missing axes are taken whole. Bounds follow
   * NumPy's slicing: negative ones count from the end, out-of-range ones are clipped to the axis,
   * and an end before its start gives an empty axis.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { tensor } from "../mod.ts";
   * const x = tensor([[1, 2, 3], [4, 5, 6]]);
   * assert.deepEqual(await x.slice([0, 1]).array(), [[2, 3], [5, 6]]);
   * assert.deepEqual(await x.slice([1, 0], [2, -1]).array(), [[4, 5]]);
   * ```
   */
  slice(starts: readonly number[], ends?: readonly number[]): Tensor {
    const s = this.shape.map((d, i) => clampIndex(starts[i] ?? 0, d));
    const e = this.shape.map((d, i) => Math.max(s[i], clampIndex(ends?.[i] ?? d, d)));
    return apply("slice", [this], { starts: s, ends: e });
  }
  /**
   * Pads with zeros: `widths[i] = [before, after]` for axis i (missing axes unpadded).
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { tensor } from "../mod.ts";
   * assert.deepEqual(await tensor([1, 2]).pad([[1, 2]]).array(), [0, 1, 2, 0, 0]);
   * ```
   */
  pad(widths: readonly (readonly [number, number])[]): Tensor {
    return apply("pad", [this], {
      lo: this.shape.map((_, i) => widths[i]?.[0] ?? 0),
      hi: this.shape.map((_, i) => widths[i]?.[1] ?? 0),
    });
  }
  /**
   * Matrix product over the last two axes; leading (batch) axes broadcast. A 1-D operand is a vector.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { tensor } from "../mod.ts";
   * const a = tensor([[[1, 0], [0, 1]], [[2, 0], [0, 2]]]); // a batch of two [2, 2] matrices
   * assert.deepEqual(await a.matmul(tensor([3, 4])).array(), [[3, 4], [6, 8]]);
   * ```
   */
  matmul(w: Tensor): Tensor {
    return matmul(this, w);
  }
  /**
   * Takes slices along `axis` at integer `indices`; the index shape replaces that axis. Indices
   * known when the graph is built (host data, such as token ids) must lie in `[0, size)`, or this
   * throws naming the first bad one; indices computed on a backend are clamped into range, on every
   * backend alike (a kernel cannot throw).
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { tensor } from "../mod.ts";
   * const table = tensor([[0, 0], [1, 1], [2, 2]]);
   * const rows = table.gather(tensor([[2, 0]], { dtype: "i32" })); // [1, 2] indices -> [1, 2, 2]
   * assert.deepEqual(await rows.array(), [[[2, 2], [0, 0]]]);
   * ```
   */
  gather(indices: Tensor, axis = 0): Tensor {
    const a = normAxis("gather", axis, this.ndim);
    const known = indices instanceof Tensor && indices.dtype === "i32" ? knownValues(indices) : null;
    if (known !== null) {
      checkIndices("gather", known, this.shape[a], `axis ${a} of size ${this.shape[a]} in ${fmt(this.shape)}`);
    }
    return apply("gather", [this, indices], { axis: a });
  }
}

/** Nested arrays of numbers, as returned by `Tensor.array()`. */
export type NestedArray = number | NestedArray[];

/** Builds a graph node: checks shapes and dtypes with the primitive's rule, computes nothing. */
export function apply<P extends Prim>(op: P, inputs: readonly Tensor[], params: PrimParams[P]): Tensor {
  const src = inputs.map((t) => {
    if (!(t instanceof Tensor)) throw new Error(`${op}: expected Tensor inputs, got ${describe(t)}`);
    if (t.disposed) throw new Error(`${op}: input tensor of shape ${fmt(t.shape)} was disposed`);
    return t.node;
  });
  const aval = PRIMS[op].shape(src, params);
  return new Tensor(new Node(op, aval.shape, aval.dtype, src, params));
}

/**
 * The values of a tensor given as host data (`tensor()`, `randint`, a loaded checkpoint), or null
 * for anything computed, on any backend: for checks made when a graph is built, which must not
 * depend on where earlier results happen to live.
 */
export function knownValues(t: Tensor): CpuArray | null {
  if (t.disposed || t.node.value === null) return null;
  return hostValue(t.node) ?? null;
}

/** Throws unless every index lies in `[0, size)`, naming the first that does not. */
export function checkIndices(op: string, values: ArrayLike<number>, size: number, where: string): void {
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!(v >= 0 && v < size)) throw new Error(`${op}: index ${v} is out of range for ${where}`);
  }
}

/** Describes a non-tensor value in error messages. */
export function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  return typeof v === "object" ? (v.constructor?.name ?? "an object") : `${typeof v} ${String(v)}`;
}

/** A scalar tensor with the given dtype (or the reference tensor's), or the tensor itself. */
export function scalarLike(v: Tensor | number | boolean, ref?: Tensor): Tensor {
  if (v instanceof Tensor) return v;
  if (typeof v !== "number" && typeof v !== "boolean") {
    throw new Error(`expected a Tensor or a number, got ${describe(v)}`);
  }
  const dtype: DType = ref?.dtype ?? (typeof v === "boolean" ? "bool" : "f32");
  // One tensor per constant: a graph uses a few distinct scalars many times (a decoded token's 166
  // scalar leaves were 11 values), and each leaf cost building, scheduling and planning work. A
  // cached tensor someone disposed is replaced.
  const key = Object.is(v, -0) ? "-0" : +v, cache = SCALARS[dtype];
  const hit = cache.get(key);
  if (hit !== undefined && !hit.disposed) return hit;
  // f32 constants keep their float64 value on the host, so the f64 CPU reference stays exact;
  // f32 computations round them on use.
  const data = dtype === "f32" ? Float64Array.of(+v) : dtype === "i32" ? Int32Array.of(+v) : Uint8Array.of(v ? 1 : 0);
  const t = Tensor.fromHost(data, [], dtype);
  if (cache.size >= SCALAR_CACHE) cache.delete(cache.keys().next().value!);
  cache.set(key, t);
  return t;
}

// Scalar constants by dtype and value (-0 apart from 0), the oldest dropped beyond the limit.
const SCALAR_CACHE = 256;
const SCALARS: Readonly<Record<DType, Map<number | string, Tensor>>> = {
  f32: new Map(),
  i32: new Map(),
  bool: new Map(),
};

function negate(y: Tensor | number): Tensor | number {
  return typeof y === "number" ? -y : y.neg();
}

function binary(
  op: "add" | "sub" | "mul" | "div" | "maximum" | "pow" | "lt" | "eq",
  x: Tensor,
  y: Tensor | number | boolean,
): Tensor {
  const ty = scalarLike(y, x);
  const shape = sameShape(x.shape, ty.shape) ? x.shape : broadcastShapes(op, x.shape, ty.shape);
  return apply(op, [x.broadcastTo(shape), ty.broadcastTo(shape)], {});
}

function reduce(op: "sum" | "max", x: Tensor, opts: ReduceOptions): Tensor {
  const axes = normAxes(op, opts.axis, x.ndim);
  const out = apply(op, [x], { axes });
  return opts.keepdims ? out.reshape(x.shape.map((d, i) => (axes.includes(i) ? 1 : d))) : out;
}

function matmul(a: Tensor, b: Tensor): Tensor {
  if (a.ndim === 0 || b.ndim === 0) {
    throw new Error(`matmul: operands must have at least one axis, got ${fmt(a.shape)} and ${fmt(b.shape)}`);
  }
  const a2 = a.ndim === 1 ? a.reshape([1, a.shape[0]]) : a;
  const b2 = b.ndim === 1 ? b.reshape([b.shape[0], 1]) : b;
  const [m, k] = a2.shape.slice(-2), [k2, n] = b2.shape.slice(-2);
  if (k !== k2) {
    throw new Error(`matmul: inner sizes differ: ${fmt(a.shape)} @ ${fmt(b.shape)} contracts ${k} with ${k2}`);
  }
  const [ba, bb] = [a2.shape.slice(0, -2), b2.shape.slice(0, -2)];
  // Equal batch axes need no broadcasting (nor the error message's text, built only when it fails).
  const batch = sameShape(ba, bb)
    ? ba
    : broadcastShapes(`matmul (batch axes of ${fmt(a.shape)} @ ${fmt(b.shape)})`, ba, bb);
  let out = apply("matmul", [a2.broadcastTo([...batch, m, k]), b2.broadcastTo([...batch, k, n])], {});
  if (a.ndim === 1) out = out.squeeze(-2);
  if (b.ndim === 1) out = out.squeeze(-1);
  return out;
}

function inferShape(shape: Shape, x: Tensor): number[] {
  const holes = shape.filter((d) => d === -1).length;
  const known = shape.reduce((acc, d) => (d === -1 ? acc : acc * d), 1);
  const out = shape.map((d) => (d === -1 ? (known === 0 ? 0 : x.size / known) : d));
  if (holes > 1 || out.some((d) => !Number.isInteger(d) || d < 0) || sizeOf(out) !== x.size) {
    throw new Error(`reshape: cannot reshape ${fmt(x.shape)} (${x.size} elements) to ${fmt(shape)}`);
  }
  return out;
}

function clampIndex(i: number, d: number): number {
  if (!Number.isInteger(i)) throw new Error(`slice: index ${i} is not an integer`);
  return Math.min(Math.max(i < 0 ? i + d : i, 0), d);
}
