// The WGSL builder: inlines fused expressions per output index, with sizes passed as uniforms.

import type { Node } from "../graph.ts";
import { type DType, type Shape, sizeOf } from "../shape.ts";
import { hostValue } from "../storage.ts";
import type { StridedView } from "./matmul.ts";
import type { WgslRules } from "./rules.ts";
import type { MatmulVariant } from "./variants.ts";
import type { ReduceVariant, ScanVariant } from "./kernel_variants.ts";
import { scalarBits, STORE_TYPE, zero } from "./wgsl.ts";

export { nest, scalarBits, STORE_TYPE, VALUE_TYPE, zero } from "./wgsl.ts";

/** Helper functions, emitted into a kernel only when an expression uses them. */
const HELPERS: Readonly<Record<string, string>> = {
  // The f32 with these bits. Infinities and NaNs come through it: WGSL constant expressions must be
  // finite (Tint rejects bitcast<f32>(0x7f800000u)), and a user function's result never is one.
  jf_f32bits: "fn jf_f32bits(w: u32) -> f32 { return bitcast<f32>(w); }",
  // NaN tested by its bits: shader compilers may fold x != x to false.
  jf_isnan: "fn jf_isnan(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; }",
  jf_tanh: "fn jf_tanh(x: f32) -> f32 { return select(tanh(clamp(x, -15.0, 15.0)), x, jf_isnan(x)); }",
  jf_max: "fn jf_max(a: f32, b: f32) -> f32 { return select(max(a, b), a + b, jf_isnan(a) || jf_isnan(b)); }",
  jf_udiv: `fn jf_udiv(n: u32, d: u32, inv: f32) -> u32 {
  let q = u32(f32(n) * inv);
  let r = i32(n) - i32(q * d);
  return select(select(q, q + 1u, r >= i32(d)), q - 1u, r < 0i);
}`,
  // sin(x + k pi/2) for the quadrant shift k (cos: k = 1), for adapters whose own sin and cos are
  // coarse (WGSL allows an absolute error of 2^-11): x is reduced to [-pi/4, pi/4] against pi/4 in
  // three parts, then minimax polynomials (Cephes' sinf and cosf): about 1 ulp for |x| < 8192.
  jf_sincos: `fn jf_sincos(x: f32, k: i32) -> f32 {
  let ax = abs(x);
  var j = i32(ax * 1.2732395447351628);
  j = j + (j & 1);
  let y = f32(j);
  let r = ((ax - y * 0.78515625) - y * 2.4187564849853515625e-4) - y * 3.77489497744594108e-8;
  let z = r * r;
  let s = ((-1.9515295891e-4 * z + 8.3321608736e-3) * z - 1.6666654611e-1) * z * r + r;
  let c = ((2.443315711809948e-5 * z - 1.388731625493765e-3) * z + 4.166664568298827e-2) * z * z - 0.5 * z + 1.0;
  // x = (n pi/2 + r) with the sign of x: the quadrant q of x + k pi/2 picks +-sin or +-cos of r.
  let neg = x < 0.0;
  let n = j >> 1u;
  let q = select(n, -n, neg) + k;
  let v = select(select(s, -s, neg), c, (q & 1) == 1);
  let out = select(v, -v, (q & 2) == 2);
  return select(out, jf_f32bits(0x7fc00000u), (bitcast<u32>(x) & 0x7fffffffu) >= 0x7f800000u);
}`,
  jf_idiv: "fn jf_idiv(a: i32, b: i32) -> i32 { return select(a / select(b, 1i, b == 0i), 0i, b == 0i); }",
  jf_pow: `fn jf_pow(a: f32, b: f32) -> f32 {
  if (b == 0.0) { return 1.0; }
  if (b == 1.0) { return a; }
  if (b == 2.0) { return a * a; }
  if (b == 3.0) { return a * a * a; }
  if (b == -1.0) { return 1.0 / a; }
  if (b == 0.5) { return sqrt(a); }
  if (a > 0.0) { return exp2(b * log2(a)); }
  if (a == 0.0) { return select(0.0, jf_f32bits(0x7f800000u), b < 0.0); }
  if (fract(b) != 0.0) { return jf_f32bits(0x7fc00000u); }
  let m = exp2(b * log2(-a));
  return select(m, -m, fract(b * 0.5) != 0.0);
}`,
};

/** What kernels adapt to about a device, beyond its limits. */
export interface KernelFeatures {
  /** sin and cos come from jetfold's own helper: the device's builtins are coarse. */
  readonly ownTrig: boolean;
  /**
   * The matmul variant measured fastest for a product of this size on the device (see tune.ts),
   * or undefined for the built-in choice.
   */
  readonly matmulVariant?: (batch: number, M: number, N: number, K: number) => MatmulVariant | undefined;
  /** The reduction variant measured fastest for a size (kernel_variants.ts), or undefined. */
  readonly reduceVariant?: (op: string, nOut: number, nr: number) => ReduceVariant | undefined;
  /** The delta-rule scan variant measured fastest for a size, or undefined. */
  readonly scanVariant?: (op: string, columns: number, T: number, K: number) => ScanVariant | undefined;
  /** The device was opened with `subgroups`: kernels may use subgroup operations. */
  readonly subgroups?: boolean;
  /** Changes whenever the variant functions' answers do: part of the plan cache's key. */
  readonly tuning?: string;
}

/** Features of a device whose builtins are accurate. */
export const DEFAULT_FEATURES: KernelFeatures = { ownTrig: false };

/** How the planner classifies a tensor that a kernel reads. */
export interface Sources {
  /** The tensor has a device buffer by the time the kernel runs. */
  isBuffer(t: Node): boolean;
  /** The tensor is a one-element host constant, passed as a uniform. */
  isScalar(t: Node): boolean;
  /** The tensor as a strided view of a buffer, or null when it must be computed. */
  strided(t: Node): StridedView | null;
  /** The tensor is an elementwise op of its inputs at the same index (a matmul prologue may hold it). */
  isMap(t: Node): boolean;
}

/** One storage binding of a kernel. */
export interface Binding {
  readonly tensor: Node;
  readonly type: string;
}

/** One kernel being built: its bindings, uniform words, helpers and body lines. */
export class KernelBuilder {
  readonly uniforms: number[] = [];
  readonly bindings: Binding[] = [];
  readonly helpers = new Set<string>();
  readonly workgroup: string[] = [];
  /** WGSL extensions the kernel enables ("subgroups"). */
  readonly enables = new Set<string>();
  /** Extra builtin parameters of the entry point ("@builtin(subgroup_invocation_id) sgi: u32"). */
  readonly builtins = new Set<string>();
  /** Uniform words that hold a scalar leaf's value: they change between runs of a cached plan. */
  readonly scalars: [number, Node][] = [];
  lines: string[] = [];
  #memo = new Map<string, string>();
  #names = 0;
  /** The primitives this kernel computes inline (views included), in first-use order, for the profiler. */
  readonly fused = new Set<string>();
  /** Values computed here rather than read from buffers; several for a fused elementwise group. */
  readonly roots: readonly Node[];
  /** The roots that are written out (the others are only used inside the kernel). */
  readonly outputs: readonly Node[];
  /** The first root, for kernels of a single primitive. */
  readonly root: Node;
  readonly src: Sources;
  readonly #rootSet: ReadonlySet<Node>;

  readonly #rules: WgslRules;
  readonly features: KernelFeatures;

  constructor(
    rules: WgslRules,
    roots: readonly Node[],
    src: Sources,
    outputs: readonly Node[] = roots,
    features: KernelFeatures = DEFAULT_FEATURES,
  ) {
    this.#rules = rules;
    this.features = features;
    this.roots = roots;
    this.outputs = outputs;
    this.root = roots[0];
    this.#rootSet = new Set(roots);
    this.src = src;
  }

  /** The storage binding that output `i` is written to. */
  out(i = 0): string {
    return this.outputs.length === 1 ? "out" : `out${i}`;
  }

  /** A u32 uniform holding `v` (sizes, strides, offsets: kept out of the WGSL text for caching). */
  u(v: number): string {
    const k = this.uniforms.length;
    this.uniforms.push(v >>> 0);
    return `P.v[${k >> 2}].${"xyzw"[k & 3]}`;
  }

  /** A uniform scalar constant of a dtype, stored by its bits (`scalarBits` gives the word). */
  constant(v: number, dtype: DType): string {
    const word = this.u(scalarBits(v, dtype));
    return dtype === "f32" ? `bitcast<f32>(${word})` : dtype === "i32" ? `bitcast<i32>(${word})` : `(${word} != 0u)`;
  }

  /** Marks a helper function as used and returns its name. */
  helper(name: keyof typeof HELPERS): string {
    this.helpers.add(name);
    return name;
  }

  /** Binds `expr` to a fresh `let` and returns its name. */
  let(expr: string, prefix = "v"): string {
    const name = `${prefix}${this.#names++}`;
    this.lines.push(`let ${name} = ${expr};`);
    return name;
  }

  /** A fresh variable name. */
  fresh(prefix: string): string {
    return `${prefix}${this.#names++}`;
  }

  /** Declares that `t` at multi-index `idx` is the WGSL expression `expr` (e.g. a matmul accumulator). */
  provide(t: Node, idx: readonly string[], expr: string): void {
    this.#memo.set(`${t.id}@${idx.join(",")}`, expr);
  }

  /** Emits `fn` into a nested block: values computed inside are not reused outside it. */
  block(fn: () => void): string[] {
    const [lines, memo] = [this.lines, this.#memo];
    this.lines = [];
    this.#memo = new Map(memo);
    fn();
    const inner = this.lines;
    [this.lines, this.#memo] = [lines, memo];
    return inner;
  }

  /** The name of a storage binding for `t` read as `type` elements (deduplicated). */
  bind(t: Node, type = `array<${STORE_TYPE[t.dtype]}>`): string {
    let k = this.bindings.findIndex((b) => b.tensor === t && b.type === type);
    if (k < 0) k = this.bindings.push({ tensor: t, type }) - 1;
    return `b${k}`;
  }

  /** Row-major offset of a multi-index into a contiguous `shape` (size-1 axes skipped). */
  linear(idx: readonly string[], shape: Shape): string {
    const terms: string[] = [];
    let stride = 1;
    for (let j = shape.length - 1; j >= 0; j--) {
      if (shape[j] !== 1) terms.push(stride === 1 && terms.length === 0 ? idx[j] : `${idx[j]} * ${this.u(stride)}`);
      stride *= shape[j];
    }
    return terms.length === 0 ? "0u" : terms.reverse().join(" + ");
  }

  /**
   * `[n / d, n % d]` for a u32 expression `n < bound`. Integer division by a runtime value is
   * scalarized (slow) on CPU-backed adapters, so powers of two use shifts and other divisors a
   * float reciprocal with a one-step correction (exact while `bound <= 2^24`).
   */
  divmod(n: string, d: number, bound: number): [string, string] {
    if (d === 1) return [n, "0u"];
    if ((d & (d - 1)) === 0) return [`(${n} >> ${this.u(Math.log2(d))})`, `(${n} & ${this.u(d - 1)})`];
    const dd = this.u(d);
    const q = bound <= 2 ** 24
      ? this.let(`${this.helper("jf_udiv")}(${n}, ${dd}, bitcast<f32>(${this.u(scalarBits(1 / d, "f32"))}))`, "q")
      : this.let(`${n} / ${dd}`, "q");
    return [q, `(${n} - ${q} * ${dd})`];
  }

  /** Multi-index of a linear position in a contiguous `shape`, bound to lets. */
  unravel(lin: string, shape: Shape): string[] {
    const out = new Array<string>(shape.length).fill("0u");
    const outer = shape.findIndex((d) => d !== 1);
    let rest = lin, bound = sizeOf(shape);
    for (let j = shape.length - 1; j > outer && outer >= 0; j--) {
      if (shape[j] === 1) continue;
      const [q, r] = this.divmod(rest, shape[j], bound);
      out[j] = this.let(r, "i");
      rest = q;
      bound = Math.ceil(bound / shape[j]);
    }
    if (outer >= 0) out[outer] = rest === lin ? lin : rest;
    return out;
  }

  /** Converts a stored element to its value type. */
  fromStore(expr: string, dtype: DType): string {
    return dtype === "bool" ? `(${expr} != 0u)` : expr;
  }

  /** Converts a value to its stored element type. */
  toStore(expr: string, dtype: DType): string {
    return dtype === "bool" ? `select(0u, 1u, ${expr})` : expr;
  }

  /** The value of `t` at multi-index `idx`, inlining its pending graph down to buffers and constants. */
  value(t: Node, idx: readonly string[]): string {
    if (!this.#rootSet.has(t) && this.src.isScalar(t)) {
      const key = `${t.id}`;
      let name = this.#memo.get(key);
      if (name === undefined) {
        this.scalars.push([this.uniforms.length, t]);
        name = this.let(this.constant(hostValue(t)![0], t.dtype), "c");
        this.#memo.set(key, name);
      }
      return name;
    }
    const key = `${t.id}@${idx.join(",")}`;
    const hit = this.#memo.get(key);
    if (hit !== undefined) return hit;
    let name: string;
    if (!this.#rootSet.has(t) && this.src.isBuffer(t)) {
      name = this.let(this.fromStore(`${this.bind(t)}[${this.linear(idx, t.shape)}]`, t.dtype));
    } else {
      if (t.op === "data") throw new Error(`webgpu: node ${t.id} has neither a buffer nor a computation`);
      const rule = this.#rules[t.op];
      this.fused.add(t.op);
      // deno-lint-ignore no-explicit-any
      const p = t.params as any;
      if (rule.kind === "map") {
        name = this.let(rule.expr(this, t.src.map((x) => this.value(x, idx)), t.src, t, p));
      } else if (rule.kind === "view") {
        const { idx: inner, valid } = rule.index(this, idx, t.src[0], t, p);
        const v = this.value(t.src[0], inner);
        name = valid === undefined ? v : this.let(`select(${zero(t.dtype)}, ${v}, ${valid})`);
      } else if (rule.kind === "expr") {
        name = rule.emit(this, idx, t, p);
      } else {
        throw new Error(`webgpu: ${t.op} must be its own kernel, not inlined`);
      }
    }
    this.#memo.set(key, name);
    return name;
  }

  /** The complete WGSL module for a body with `workgroupSize` threads per workgroup. */
  source(body: readonly string[], workgroupSize: number): string {
    const decl: string[] = [];
    if (this.uniforms.length > 0) {
      decl.push(`struct Params { v: array<vec4<u32>, ${Math.ceil(this.uniforms.length / 4)}> }`);
      decl.push("@group(0) @binding(0) var<uniform> P: Params;");
    }
    this.bindings.forEach((b, k) => decl.push(`@group(0) @binding(${k + 1}) var<storage, read> b${k}: ${b.type};`));
    this.outputs.forEach((r, i) => {
      const binding = this.bindings.length + 1 + i;
      decl.push(
        `@group(0) @binding(${binding}) var<storage, read_write> ${this.out(i)}: array<${STORE_TYPE[r.dtype]}>;`,
      );
    });
    decl.push(...this.workgroup);
    // Helpers named in the body or in other helpers come along (e.g. jf_isnan inside jf_max).
    const used = new Set(this.helpers), text = () => [...body, ...[...used].map((h) => HELPERS[h])].join("\n");
    for (let grew = true; grew;) {
      grew = false;
      for (const h of Object.keys(HELPERS)) if (!used.has(h) && text().includes(`${h}(`)) [grew] = [true, used.add(h)];
    }
    for (const h of [...used].sort()) decl.push(HELPERS[h]);
    return [
      ...[...this.enables].map((e) => `enable ${e};`),
      ...decl,
      `@compute @workgroup_size(${workgroupSize})`,
      "fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,",
      `        @builtin(local_invocation_id) lid: vec3<u32>${[...this.builtins].map((b) => `, ${b}`).join("")}) {`,
      `  let wg = wid.x + wid.y * nwg.x;`,
      `  let tid = wg * ${workgroupSize}u + lid.x;`,
      ...body.map((l) => `  ${l}`),
      "}",
    ].join("\n");
  }
}
