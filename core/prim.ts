// The primitive vocabulary: names, parameter records and the shape of one primitive's definition.

import type { DType, Shape } from "./shape.ts";
import type { Tensor } from "./tensor.ts";

type None = Record<never, never>;

/** Parameters of every primitive, keyed by its name. */
export interface PrimParams {
  neg: None;
  exp: None;
  log: None;
  sqrt: None;
  sin: None;
  cos: None;
  tanh: None;
  add: None;
  sub: None;
  mul: None;
  div: None;
  maximum: None;
  pow: None;
  lt: None;
  eq: None;
  where: None;
  cast: { readonly dtype: DType };
  stopGradient: None;
  sum: { readonly axes: readonly number[] };
  max: { readonly axes: readonly number[] };
  reshape: { readonly shape: Shape };
  permute: { readonly perm: readonly number[] };
  broadcast: { readonly shape: Shape };
  slice: { readonly starts: readonly number[]; readonly ends: readonly number[] };
  pad: { readonly lo: readonly number[]; readonly hi: readonly number[] };
  concat: { readonly axis: number };
  matmul: None;
  gather: { readonly axis: number };
  scatterAdd: { readonly axis: number; readonly size: number };
  cumsum: { readonly axis: number; readonly reverse: boolean };
  iota: { readonly shape: Shape; readonly axis: number; readonly dtype: DType };
  logsumexp: None;
  softmax: None;
  deltaScan: None;
  deltaScanGrad: None;
}

/** The name of a primitive. */
export type Prim = keyof PrimParams;

/** Shape and dtype of a value, as shape rules see their inputs. */
export interface Aval {
  readonly shape: Shape;
  readonly dtype: DType;
}

/** Storage the CPU reference computes on: f32 tensors may be held in float64 for reference checks. */
export type CpuArray = Float32Array | Float64Array | Int32Array | Uint8Array;

/** What a CPU implementation receives besides its inputs. */
export interface CpuContext {
  /**
   * Allocates zeroed output storage in the backend's precision; with `zeroed` false its contents are
   * unspecified, for a kernel that writes every element.
   */
  alloc(dtype: DType, n: number, zeroed?: boolean): CpuArray;
}

/**
 * What a vjp rule builds with besides Tensor methods: handed in by autodiff, so primitive records
 * need no value import of the Tensor module.
 */
export interface VjpOps {
  /** Builds a node of primitive `op` (shape-checked), as a tensor. */
  apply<P extends Prim>(op: P, inputs: readonly Tensor[], params: PrimParams[P]): Tensor;
  /** A scalar constant with `like`'s dtype. */
  scalar(v: number | boolean, like: Tensor): Tensor;
}

/**
 * One primitive, defined once: its shape/dtype rule, its CPU reference and its vjp rule. The vjp
 * receives the cotangent `g` of the output and returns one cotangent per input, or `null` where
 * the input is not differentiable; it is written with Tensor ops (and `ops`), so gradients compose.
 */
export interface PrimDef<P extends Prim> {
  readonly shape: (ins: readonly Aval[], params: PrimParams[P]) => Aval;
  readonly cpu: (
    ins: readonly CpuArray[],
    avals: readonly Aval[],
    out: Aval,
    params: PrimParams[P],
    ctx: CpuContext,
  ) => CpuArray;
  readonly vjp: (
    g: Tensor,
    ins: readonly Tensor[],
    out: Tensor,
    params: PrimParams[P],
    ops: VjpOps,
  ) => readonly (Tensor | null)[];
}

/** The table type: a primitive without a complete record is a type error. */
export type PrimTable = { readonly [P in Prim]: PrimDef<P> };
