// Reduction kernels: a thread or a workgroup per output, with pluggable accumulators (sum, max,
// online logsumexp), and the two-pass softmax row kernel built on the same pieces.

import { type DType, sizeOf } from "../shape.ts";
import type { Node } from "../graph.ts";
import type { KernelBuilder } from "./emit.ts";
import { nest, VALUE_TYPE, zero } from "./wgsl.ts";
import type { KernelBody } from "./rules.ts";
import { type ReduceVariant, reduceVariantFor, reductionOp } from "./kernel_variants.ts";

// -Infinity at run time: a constant expression may not evaluate to it (see jf_f32bits).
const NEG_INF = "jf_f32bits(0xff800000u)";

// A reduction's running state: how it starts, absorbs a value, merges in workgroup memory, ends.
export interface Accumulator {
  readonly init: string[];
  update(v: string): string[];
  /** Blocked sums: lines before each block of BLOCK values, and after it (see `blockedLoop`). */
  readonly block?: { readonly open: string[]; readonly close: string[] };
  /** Lines after the last update, before the result is read or shared (folds partial sums in). */
  readonly finish: string[];
  /** Workgroup arrays of `n` partial states. */
  shared(n: number): string[];
  /** Stores this thread's state at index `at` of the arrays; `identity`, the empty state there. */
  toShared(at: string): string[];
  identity(at: string): string[];
  /** Merges the state at `src` into the one at `dst`. */
  merge(dst: string, src: string): string[];
  /** Replaces this thread's state by its subgroup's merged state (subgroup operations). */
  readonly subgroup: string[];
  /** The result from this thread's state (null) or from the shared state at `at`. */
  result(at: string | null): string;
}

// Long f32 sums are blocked: values go into a sum of at most BLOCK (acc0), those into a sum of at
// most BLOCK blocks (acc1), those into the total (acc), so each partial sum rounds over at most
// ~32 terms of its own size and the error grows like (64 + n / 1024) ulps, not n (a sum of 3M values
// of 0.1 drifted by 1.4e-4 relative one value at a time, 6e-7 blocked). Plain adds, nothing a
// compiler may fold away (as it may Kahan's compensation). The block is an inner loop, so the
// values still stream through a tight add; llvmpipe counts its extra iterations (one per block
// and one failing test) against its 65535, which lower.ts's budgets leave room for.
const BLOCK = 32;

// Carries a finished block (acc0) into acc1, and every BLOCK blocks acc1 into acc.
const CARRY = [
  "acc1 = acc1 + acc0;",
  "nacc = nacc + 1u;",
  ...nest(`if ((nacc & ${BLOCK - 1}u) == 0u) {`, ["acc = acc + acc1;", "acc1 = 0.0;"]),
];
const LEVELS = ["var acc: f32 = 0.0;", "var acc1: f32 = 0.0;", "var nacc = 0u;"];

/**
 * `for (var r = start; r < bound; r += step)` around `body`, in blocks of BLOCK iterations with the
 * accumulator's block lines around each when it has them. `step` is a u32 literal ("1u", "64u").
 */
export function blockedLoop(acc: Accumulator, start: string, bound: string, step: string, body: string[]): string[] {
  if (acc.block === undefined) return nest(`for (var r = ${start}; r < ${bound}; r += ${step}) {`, body);
  const span = `${BLOCK * parseInt(step)}u`;
  return nest(`for (var rb = ${start}; rb < ${bound}; rb += ${span}) {`, [
    ...acc.block.open,
    `let re = min(${bound}, rb + ${span});`,
    ...nest(`for (var r = rb; r < re; r += ${step}) {`, body),
    ...acc.block.close,
  ]);
}

export function simpleAcc(k: KernelBuilder, op: "sum" | "max", dtype: DType): Accumulator {
  const T = VALUE_TYPE[dtype];
  const init = op === "sum" ? zero(dtype) : dtype === "f32" ? NEG_INF : "bitcast<i32>(0x80000000u)";
  const combine = (a: string, b: string) =>
    op === "sum" ? `${a} + ${b}` : dtype === "f32" ? `${k.helper("jf_max")}(${a}, ${b})` : `max(${a}, ${b})`;
  // A NaN anywhere makes a float maximum NaN (subgroupMax need not say so).
  const nanMax = [
    "let anyNan = subgroupAny(jf_isnan(acc));",
    "acc = select(subgroupMax(acc), jf_f32bits(0x7fc00000u), anyNan);",
  ];
  const shared = {
    shared: (n: number) => [`var<workgroup> sh: array<${T}, ${n}>;`],
    toShared: (at: string) => [`sh[${at}] = acc;`],
    identity: (at: string) => [`sh[${at}] = ${init};`],
    merge: (dst: string, src: string) => [`sh[${dst}] = ${combine(`sh[${dst}]`, `sh[${src}]`)};`],
    subgroup: op === "sum" ? ["acc = subgroupAdd(acc);"] : dtype === "f32" ? nanMax : ["acc = subgroupMax(acc);"],
    result: (at: string | null) => (at === null ? "acc" : `sh[${at}]`),
  };
  if (op === "max" || dtype !== "f32") {
    // Maxima round nothing, and integer sums are exact (modulo 2^32, as on the CPU).
    return {
      init: [`var acc: ${T} = ${init};`],
      update: (v) => [`acc = ${combine("acc", v)};`],
      finish: [],
      ...shared,
    };
  }
  return {
    init: LEVELS,
    update: (v) => [`acc0 = acc0 + ${v};`],
    block: { open: ["var acc0: f32 = 0.0;"], close: CARRY },
    finish: ["acc = acc + acc1;"],
    ...shared,
  };
}

// Running (max, sum of exp(v - max)): one pass, never exponentiates anything above 0. The sum is
// blocked as in simpleAcc (acc0 into acc1 into acc); a new maximum rescales every partial.
export const lseAcc: Accumulator = {
  init: [`var m: f32 = ${NEG_INF};`, ...LEVELS],
  // NaN (caught by its bits: compilers may fold v != v away) makes the running max NaN, as on the CPU.
  update: (v) => [
    ...nest(`if (jf_isnan(${v})) { m = ${v}; } else if (${v} > m) {`, [
      `let f = exp(m - ${v});`,
      "acc = acc * f;",
      "acc1 = acc1 * f;",
      "acc0 = acc0 * f + 1.0;",
      `m = ${v};`,
    ]),
    ...nest(`else if (${v} > ${NEG_INF}) {`, [`acc0 = acc0 + select(exp(${v} - m), 1.0, ${v} == m);`]),
  ],
  block: { open: ["var acc0: f32 = 0.0;"], close: CARRY },
  finish: ["acc = acc + acc1;"],
  shared: (n) => [`var<workgroup> shm: array<f32, ${n}>;`, `var<workgroup> shs: array<f32, ${n}>;`],
  toShared: (at) => [`shm[${at}] = m;`, `shs[${at}] = acc;`],
  identity: (at) => [`shm[${at}] = ${NEG_INF};`, `shs[${at}] = 0.0;`],
  merge: (d, o) => [
    // (A block, so merges in one loop body do not redeclare mm.)
    ...nest("{", [
      // (jf_max: a NaN state stays NaN, which max() need not keep.)
      `let mm = jf_max(shm[${d}], shm[${o}]);`,
      // exp(a - mm) with equal terms is 1 even when both are +inf (where the subtraction gives NaN).
      `if (mm > ${NEG_INF}) { shs[${d}] = shs[${d}] * select(exp(shm[${d}] - mm), 1.0, shm[${d}] == mm) + shs[${o}] * select(exp(shm[${o}] - mm), 1.0, shm[${o}] == mm); }`,
      `shm[${d}] = mm;`,
    ]),
  ],
  // The subgroup's maximum, every sum rescaled to it and added; NaN anywhere makes it NaN.
  subgroup: [
    "let anyNan = subgroupAny(jf_isnan(m));",
    "let sm = subgroupMax(m);",
    "acc = subgroupAdd(acc * select(exp(m - sm), 1.0, m == sm));",
    "m = select(sm, jf_f32bits(0x7fc00000u), anyNan);",
  ],
  result: (at) => (at === null ? "m + log(acc)" : `shm[${at}] + log(shs[${at}])`),
};

const variantOf = (k: KernelBuilder, op: string, nOut: number, nr: number) =>
  reduceVariantFor(k.features, op, nOut, nr);

// Where a row's values are: output index `o`, the lane's first value and step, the row's bound.
interface Rows {
  readonly o: string;
  readonly start: string;
  readonly bound: string;
  readonly step: string;
}

/**
 * The frame of a reduction with variant `v`: `accumulate(rows)` emits the accumulation (after
 * `acc.init`), then the lanes' states merge; returns the shared index of the row's merged state
 * (null: one thread per row, the state is its own). `valid` guards rows past the end.
 */
function rowsFrame(
  k: KernelBuilder,
  acc: Accumulator,
  v: ReduceVariant,
  nOut: number,
  nr: number,
  accumulate: (rows: Rows) => void,
): { at: string | null; o: string } {
  if (v.lanes === 1) {
    // One thread per output: enough parallelism already, no synchronization.
    k.lines.push(`if (tid >= ${k.u(nOut)}) { return; }`, ...acc.init);
    accumulate({ o: "tid", start: "0u", bound: k.u(nr), step: "1u" });
    k.lines.push(...acc.finish);
    return { at: null, o: "tid" };
  }
  // `lanes` threads per output: strided partial states, then merged in workgroup memory.
  const L = v.lanes, per = v.wg / L;
  k.workgroup.push(...acc.shared(v.wg));
  if (per === 1) k.lines.push("let lane = lid.x;", "let base = 0u;", "let o = wg;");
  else k.lines.push(`let lane = lid.x % ${L}u;`, "let base = lid.x - lane;", `let o = wg * ${per}u + lid.x / ${L}u;`);
  k.lines.push(`let valid = o < ${k.u(nOut)};`, ...acc.init);
  accumulate({ o: "o", start: "lane", bound: `select(0u, ${k.u(nr)}, valid)`, step: `${L}u` });
  k.lines.push(...acc.finish);
  if (v.subgroup) {
    // Subgroups merge first; their first invocations' states then merge by the same tree as lanes'
    // (the others contribute the empty state, as nothing says how subgroups are laid out).
    k.enables.add("subgroups");
    k.builtins.add("@builtin(subgroup_invocation_id) sgi: u32");
    k.lines.push(...acc.subgroup, ...nest("if (sgi == 0u) {", acc.toShared("lid.x")));
    k.lines.push(...nest("if (sgi != 0u) {", acc.identity("lid.x")));
  } else k.lines.push(...acc.toShared("lid.x"));
  k.lines.push(
    "workgroupBarrier();",
    ...nest(`for (var w = ${L / 2}u; w > 0u; w >>= 1u) {`, [
      ...nest("if (lane < w) {", acc.merge("lid.x", "lid.x + w")),
      "workgroupBarrier();",
    ]),
  );
  return { at: "base", o: "o" };
}

const launch = (v: ReduceVariant, nOut: number, body: string[]): KernelBody =>
  v.lanes === 1
    ? { body, threads: nOut, workgroupSize: v.wg }
    : { body, threads: Math.ceil(nOut / (v.wg / v.lanes)) * v.wg, workgroupSize: v.wg };

export function reduceKernel(k: KernelBuilder, out: Node, axes: readonly number[], acc: Accumulator): KernelBody {
  const x = out.src[0];
  const red = axes.map((a) => x.shape[a]);
  const nr = sizeOf(red), nOut = sizeOf(out.shape);
  const inputIndex = (oIdx: string[], rIdx: string[]) => {
    let i = 0, j = 0;
    return x.shape.map((_, a) => (axes.includes(a) ? rIdx[j++] : oIdx[i++]));
  };
  const v = variantOf(k, reductionOp(out.op, x.ndim, axes), nOut, nr);
  const { at, o } = rowsFrame(k, acc, v, nOut, nr, ({ o, start, bound, step }) => {
    const oIdx = k.unravel(o, out.shape);
    k.lines.push(...blockedLoop(
      acc,
      start,
      bound,
      step,
      k.block(() => k.lines.push(...acc.update(k.value(x, inputIndex(oIdx, k.unravel("r", red)))))),
    ));
  });
  const store = `out[${o}] = ${k.toStore(acc.result(at), out.dtype)};`;
  k.lines.push(at === null ? store : `if (valid && lid.x == ${at === "0u" ? "0u" : "base"}) { ${store} }`);
  return launch(v, nOut, k.lines);
}

// Softmax rows: one pass for (max, sum), a second that writes exp(x - max) / sum.
export function softmaxKernel(k: KernelBuilder, out: Node): KernelBody {
  const x = out.src[0];
  const n = x.shape[x.ndim - 1], rows = sizeOf(out.shape.slice(0, -1)), lead = out.shape.slice(0, -1);
  const pass = (acc: Accumulator, { o, start, bound, step }: Rows, body: (v: string, at: string) => string[]) => {
    const rIdx = k.unravel(o, lead);
    return blockedLoop(
      acc,
      start,
      bound,
      step,
      k.block(() => k.lines.push(...body(k.value(x, [...rIdx, "r"]), `${o} * ${k.u(n)} + r`))),
    );
  };
  const v = variantOf(k, "softmax", rows, n);
  let rows0: Rows | null = null;
  // The first pass sums (blocked, as lseAcc wants); the second only writes.
  const { at } = rowsFrame(k, lseAcc, v, rows, n, (r) => {
    rows0 = r;
    k.lines.push(...pass(lseAcc, r, (x) => lseAcc.update(x)));
  });
  const [m, s] = at === null ? ["m", "acc"] : ["rm", "rs"];
  if (at !== null) k.lines.push(`let rm = shm[${at}];`, `let rs = shs[${at}];`);
  const write = (x: string, i: string) => [`out[${i}] = exp(${x} - ${m}) / ${s};`];
  k.lines.push(...pass({ ...lseAcc, block: undefined }, rows0!, write));
  return launch(v, rows, k.lines);
}
