// Matmuls in the fused host plan (fuse.ts): reading operands through views, a product's sizes, and
// a batched product summed over its batch as one product.

import type { Node } from "../graph.ts";
import type { CpuArray } from "../prim.ts";
import { stridesOf } from "../shape.ts";
import type { EpiloguePlan } from "./epilogue.ts";
import { type Affine, splitForms, splitReshape, VIEWS } from "./fuse_loop.ts";

/** A planned matmul operand: the memory of the node at position `j`, read at `c + sum index * strides`. */
export type PlannedView = { readonly j: number; readonly c: number; readonly strides: readonly number[] };

/** Where a matmul operand's elements are: `src`'s memory at `c + sum index * strides` (see matmul.ts). */
export interface OperandView {
  readonly src: Node;
  readonly c: number;
  readonly strides: readonly number[];
}

/** Where a matmul operand's elements are, without the node: offset and strides (see matmul.ts). */
export interface OperandLayout {
  readonly c: number;
  readonly strides: readonly number[];
}

/**
 * A matmul reading its operands through views, so transposes and slices are never materialized,
 * into `out` (the node's value), of sizes `dims`; `bInput` says that b's memory is an input of
 * the realization (a weight, say), not an intermediate; with `addend` (of the product's shape), out
 * is the product plus it, rounded as a separate add; with `epilogue` (and its arguments), out is
 * the epilogue's expression of the product where the matmul can compute it as it stores C, and
 * the call returns true (otherwise out is the product, and false).
 */
export type ViewMatmul = (
  a: CpuArray,
  la: OperandLayout,
  b: CpuArray,
  lb: OperandLayout,
  dims: MatmulDims,
  bInput: boolean,
  out: Float32Array,
  addend?: CpuArray,
  epilogue?: { readonly plan: EpiloguePlan; readonly args: readonly number[] },
) => boolean;

/** A product's sizes: for each index of `batch`, M x K by K x N. */
export interface MatmulDims {
  readonly batch: readonly number[];
  readonly M: number;
  readonly K: number;
  readonly N: number;
}

// A matmul node's sizes.
export function dimsOf(mm: Node): MatmulDims {
  const r = mm.ndim, [M, K] = mm.src[0].shape.slice(r - 2);
  return { batch: mm.shape.slice(0, r - 2), M, K, N: mm.shape[r - 1] };
}

// A batched product summed over its whole batch (a weight's gradient from [B, T, D] activations:
// autodiff's sum of one product per batch element) as one product whose contraction runs over the
// batch too, when both operands' batch strides continue their contraction's (batch index z at z K
// times the contraction's stride): A's columns and B's rows then read on through the batch. Null
// where they do not. The sum of products is then the f32 product of the longer contraction.
export function foldedBatch(
  sum: Node,
  mm: Node,
  [va, vb]: readonly PlannedView[],
): { readonly a: PlannedView; readonly b: PlannedView; readonly dims: MatmulDims } | null {
  const d = dimsOf(mm), nb = d.batch.length, axes = (sum.params as { axes: number[] }).axes;
  if (nb === 0 || axes.length !== nb || !axes.every((x, i) => x === i) || sum.size !== d.M * d.N) return null;
  const [acs, brs] = [va.strides[nb + 1], vb.strides[nb]];
  let span = d.K;
  for (let k = nb - 1; k >= 0; k--) {
    if (va.strides[k] !== span * acs || vb.strides[k] !== span * brs) return null;
    span *= d.batch[k];
  }
  const fold = (v: PlannedView, r: number, c: number) => ({ j: v.j, c: v.c, strides: [0, r, c] });
  return {
    a: fold(va, va.strides[nb], acs),
    b: fold(vb, brs, vb.strides[nb + 1]),
    dims: { batch: [1], M: d.M, K: span, N: d.N },
  };
}

// The view chain below a matmul operand `n` (permutes, slices, broadcasts, unit reshapes, each
// used only by the next), as strides into the memory of the node it starts from; null if none.
export function operandView(n: Node, single: (n: Node) => boolean): OperandView | null {
  if (!VIEWS.has(n.op) || !single(n)) return null;
  const R = n.ndim, zero: Affine = { c: 0, coef: new Array(R).fill(0) };
  let forms: readonly Affine[] = n.shape.map((_, j) => ({ c: 0, coef: n.shape.map((_, o) => (o === j ? 1 : 0)) }));
  let x = n;
  while (VIEWS.has(x.op) && single(x)) {
    // deno-lint-ignore no-explicit-any
    const p = x.params as any, src = x.src[0];
    if (x.op === "broadcast") {
      const lead = x.ndim - src.ndim, f = forms;
      forms = src.shape.map((d, j) => (d === 1 ? zero : f[lead + j]));
    } else if (x.op === "permute") {
      const inner = new Array<Affine>(src.ndim);
      (p.perm as number[]).forEach((q, i) => (inner[q] = forms[i]));
      forms = inner;
    } else if (x.op === "slice") {
      forms = forms.map((f, j) => ({ c: f.c + p.starts[j], coef: f.coef }));
    } else {
      const sp = splitReshape(src.shape, x.shape);
      if (sp === null) break; // a reindexing reshape: read its memory (its input's, or a loop's), laid out as its shape
      forms = splitForms(sp, src.shape, forms, R);
    }
    x = src;
  }
  const st = stridesOf(x.shape), strides = new Array<number>(R).fill(0);
  let c = 0;
  forms.forEach((f, j) => {
    c += st[j] * f.c;
    f.coef.forEach((v, o) => (strides[o] += st[j] * v));
  });
  return { src: x, c, strides };
}
