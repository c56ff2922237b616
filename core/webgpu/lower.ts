// Fitting a graph to this backend's kernel limits, after autodiff: reductions (logsumexp and
// softmax rows included), contractions, scans and scatters too long for one invocation's loop
// budget are split into stages, and joins wider than a kernel's bindings into trees. Every split computes the same values as the node it replaces.

import { constantNode, Node, rewrite } from "../graph.ts";
import type { Capabilities } from "../backend.ts";
import type { Prim, PrimParams } from "../prim.ts";
import { PRIMS } from "../prims/mod.ts";
import { packedLength } from "../prims/scan.ts";
import type { DType } from "../shape.ts";

// The kernels here loop over at most LOOP_BUDGET values per invocation (reductions 64 times that,
// spread over a workgroup; matmul 4 times, in vec4 steps), and a delta-rule scan over at most
// SCAN_BUDGET steps: sized for software adapters that stop an invocation after 65535 iterations
// of all its loops together (llvmpipe), so the other loops of a kernel fit beside the long one.
const LOOP_BUDGET = 1 << 15;
const SCAN_BUDGET = 60000;

/**
 * Loop iterations one invocation of the fused delta-rule scan (forward or backward) runs, as
 * llvmpipe counts them: per token, the time loop's own step and two K-long loops, each loop also
 * counting its final, failing test; plus the K-long loop outside time. Measured: with K = 4 the
 * scan goes wrong from token 5957 on, where this count passes 65535.
 */
export function scanLoops(T: number, K: number): number {
  return T * (2 * K + 3) + K + 2;
}

function mk<P extends Prim>(op: P, src: readonly Node[], params: PrimParams[P]): Node {
  const aval = PRIMS[op].shape(src, params);
  return new Node(op, aval.shape, aval.dtype, src, params);
}

function scalar(v: number, dtype: DType): Node {
  return constantNode(dtype === "f32" ? Float64Array.of(v) : Int32Array.of(v), [], dtype);
}

const slice = (x: Node, axis: number, s: number, e: number) =>
  mk("slice", [x], {
    starts: x.shape.map((_, i) => (i === axis ? s : 0)),
    ends: x.shape.map((d, i) => (i === axis ? e : d)),
  });
const reshape = (x: Node, shape: readonly number[]) => mk("reshape", [x], { shape });
const padAxis = (x: Node, axis: number, lo: number, hi: number) =>
  mk("pad", [x], {
    lo: x.shape.map((_, i) => (i === axis ? lo : 0)),
    hi: x.shape.map((_, i) => (i === axis ? hi : 0)),
  });

/** A concat of any width as a tree of concats that each bind at most `width` inputs. */
function concatTree(xs: readonly Node[], axis: number, width: number): Node {
  if (xs.length === 1) return xs[0];
  if (xs.length <= width) return mk("concat", xs, { axis });
  const groups: Node[] = [];
  for (let i = 0; i < xs.length; i += width) groups.push(concatTree(xs.slice(i, i + width), axis, width));
  return concatTree(groups, axis, width);
}

function reduceStages(n: Node, op: "sum" | "max", axes: readonly number[]): Node | null {
  const x = n.src[0];
  const kept = x.shape.map((_, i) => i).filter((i) => !axes.includes(i));
  const R = axes.reduce((acc, a) => acc * x.shape[a], 1), c = 64 * LOOP_BUDGET;
  if (R <= c) return null;
  // Blocks of c values (the tail padded with the identity), then the block results.
  const nb = Math.ceil(R / c), k = kept.length, keptDims = kept.map((i) => x.shape[i]);
  const flat = reshape(mk("permute", [x], { perm: [...kept, ...axes] }), [...keptDims, R]);
  let padded = padAxis(flat, k, 0, nb * c - R);
  if (op === "max" && nb * c > R) {
    const pos = mk("iota", [], { shape: padded.shape, axis: k, dtype: "i32" });
    const inside = mk("lt", [pos, mk("broadcast", [scalar(R, "i32")], { shape: padded.shape })], {});
    const low = mk("broadcast", [scalar(x.dtype === "f32" ? -Infinity : -2147483648, x.dtype)], {
      shape: padded.shape,
    });
    padded = mk("where", [inside, padded, low], {});
  }
  const blocks = mk(op, [reshape(padded, [...keptDims, nb, c])], { axes: [k + 1] });
  return mk(op, [blocks], { axes: [k] });
}

// logsumexp of a row longer than one workgroup's budget: of its blocks' logsumexps (blocks of c
// values, the tail padded with -inf, which adds nothing); softmax of such a row: exp(x - that).
function lseStages(x: Node): Node | null {
  const k = x.ndim - 1, R = x.shape[k], c = 64 * LOOP_BUDGET;
  if (R <= c) return null;
  const nb = Math.ceil(R / c), lead = x.shape.slice(0, k);
  let padded = padAxis(x, k, 0, nb * c - R);
  if (nb * c > R) {
    const pos = mk("iota", [], { shape: padded.shape, axis: k, dtype: "i32" });
    const inside = mk("lt", [pos, mk("broadcast", [scalar(R, "i32")], { shape: padded.shape })], {});
    padded = mk("where", [inside, padded, mk("broadcast", [scalar(-Infinity, "f32")], { shape: padded.shape })], {});
  }
  const blocks = mk("logsumexp", [reshape(padded, [...lead, nb, c])], {});
  return mk("logsumexp", [blocks], {});
}

function softmaxStages(x: Node): Node | null {
  const lse = lseStages(x);
  if (lse === null) return null;
  const spread = mk("broadcast", [reshape(lse, [...lse.shape, 1])], { shape: x.shape });
  return mk("exp", [mk("sub", [x, spread], {})], {});
}

function matmulStages(n: Node): Node | null {
  const [A, B] = n.src, r = A.ndim, K = A.shape[r - 1], step = 4 * LOOP_BUDGET;
  if (K <= step) return null;
  // A long contraction is a sum of matmuls over slices of it.
  let out: Node | null = null;
  for (let s = 0; s < K; s += step) {
    const e = Math.min(K, s + step);
    const part = mk("matmul", [slice(A, r - 1, s, e), slice(B, r - 2, s, e)], {});
    out = out === null ? part : mk("add", [out, part], {});
  }
  return out;
}

// Inclusive cumsum in blocks: each block's own scan plus the (reverse) scan of the block totals before it.
function cumsumStages(x: Node, axis: number, reverse: boolean): Node {
  const n = x.shape[axis];
  if (n <= LOOP_BUDGET) return mk("cumsum", [x], { axis, reverse });
  const c = LOOP_BUDGET, nb = Math.ceil(n / c);
  // Zeros appended at the end change neither prefix nor suffix sums of the real entries.
  const padded = padAxis(x, axis, 0, nb * c - n);
  const blocked = reshape(padded, [...x.shape.slice(0, axis), nb, c, ...x.shape.slice(axis + 1)]);
  const inner = cumsumStages(blocked, axis + 1, reverse);
  const totals = reshape(
    mk("sum", [blocked], { axes: [axis + 1] }),
    blocked.shape.map((d, i) => (i === axis + 1 ? 1 : d)),
  );
  const before = mk("sub", [cumsumStages(totals, axis, reverse), totals], {});
  const sum = mk("add", [inner, mk("broadcast", [before], { shape: inner.shape })], {});
  return slice(reshape(sum, padded.shape), axis, 0, n);
}

function scatterStages(n: Node, axis: number, size: number): Node | null {
  const [g, idx] = n.src, m = idx.size;
  if (m <= LOOP_BUDGET) return null;
  // Every output of a scatter-add loops over all indices: sum partial scatters instead.
  const gf = reshape(g, [...g.shape.slice(0, axis), m, ...g.shape.slice(axis + idx.ndim)]), flat = reshape(idx, [m]);
  let acc: Node | null = null;
  for (let s = 0; s < m; s += LOOP_BUDGET) {
    const e = Math.min(m, s + LOOP_BUDGET);
    const part = mk("scatterAdd", [slice(gf, axis, s, e), slice(flat, 0, s, e)], { axis, size });
    acc = acc === null ? part : mk("add", [acc, part], {});
  }
  return acc;
}

// B batch, H heads, T time, K key size, V value size. The recurrence is exact across a cut in time:
// a segment starts from the state the previous one ended in.
function segments(T: number, K: number): [number, number][] {
  const len = Math.max(1, Math.floor((SCAN_BUDGET - K - 2) / (2 * K + 3)));
  const out: [number, number][] = [];
  for (let s = 0; s < T; s += len) out.push([s, Math.min(T, s + len)]);
  return out;
}

function lastState(states: Node): Node {
  const [B, H, T, K, V] = states.shape;
  return reshape(slice(states, 2, T - 1, T), [B, H, K, V]);
}

function scanStages(n: Node, width: number): Node | null {
  const [k, v, g, beta, s0] = n.src, [, , T, K] = k.shape;
  if (scanLoops(T, K) <= SCAN_BUDGET) return null;
  let state = s0;
  const parts = segments(T, K).map(([s, e]) => {
    const out = mk(
      "deltaScan",
      [slice(k, 2, s, e), slice(v, 2, s, e), slice(g, 2, s, e), slice(beta, 2, s, e), state],
      {},
    );
    state = lastState(out);
    return out;
  });
  return concatTree(parts, 2, width);
}

// The reverse scan, segment by segment from the end: the state cotangent a later segment carries
// back enters the earlier one as an extra cotangent of its last state, which the kernel adds in
// at that step exactly as it would have carried it.
function scanGradStages(n: Node, width: number): Node | null {
  const [dS, k, v, g, beta, s0, S] = n.src, [B, H, T, K] = k.shape, V = v.shape[3];
  if (scanLoops(T, K) <= SCAN_BUDGET) return null;
  const segs = segments(T, K), packed = new Array<Node>(segs.length);
  let carry: Node | null = null; // [B, H, K, V]
  for (let j = segs.length - 1; j >= 0; j--) {
    const [s, e] = segs[j], L = e - s;
    let dSj = slice(dS, 2, s, e);
    if (carry !== null) dSj = mk("add", [dSj, padAxis(reshape(carry, [B, H, 1, K, V]), 2, L - 1, 0)], {});
    const sj = s === 0 ? s0 : reshape(slice(S, 2, s - 1, s), [B, H, K, V]);
    const ins = [
      dSj,
      slice(k, 2, s, e),
      slice(v, 2, s, e),
      slice(g, 2, s, e),
      slice(beta, 2, s, e),
      sj,
      slice(S, 2, s, e),
    ];
    packed[j] = mk("deltaScanGrad", ins, {});
    const at = L * (K + 3);
    carry = mk("permute", [slice(packed[j], 3, at, at + K)], { perm: [0, 1, 3, 2] });
  }
  // Reassemble the packed layout of the whole sequence: dk, dv, dbeta, dg (each in time order), ds0.
  const field = (f: (L: number) => [number, number]) =>
    segs.map(([s, e], j) => {
      const [a, b] = f(e - s);
      return slice(packed[j], 3, a, b);
    });
  const pieces = [
    ...field((L) => [0, L * K]),
    ...field((L) => [L * K, L * K + L]),
    ...field((L) => [L * K + L, L * K + 2 * L]),
    ...field((L) => [L * K + 2 * L, L * (K + 3)]),
    slice(packed[0], 3, (segs[0][1] - segs[0][0]) * (K + 3), packedLength(segs[0][1] - segs[0][0], K)),
  ];
  return concatTree(pieces, 3, width);
}

/** Rewrites the graph under `targets` (computed nodes resolved) so every kernel fits `caps`. */
export function lower(targets: readonly Node[], caps: Capabilities): Node[] {
  const width = caps.maxKernelBuffers - 1; // one binding is the output
  return rewrite(targets, (n) => {
    // deno-lint-ignore no-explicit-any
    const p = n.params as any;
    switch (n.op) {
      case "sum":
      case "max":
        return reduceStages(n, n.op, p.axes);
      case "matmul":
        return matmulStages(n);
      case "logsumexp":
        return lseStages(n.src[0]);
      case "softmax":
        return softmaxStages(n.src[0]);
      case "cumsum":
        return n.shape[p.axis] > LOOP_BUDGET ? cumsumStages(n.src[0], p.axis, p.reverse) : null;
      case "scatterAdd":
        return scatterStages(n, p.axis, p.size);
      case "concat":
        return n.src.length > width ? concatTree(n.src, p.axis, width) : null;
      case "deltaScan":
        return scanStages(n, width);
      case "deltaScanGrad":
        return scanGradStages(n, width);
      default:
        return null;
    }
  });
}
