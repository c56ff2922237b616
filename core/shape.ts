// Shapes, dtypes and the checks every primitive's shape rule shares.

/** Element types a tensor can hold. `bool` results come from comparisons. */
export type DType = "f32" | "i32" | "bool";

/** A tensor shape: one non-negative integer per axis. */
export type Shape = readonly number[];

/** Host storage for one dtype, as returned by `Tensor.data()` (f32 reads are float64 on an f64 backend). */
export type HostArray = Float32Array | Float64Array | Int32Array | Uint8Array;

/** Number of elements of a shape (1 for a scalar). */
export function sizeOf(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Row-major strides of a contiguous array of this shape. */
export function stridesOf(shape: Shape): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

/** Formats a shape the way error messages show it: `[2, 3]`. */
export function fmt(shape: Shape): string {
  return `[${shape.join(", ")}]`;
}

/** True when two shapes are identical. */
export function sameShape(a: Shape, b: Shape): boolean {
  // Plain loops: shapes are often frozen arrays, whose `every` and `some` V8 runs far slower.
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Throws unless `shape` is a list of non-negative integers. */
export function checkShape(op: string, shape: Shape): void {
  let ok = Array.isArray(shape);
  for (let i = 0; ok && i < shape.length; i++) ok = Number.isInteger(shape[i]) && shape[i] >= 0;
  if (!ok) throw new Error(`${op}: shape must be a list of non-negative integers, got ${JSON.stringify(shape)}`);
}

/** Resolves a possibly negative axis against a rank, naming the op when it is out of range. */
export function normAxis(op: string, axis: number, rank: number): number {
  if (!Number.isInteger(axis) || axis < -rank || axis >= rank) {
    throw new Error(`${op}: axis ${axis} is out of range for a tensor of rank ${rank}`);
  }
  return axis < 0 ? axis + rank : axis;
}

/** Resolves an axis option (one axis, several, or all when undefined) to sorted unique axes. */
export function normAxes(op: string, axis: number | readonly number[] | undefined, rank: number): number[] {
  if (axis === undefined) return [...Array(rank).keys()];
  const list = typeof axis === "number" ? [axis] : axis;
  const out = list.map((a) => normAxis(op, a, rank));
  if (new Set(out).size !== out.length) throw new Error(`${op}: repeated axis in ${JSON.stringify(list)}`);
  return out.sort((a, b) => a - b);
}

/** NumPy broadcasting of two shapes; the error names the op, both shapes and the axis. */
export function broadcastShapes(op: string, a: Shape, b: Shape): number[] {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new Error(
        `${op}: shapes ${fmt(a)} and ${fmt(b)} do not broadcast: axis ${i - n} has sizes ${da} and ${db}`,
      );
    }
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** Allocates zeroed host storage for `n` elements of a dtype. */
export function allocHost(dtype: DType, n: number): Float32Array | Int32Array | Uint8Array {
  return dtype === "f32" ? new Float32Array(n) : dtype === "i32" ? new Int32Array(n) : new Uint8Array(n);
}

/** Checks that a dtype name is one jetfold knows. */
export function checkDType(op: string, dtype: unknown): asserts dtype is DType {
  if (dtype !== "f32" && dtype !== "i32" && dtype !== "bool") {
    throw new Error(`${op}: unknown dtype ${JSON.stringify(dtype)}; expected "f32", "i32" or "bool"`);
  }
}
