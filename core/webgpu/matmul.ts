// The batched matmul kernel: each thread computes a TM x 4 output tile from 4x4 operand blocks,
// loading each operand as vec4 along whichever axis is contiguous (so transposes cost nothing).

import { sizeOf } from "../shape.ts";
import { Node } from "../graph.ts";
import type { KernelBuilder, Sources } from "./emit.ts";
import { nest } from "./wgsl.ts";
import type { KernelBody } from "./rules.ts";
import { builtInVariant, type MatmulVariant } from "./variants.ts";

/** A tensor read as `base[offset + sum(index[i] * strides[i])]` from a device buffer. */
export interface StridedView {
  readonly base: Node;
  readonly offset: number;
  readonly strides: readonly number[];
}

// How a leaf of an operand is loaded per step of 4 (or 1) along the contraction: vec4 along the
// contraction axis, vec4 along its other (row or column) axis, element by element, or once before
// the loop when it does not vary along the contraction (a broadcast, e.g. a norm's per-row scale).
type Mode = "k" | "mn" | "scalar" | "const";

function alignedAlong(v: StridedView, axis: number): boolean {
  return v.strides[axis] === 1 && v.offset % 4 === 0 && v.strides.every((s, i) => i === axis || s % 4 === 0);
}

/** A tensor an operand is computed from, read from a buffer through a strided view. */
export interface Leaf {
  readonly node: Node;
  readonly view: StridedView;
}

// An elementwise prologue this large or reading more leaves stays its own kernel: each element of
// an operand is computed by every thread whose tile needs it (N / TN of them for a row of A). Of its
// leaves only one may stream (vary along both the contraction and the tile's rows or columns): each
// such leaf is loaded as often as the operand itself would be, which on a load-bound adapter costs
// more than a kernel of its own. Leaves constant along the contraction (a norm's per-row scale) are
// loaded once before the loop, and leaves constant across the tile (a norm's weight) once per step.
const PROLOGUE_NODES = 12;
const PROLOGUE_LEAVES = 3;
const PROLOGUE_STREAMS = 1;

// Ops that only reindex their input (as planKernels' strided views follow them).
const REINDEX = new Set(["reshape", "permute", "broadcast", "slice", "stopGradient"]);

/**
 * A matmul operand as an elementwise tree over strided views of buffers: the operand itself when
 * it is such a view; else its elementwise ops with every reindexing op above them moved down onto
 * the tensors below (a view of an elementwise op is the op of the views: it only reindexes), down
 * to views of buffers; null when the operand is neither, or its tree is larger than
 * PROLOGUE_NODES ops or PROLOGUE_LEAVES leaves (it then needs a buffer of its own). One-element
 * host constants are uniforms, the same at every index. The nodes built are the kernel's own.
 */
export function prologueTree(
  x: Node,
  side: 0 | 1,
  src: Pick<Sources, "strided" | "isScalar" | "isMap">,
): Node | null {
  const r = x.ndim, [axisK, axisMN] = side === 0 ? [r - 1, r - 2] : [r - 2, r - 1];
  let nodes = 0, streams = 0;
  const leaves = new Set<string>();
  const walk = (t: Node, views: readonly Node[]): Node | null => {
    if (src.isScalar(t)) return t;
    let viewed = t;
    for (let i = views.length - 1; i >= 0; i--) {
      const v = views[i];
      viewed = new Node(v.op, v.shape, viewed.dtype, [viewed], v.params);
    }
    const v = views.length === 0 ? src.strided(t) : src.strided(viewed);
    if (v !== null) {
      if (t.dtype !== "f32") return null; // loaded as f32 (a mask stays its own kernel)
      const key = `${t.id}/${views.map((v) => v.id).join(",")}`;
      if (!leaves.has(key) && v.strides[axisK] !== 0 && v.strides[axisMN] !== 0) streams++;
      leaves.add(key);
      if (leaves.size > PROLOGUE_LEAVES || (t !== x && streams > PROLOGUE_STREAMS)) return null;
      return views.length === 0 ? t : viewed;
    }
    if (REINDEX.has(t.op)) return walk(t.src[0], [...views, t]);
    if (!src.isMap(t) || ++nodes > PROLOGUE_NODES) return null;
    const kids = t.src.map((c) => walk(c, views));
    if (kids.some((c) => c === null)) return null;
    if (views.length === 0 && kids.every((c, i) => c === t.src[i])) return t;
    return new Node(t.op, views.length > 0 ? views[0].shape : t.shape, t.dtype, kids as Node[], t.params);
  };
  return walk(x, []);
}

/** The leaves of a prologue tree: its strided views of buffers, each once. */
export function treeLeaves(tree: Node, src: Pick<Sources, "strided" | "isScalar">): Leaf[] {
  const out = new Map<Node, StridedView>();
  const visit = (t: Node) => {
    if (out.has(t) || src.isScalar(t)) return;
    const v = src.strided(t);
    if (v !== null) out.set(t, v);
    else t.src.forEach(visit);
  };
  visit(tree);
  return [...out].map(([node, view]) => ({ node, view }));
}

/** The variant a matmul of this product uses: the device's measured choice, else the built-in one. */
export function variantFor(k: KernelBuilder, out: Node): MatmulVariant {
  const r = out.ndim, M = out.shape[r - 2], N = out.shape[r - 1], K = out.src[0].shape[r - 1];
  const Z = sizeOf(out.shape.slice(0, -2));
  return k.features.matmulVariant?.(Z, M, N, K) ?? builtInVariant(Z, M, N);
}

/** A matmul's operands as prologue trees with their leaves (throws when one is neither). */
export function operandTrees(k: KernelBuilder, out: Node): [Node, Leaf[], Node, Leaf[]] {
  const [a, b] = out.src.map((x, side) => prologueTree(x, side as 0 | 1, k.src));
  if (a === null || b === null) {
    throw new Error("webgpu: matmul operands must be strided views of buffers or elementwise prologues of them");
  }
  return [a, treeLeaves(a, k.src), b, treeLeaves(b, k.src)];
}

// Z batch, M rows, K contraction, N columns; a thread owns rows row0..row0+TM-1 and columns
// col0..col0+4G-1 (G groups of 4), accumulating one vec4 per row and column group. An operand with
// a prologue loads each of its leaves as an operand would be loaded and evaluates the prologue on
// the loaded elements.
export function matmulKernel(k: KernelBuilder, out: Node, v: MatmulVariant = variantFor(k, out)): KernelBody {
  const [a, leavesA, b, leavesB] = operandTrees(k, out);
  // (A prologue tree may be a bare constant: shapes come from the operands themselves.)
  const r = out.ndim, M = out.shape[r - 2], N = out.shape[r - 1], K = out.src[0].shape[r - 1];
  const batch = out.shape.slice(0, -2), Z = sizeOf(batch);
  const TM = v.rows, G = v.groups, TN = 4 * G;
  const rowBlocks = Math.ceil(M / TM), colBlocks = Math.ceil(N / TN);
  const threads = Z * rowBlocks * colBlocks;
  if (threads === 0) return { body: [], threads: 0, workgroupSize: 64 };
  const chunk = K % 4 === 0 ? 4 : 1;

  k.lines.push(`if (tid >= ${k.u(threads)}) { return; }`);
  const cb = k.let(`tid % ${k.u(colBlocks)}`, "cb"), rest = k.let(`tid / ${k.u(colBlocks)}`, "t");
  const rb = k.let(`${rest} % ${k.u(rowBlocks)}`, "rb"), z = k.let(`${rest} / ${k.u(rowBlocks)}`, "z");
  const zIdx = k.unravel(z, batch);
  const row0 = k.let(`${rb} * ${TM}u`, "row"), col0 = k.let(`${cb} * ${TN}u`, "col");
  const lastRow = k.u(M - 1), lastCol = k.u(N - 1);
  const inner: string[] = [];
  // Clamped positions keep every load in bounds; the stores skip rows and columns past the edge.
  const rowIdx = (i: number) => `min(${row0} + ${i}u, ${lastRow})`;
  const colIdx = (c: number) => `min(${col0} + ${c}u, ${lastCol})`;
  const elemA = operand(k, a, leavesA, {
    axisK: r - 1,
    axisMN: r - 2,
    count: TM,
    dimMN: M,
    start: row0,
    at: rowIdx,
    zIdx,
    chunk,
    inner,
    name: "a",
    batch: out.src[0].shape.slice(0, -2),
  });
  const elemB = operand(k, b, leavesB, {
    axisK: r - 2,
    axisMN: r - 1,
    count: TN,
    dimMN: N,
    start: col0,
    at: colIdx,
    zIdx,
    chunk,
    inner,
    name: "b",
    batch: out.src[1].shape.slice(0, -2),
  });
  for (let i = 0; i < TM; i++) for (let g = 0; g < G; g++) k.lines.push(`var acc${i}_${g} = vec4<f32>(0.0);`);
  for (let q = 0; q < chunk; q++) {
    for (let g = 0; g < G; g++) inner.push(`let bk${q}_${g} = ${elemB.vec(g, q)};`);
  }
  for (let i = 0; i < TM; i++) {
    for (let g = 0; g < G; g++) {
      const terms = Array.from({ length: chunk }, (_, q) => `${elemA.at(i, q)} * bk${q}_${g}`);
      inner.push(`acc${i}_${g} = acc${i}_${g} + ${terms.join(" + ")};`);
    }
  }
  k.lines.push(`for (var kk = 0u; kk < ${k.u(K)}; kk += ${chunk}u) {`, ...inner.map((l) => `  ${l}`), "}");

  storeTile(k, out, { z, zIdx, row0, col0, rows: TM, cols: TN, whole: N % TN === 0 });
  return { body: k.lines, threads, workgroupSize: 64 };
}

/** Where a thread's tile of outputs lies: its batch (linear and unraveled), first row and column. */
export interface TileAt {
  readonly z: string;
  readonly zIdx: readonly string[];
  readonly row0: string;
  readonly col0: string;
  readonly rows: number;
  /** A multiple of 4: accumulator `acc{i}_{g}` holds columns 4g..4g+3 of row i. */
  readonly cols: number;
  /** No thread's columns pass the last one (the column checks can go). */
  readonly whole: boolean;
}

/** Stores a thread's accumulators (through the kernel's epilogue, if it has one), skipping edges. */
export function storeTile(k: KernelBuilder, out: Node, t: TileAt): void {
  const r = out.ndim, M = out.shape[r - 2], N = out.shape[r - 1];
  const { z, zIdx, row0, col0 } = t, TM = t.rows, TN = t.cols;
  const n = k.u(N);
  const outRow = k.let(`(${z} * ${k.u(M)} + ${row0}) * ${n} + ${col0}`, "o");
  // With an epilogue, the elementwise consumer is evaluated here with this tile's sums as its input.
  const epilogue = k.outputs[0] !== out ? k.outputs[0] : null;
  for (let i = 0; i < TM; i++) {
    const stores = Array.from({ length: TN }, (_, c) => c).flatMap((c) => {
      const at = `${outRow} + ${i}u * ${n} + ${c}u`, acc = `acc${i}_${c >> 2}[${c & 3}]`;
      const store = epilogue === null ? [`out[${at}] = ${acc};`] : k.block(() => {
        const idx = [...zIdx, `(${row0} + ${i}u)`, `(${col0} + ${c}u)`];
        k.provide(out, idx, acc);
        k.lines.push(`out[${at}] = ${k.toStore(k.value(epilogue, idx), epilogue.dtype)};`);
      });
      return t.whole ? store : nest(`if (${col0} + ${c}u < ${n}) {`, store);
    });
    k.lines.push(...nest(`if (${row0} + ${i}u < ${k.u(M)}) {`, stores));
  }
}

// One operand's side of the tile: A's rows (axisMN = r - 2) or B's columns (axisMN = r - 1).
interface Side {
  readonly axisK: number;
  readonly axisMN: number;
  /** Rows (TM) or columns (TN) of the tile. */
  readonly count: number;
  readonly dimMN: number;
  readonly start: string;
  /** The clamped position of row or column j of the tile. */
  readonly at: (j: number) => string;
  readonly zIdx: readonly string[];
  /** The operand's batch dimensions. */
  readonly batch: readonly number[];
  readonly chunk: number;
  /** The K loop's body, which the loads are appended to. */
  readonly inner: string[];
  readonly name: string;
}

// Emits the loads of an operand's leaves (before the loop for "const" leaves, into the loop body
// for the others) and returns its elements: `at(j, q)` is the operand at (row or column j of the
// tile, kk + q), and `vec(g, q)` columns 4g..4g+3 as a vec4 (for B).
function operand(k: KernelBuilder, x: Node, leaves: readonly Leaf[], s: Side) {
  const elems = leaves.map((leaf, n) => loadLeaf(k, leaf.view, s, `${s.name}${leaves.length > 1 ? n : ""}`));
  const direct = leaves.length === 1 && leaves[0].node === x; // no prologue
  if (direct) return elems[0];
  // A prologue: each leaf's loaded element is provided at the operand's index, and the operand's
  // elementwise tree is evaluated on them, once per element of the tile. Its scalar constants are
  // read once, before the loop.
  const constants = (t: Node): void => {
    if (k.src.isScalar(t)) k.value(t, []);
    else if (!leaves.some((l) => l.node === t)) t.src.forEach(constants);
  };
  constants(x);
  const values = new Map<string, string>();
  const at = (j: number, q: number): string => {
    const key = `${j},${q}`;
    let v = values.get(key);
    if (v === undefined) {
      const idx = [...s.batch.map((d, i) => (d === 1 ? "0u" : s.zIdx[i])), "", ""];
      idx[s.axisMN] = s.at(j);
      idx[s.axisK] = `(kk + ${q}u)`;
      const lines = k.block(() => {
        leaves.forEach((leaf, n) => k.provide(leaf.node, idx, elems[n].at(j, q)));
        v = k.let(k.value(x, idx), `${s.name}p`);
      });
      s.inner.push(...lines);
      values.set(key, v!);
    }
    return v!;
  };
  return { at, vec: (g: number, q: number) => `vec4<f32>(${[0, 1, 2, 3].map((c) => at(4 * g + c, q)).join(", ")})` };
}

// Loads one strided view for a side of the tile in the mode its layout allows.
function loadLeaf(k: KernelBuilder, v: StridedView, s: Side, name: string) {
  const { axisK, axisMN, count, chunk, inner } = s;
  const mode: Mode = v.strides[axisK] === 0
    ? "const"
    : chunk === 4 && alignedAlong(v, axisK)
    ? "k"
    : s.dimMN % 4 === 0 && alignedAlong(v, axisMN)
    ? "mn"
    : "scalar";
  const base = k.let(
    [k.u(v.offset), ...s.zIdx.flatMap((i, j) => (v.strides[j] === 0 ? [] : [`${i} * ${k.u(v.strides[j])}`]))].join(
      " + ",
    ),
    "base",
  );
  const sK = k.u(v.strides[axisK]);
  // A view that does not vary along the tile's rows (or columns) loads one of them for all.
  const flat = v.strides[axisMN] === 0;
  const sMN = flat ? "" : k.u(v.strides[axisMN]);
  const lines = new Map<number, string>();
  const pos = (j: number) => {
    const jj = flat ? 0 : j;
    if (!lines.has(jj)) lines.set(jj, flat ? base : k.let(`${base} + ${s.at(jj)} * ${sMN}`, `${name}r`));
    return lines.get(jj)!;
  };
  const one = (j: number) => (flat ? 0 : j);
  if (mode === "const") {
    const sc = k.bind(v.base);
    const loaded = new Map<number, string>();
    const get = (j: number) => {
      if (!loaded.has(one(j))) loaded.set(one(j), k.let(`${sc}[${pos(j)}]`, `${name}c`));
      return loaded.get(one(j))!;
    };
    for (let j = 0; j < count; j++) get(j); // before the loop
    return { at: (j: number, _q: number) => get(j), vec: (g: number, _q: number) => vec4Of(get, g) };
  }
  if (mode === "scalar") {
    const sc = k.bind(v.base);
    const rowsAt = Array.from({ length: count }, (_, j) => pos(j));
    const at = (j: number, q: number) => `${sc}[${rowsAt[j]} + (kk + ${q}u) * ${sK}]`;
    return { at, vec: (g: number, q: number) => vec4Of((j) => at(j, q), g) };
  }
  const vec = k.bind(v.base, "array<vec4<f32>>");
  if (mode === "k") {
    const rowsAt = Array.from({ length: count }, (_, j) => pos(j));
    const loadedK = new Set<number>();
    for (let j = 0; j < count; j++) {
      if (loadedK.has(one(j))) continue;
      loadedK.add(one(j));
      inner.push(`let ${name}v${one(j)} = ${vec}[(${rowsAt[j]} + kk) / 4u];`);
    }
    return {
      at: (j: number, q: number) => `${name}v${one(j)}[${q}]`,
      vec: (g: number, q: number) => vec4Of((j) => `${name}v${one(j)}[${q}]`, g),
    };
  }
  // "mn": vec4s along the rows (or columns) of the tile, one per step of the contraction.
  for (let q = 0; q < chunk; q++) {
    for (let h = 0; h < count / 4; h++) {
      inner.push(`let ${name}m${q}_${h} = ${vec}[(${base} + (kk + ${q}u) * ${sK} + ${s.start} + ${4 * h}u) / 4u];`);
    }
  }
  return {
    at: (j: number, q: number) => `${name}m${q}_${j >> 2}[${j & 3}]`,
    vec: (g: number, q: number) => `${name}m${q}_${g}`,
  };
}

function vec4Of(elem: (j: number) => string, g: number): string {
  return `vec4<f32>(${[0, 1, 2, 3].map((c) => elem(4 * g + c)).join(", ")})`;
}
