// Creating tensors from host data: tensor(), zeros(), ones(), full().

import { allocHost, checkDType, checkShape, type DType, fmt, type HostArray, type Shape, sizeOf } from "./shape.ts";
import { describe, Tensor } from "./tensor.ts";

/** Nested arrays of numbers or booleans, as accepted by `tensor()`. */
export type NestedData = number | boolean | readonly NestedData[];

/** Options of `tensor()`. */
export interface TensorOptions {
  /** Shape to give the (flat) data; inferred from nesting when omitted. */
  readonly shape?: Shape;
  /** Element type; inferred from the data when omitted (numbers: f32, booleans: bool, Int32Array: i32). */
  readonly dtype?: DType;
}

function inferShape(data: NestedData, shape: number[] = []): number[] {
  if (Array.isArray(data)) {
    shape.push(data.length);
    if (data.length > 0) inferShape(data[0], shape);
  }
  return shape;
}

function flatten(data: NestedData, shape: readonly number[], out: (number | boolean)[], depth: number): void {
  if (depth === shape.length) {
    if (typeof data !== "number" && typeof data !== "boolean") {
      throw new Error(`tensor: ragged nested array: expected a number at depth ${depth}, got ${describe(data)}`);
    }
    out.push(data);
    return;
  }
  if (!Array.isArray(data) || data.length !== shape[depth]) {
    const got = Array.isArray(data) ? `length ${data.length}` : describe(data);
    throw new Error(`tensor: ragged nested array: expected length ${shape[depth]} at depth ${depth}, got ${got}`);
  }
  for (const x of data) flatten(x, shape, out, depth + 1);
}

/**
 * Creates a tensor from a number, a boolean, nested arrays or a typed array. Unless `dtype` says
 * otherwise, numbers and float arrays make f32, booleans bool, Int32Array and Uint8Array i32.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tensor } from "../mod.ts";
 * const x = tensor([[1, 2], [3, 4]]);
 * assert.deepEqual([x.dtype, x.shape], ["f32", [2, 2]]);
 * const ids = tensor([0, 5, 7], { dtype: "i32" });
 * assert.deepEqual(await ids.data(), Int32Array.of(0, 5, 7));
 * const y = tensor(Float32Array.of(1, 2, 3, 4, 5, 6), { shape: [2, 3] });
 * assert.deepEqual(await y.array(), [[1, 2, 3], [4, 5, 6]]);
 * ```
 */
export function tensor(
  data: NestedData | Float32Array | Float64Array | Int32Array | Uint8Array,
  opts: TensorOptions = {},
): Tensor {
  let flat: ArrayLike<number | boolean>;
  let shape: number[];
  let inferred: DType = "f32";
  if (ArrayBuffer.isView(data)) {
    flat = data;
    shape = [data.length];
    if (data instanceof Int32Array || data instanceof Uint8Array) inferred = "i32";
  } else if (typeof data === "number" || typeof data === "boolean" || Array.isArray(data)) {
    shape = inferShape(data);
    const out: (number | boolean)[] = [];
    flatten(data, shape, out, 0);
    flat = out;
    if (out.length > 0 && typeof out[0] === "boolean") inferred = "bool";
  } else {
    throw new Error(`tensor: expected a number, nested arrays or a typed array, got ${describe(data)}`);
  }
  const dtype = opts.dtype ?? inferred;
  checkDType("tensor", dtype);
  if (opts.shape !== undefined) {
    checkShape("tensor", opts.shape);
    if (sizeOf(opts.shape) !== flat.length) {
      throw new Error(
        `tensor: ${flat.length} values do not fill shape ${fmt(opts.shape)} (${sizeOf(opts.shape)} elements)`,
      );
    }
    shape = [...opts.shape];
  }
  // A typed array of the right type is copied bit for bit (NaN payloads included); float64 data for
  // an f32 tensor is kept exact, for the float64 reference (f32 computations round it on use).
  const exact = dtype === "f32" && (data instanceof Float32Array || data instanceof Float64Array);
  if (exact || (dtype === "i32" && data instanceof Int32Array)) return Tensor.fromHost(data.slice(), shape, dtype);
  const host = allocHost(dtype, flat.length);
  for (let i = 0; i < flat.length; i++) {
    const v = flat[i];
    if (typeof v !== "number" && typeof v !== "boolean") throw new Error(`tensor: element ${i} is ${describe(v)}`);
    if (dtype === "i32" && !(typeof v === "boolean" || (Number.isInteger(v) && v >= -(2 ** 31) && v < 2 ** 31))) {
      throw new Error(`tensor: element ${i} is ${v}, not an i32 integer (round it first, e.g. Math.round)`);
    }
    host[i] = dtype === "bool" ? (v ? 1 : 0) : dtype === "i32" ? +v : +v;
  }
  return Tensor.fromHost(host, shape, dtype);
}

/**
 * A tensor of the given shape filled with `value` (lazy: the value is broadcast, not copied).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { full } from "../mod.ts";
 * const sevens = full([2, 3], 7, { dtype: "i32" });
 * assert.deepEqual(await sevens.array(), [[7, 7, 7], [7, 7, 7]]);
 * assert.equal(full([2], true).dtype, "bool");
 * ```
 */
export function full(shape: Shape, value: number | boolean, opts: { readonly dtype?: DType } = {}): Tensor {
  checkShape("full", shape);
  const dtype = opts.dtype ?? (typeof value === "boolean" ? "bool" : "f32");
  checkDType("full", dtype);
  return tensor(value, { dtype }).broadcastTo(shape);
}

/**
 * A tensor of zeros (f32 unless `dtype` says otherwise).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { zeros } from "../mod.ts";
 * const z = zeros([2, 3]);
 * assert.deepEqual(await z.array(), [[0, 0, 0], [0, 0, 0]]);
 * ```
 */
export function zeros(shape: Shape, opts: { readonly dtype?: DType } = {}): Tensor {
  return full(shape, 0, opts);
}

/**
 * A tensor of ones (f32 unless `dtype` says otherwise).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ones } from "../mod.ts";
 * const o = ones([3], { dtype: "i32" });
 * assert.deepEqual(await o.data(), Int32Array.of(1, 1, 1));
 * ```
 */
export function ones(shape: Shape, opts: { readonly dtype?: DType } = {}): Tensor {
  return full(shape, 1, opts);
}

/** Wraps host storage of the right length without copying (internal: random and ops helpers). */
export function fromHost(data: HostArray, shape: Shape, dtype: DType): Tensor {
  if (data.length !== sizeOf(shape)) {
    throw new Error(`fromHost: ${data.length} values do not fill ${fmt(shape)}`);
  }
  return Tensor.fromHost(data, shape, dtype);
}
