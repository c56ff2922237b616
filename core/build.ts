// Building graph nodes: shape-checked node creation, scalar promotion, broadcasting and the
// composite forms behind some Tensor methods.

import type { Prim, PrimParams } from "./prim.ts";
import { PRIMS } from "./prims/mod.ts";
import { broadcastShapes, type DType, fmt, normAxes, type Shape, sizeOf } from "./shape.ts";
import { type ReduceOptions, Tensor } from "./tensor.ts";

/** Builds a graph node: checks shapes and dtypes with the primitive's rule, computes nothing. */
export function apply<P extends Prim>(op: P, inputs: readonly Tensor[], params: PrimParams[P]): Tensor {
  for (const t of inputs) {
    if (!(t instanceof Tensor)) throw new Error(`${op}: expected Tensor inputs, got ${describe(t)}`);
    if (t._disposed) throw new Error(`${op}: input tensor of shape ${fmt(t.shape)} was disposed`);
  }
  const aval = PRIMS[op].shape(inputs, params);
  return new Tensor(aval, { op, inputs, params }, null);
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
  // f32 constants keep their float64 value on the host, so the f64 CPU reference stays exact;
  // f32 computations round them on use.
  const data = dtype === "f32" ? Float64Array.of(+v) : dtype === "i32" ? Int32Array.of(+v) : Uint8Array.of(v ? 1 : 0);
  return new Tensor({ shape: [], dtype }, null, data);
}

export function negate(y: Tensor | number): Tensor | number {
  return typeof y === "number" ? -y : y.neg();
}

export function binary(
  op: "add" | "sub" | "mul" | "div" | "maximum" | "pow" | "lt" | "eq",
  x: Tensor,
  y: Tensor | number | boolean,
): Tensor {
  const ty = scalarLike(y, x);
  const shape = broadcastShapes(op, x.shape, ty.shape);
  return apply(op, [x.broadcastTo(shape), ty.broadcastTo(shape)], {});
}

/**
 * The most work one kernel invocation should loop over. Software adapters cap loop iterations per
 * invocation (llvmpipe: 65535 across all loops of a shader), so longer reductions, contractions
 * and scans are split into stages when the graph is built, on every backend alike.
 */
export const LOOP_BUDGET = 1 << 15;

export function reduce(op: "sum" | "max", x: Tensor, opts: ReduceOptions): Tensor {
  const axes = normAxes(op, opts.axis, x.ndim);
  const kept = x.shape.map((_, i) => i).filter((i) => !axes.includes(i));
  const R = axes.reduce((n, a) => n * x.shape[a], 1);
  let out: Tensor;
  if (R > 64 * LOOP_BUDGET) {
    // Two stages: blocks of c values (the tail padded with the identity), then the block results.
    const c = 64 * LOOP_BUDGET, nb = Math.ceil(R / c);
    const flat = x.permute([...kept, ...axes]).reshape([...kept.map((i) => x.shape[i]), R]);
    let padded = flat.pad(flat.shape.map((_, i) => [0, i === kept.length ? nb * c - R : 0] as const));
    if (op === "max" && nb * c > R) {
      const pos = apply("iota", [], { shape: padded.shape, axis: kept.length, dtype: "i32" });
      padded = pos.lt(R).where(padded, x.dtype === "f32" ? -Infinity : -2147483648);
    }
    const blocks = apply(op, [padded.reshape([...kept.map((i) => x.shape[i]), nb, c])], { axes: [kept.length + 1] });
    out = apply(op, [blocks], { axes: [kept.length] });
  } else {
    out = apply(op, [x], { axes });
  }
  return opts.keepdims ? out.reshape(x.shape.map((d, i) => (axes.includes(i) ? 1 : d))) : out;
}

export function matmul(a: Tensor, b: Tensor): Tensor {
  if (a.ndim === 0 || b.ndim === 0) {
    throw new Error(`matmul: operands must have at least one axis, got ${fmt(a.shape)} and ${fmt(b.shape)}`);
  }
  const a2 = a.ndim === 1 ? a.reshape([1, a.shape[0]]) : a;
  const b2 = b.ndim === 1 ? b.reshape([b.shape[0], 1]) : b;
  const [m, k] = a2.shape.slice(-2), [k2, n] = b2.shape.slice(-2);
  if (k !== k2) {
    throw new Error(`matmul: inner sizes differ: ${fmt(a.shape)} @ ${fmt(b.shape)} contracts ${k} with ${k2}`);
  }
  const op = `matmul (batch axes of ${fmt(a.shape)} @ ${fmt(b.shape)})`;
  const batch = broadcastShapes(op, a2.shape.slice(0, -2), b2.shape.slice(0, -2));
  const [A, B] = [a2.broadcastTo([...batch, m, k]), b2.broadcastTo([...batch, k, n])];
  // A long contraction is a sum of matmuls over slices of it (see LOOP_BUDGET).
  const step = 4 * LOOP_BUDGET;
  let out: Tensor | null = null;
  for (let s = 0; s < k || out === null; s += step) {
    const e = Math.min(k, s + step);
    const part: Tensor = k <= step ? apply("matmul", [A, B], {}) : apply("matmul", [
      A.slice([...batch.map(() => 0), 0, s], [...batch, m, e]),
      B.slice([...batch.map(() => 0), s, 0], [...batch, e, n]),
    ], {});
    out = out === null ? part : out.add(part);
    if (k <= step) break;
  }
  if (a.ndim === 1) out = out!.squeeze(-2);
  if (b.ndim === 1) out = out!.squeeze(-1);
  return out!;
}

export function inferShape(shape: Shape, x: Tensor): number[] {
  const holes = shape.filter((d) => d === -1).length;
  const known = shape.reduce((acc, d) => (d === -1 ? acc : acc * d), 1);
  const out = shape.map((d) => (d === -1 ? (known === 0 ? 0 : x.size / known) : d));
  if (holes > 1 || out.some((d) => !Number.isInteger(d) || d < 0) || sizeOf(out) !== x.size) {
    throw new Error(`reshape: cannot reshape ${fmt(x.shape)} (${x.size} elements) to ${fmt(shape)}`);
  }
  return out;
}

export function clampIndex(i: number, d: number): number {
  if (!Number.isInteger(i)) throw new Error(`slice: index ${i} is not an integer`);
  return Math.min(Math.max(i < 0 ? i + d : i, 0), d);
}

/** Inclusive cumsum along `axis`; long axes become blocks whose totals are scanned in turn. */
export function cumsum(x: Tensor, axis: number, reverse: boolean): Tensor {
  const n = x.shape[axis];
  if (n <= LOOP_BUDGET) return apply("cumsum", [x], { axis, reverse });
  const c = LOOP_BUDGET, nb = Math.ceil(n / c);
  // Zeros appended at the end change neither prefix nor suffix sums of the real entries.
  const padded = x.pad(x.shape.map((_, i) => [0, i === axis ? nb * c - n : 0] as const));
  const blocked = padded.reshape([...x.shape.slice(0, axis), nb, c, ...x.shape.slice(axis + 1)]);
  const inner = cumsum(blocked, axis + 1, reverse);
  const totals = blocked.sum({ axis: axis + 1, keepdims: true });
  const before = cumsum(totals, axis, reverse).sub(totals); // what the earlier (or later) blocks add
  return inner.add(before).reshape(padded.shape).slice(x.shape.map(() => 0), x.shape);
}
