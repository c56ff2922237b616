// WGSL for the fused delta-rule scan and its reverse: one thread per (batch, head, value column)
// (or per few columns: the scan's variants), carrying those columns of the state (K floats each)
// through time in private memory. Variants that split a column's state over several threads are
// in scan_split.ts.

import { packedLength } from "../prims/scan.ts";
import type { Node } from "../graph.ts";
import type { KernelBuilder } from "./emit.ts";
import { forLoop as loop, nest } from "./wgsl.ts";
import type { KernelBody } from "./rules.ts";
import { scanVariantFor } from "./kernel_variants.ts";
import { splitScanGradKernel, splitScanKernel } from "./scan_split.ts";

const variantOf = (k: KernelBuilder, op: string, columns: number, T: number, K: number) =>
  scanVariantFor(k.features, op, columns, T, K);

// B batch, H heads, T time, K key size, V value size; a thread owns (b, h, j) for j < V.
function column(k: KernelBuilder, B: number, H: number, V: number): [string, string, string] {
  k.lines.push(`if (tid >= ${k.u(B * H * V)}) { return; }`);
  const [b, h, j] = k.unravel("tid", [B, H, V]);
  return [b, h, j];
}

/**
 * All states: `out[b, h, t, i, j]` is state column j's entry i after token t. A thread carries
 * `cols` columns (j = c * jn + q for q < cols, jn = ceil(V / cols)): each key it loads serves them
 * all. Every column adds in the same order whatever `cols` is, so results do not change (a split
 * variant adds each dot product in another order: the same values within f32 rounding).
 */
export function deltaScanKernel(k: KernelBuilder, out: Node): KernelBody {
  const [kk, v, g, beta, s0] = out.src;
  const [B, H, T, K] = kk.shape, V = v.shape[3];
  const variant = variantOf(k, "deltaScan", B * H * V, T, K), C = variant.cols, jn = Math.ceil(V / C);
  if (variant.split > 1) return splitScanKernel(k, out, variant);
  k.lines.push(`if (tid >= ${k.u(B * H * jn)}) { return; }`);
  const [b, h, c] = k.unravel("tid", [B, H, jn]);
  // Column q of this thread, and whether it exists (the last thread's may run past V).
  const js = Array.from({ length: C }, (_, q) => (C === 1 ? c : k.let(`${c} + ${q * jn}u`, `j${q}`)));
  const live = (q: number, lines: string[]) => (q * jn + jn <= V ? lines : nest(`if (${js[q]} < ${k.u(V)}) {`, lines));
  const nT = k.u(T), nK = k.u(K), at = (q: number) => (C === 1 ? "i" : `${q * K}u + i`);
  k.lines.push(`var s: array<f32, ${K * C}>;`);
  k.lines.push(...loop(k, "i", nK, () => {
    for (let q = 0; q < C; q++) {
      // Columns past V start (and stay) at zero: their reads are clamped, their writes skipped.
      const jq = C === 1 ? js[q] : `min(${js[q]}, ${k.u(V - 1)})`;
      k.lines.push(`s[${at(q)}] = ${k.value(s0, [b, h, "i", jq])};`);
    }
  }));
  k.lines.push(...loop(k, "t", nT, () => {
    k.lines.push(`let a = exp(${k.value(g, [b, h, "t"])});`, `let be = ${k.value(beta, [b, h, "t"])};`);
    for (let q = 0; q < C; q++) k.lines.push(`var p${q} = 0.0;`);
    k.lines.push(...loop(k, "i", nK, () => {
      k.lines.push(`let kt = ${k.value(kk, [b, h, "t", "i"])};`);
      for (let q = 0; q < C; q++) k.lines.push(`s[${at(q)}] = s[${at(q)}] * a;`, `p${q} = p${q} + s[${at(q)}] * kt;`);
    }));
    for (let q = 0; q < C; q++) {
      const jq = C === 1 ? js[q] : `min(${js[q]}, ${k.u(V - 1)})`;
      k.lines.push(`let u${q} = be * (${k.value(v, [b, h, "t", jq])} - p${q});`);
    }
    k.lines.push(...loop(k, "i", nK, () => {
      k.lines.push(`let kt = ${k.value(kk, [b, h, "t", "i"])};`);
      for (let q = 0; q < C; q++) {
        k.lines.push(`s[${at(q)}] = s[${at(q)}] + kt * u${q};`);
        k.lines.push(...live(q, [`out[${k.linear([b, h, "t", "i", js[q]], out.shape)}] = s[${at(q)}];`]));
      }
    }));
  }));
  return { body: k.lines, threads: B * H * jn, workgroupSize: variant.wg };
}

/** The reverse scan, packed per column: dk (T*K), dv, dbeta, dg (T each), then ds0 (K). */
export function deltaScanGradKernel(k: KernelBuilder, out: Node): KernelBody {
  const [dS, kk, v, g, beta, s0, S] = out.src;
  const [B, H, T, K] = kk.shape, V = v.shape[3], L = packedLength(T, K);
  const variant = variantOf(k, "deltaScanGrad", B * H * V, T, K);
  if (variant.split > 1) return splitScanGradKernel(k, out, variant);
  const [b, h, j] = column(k, B, H, V);
  const nT = k.u(T), nK = k.u(K), o = k.let(`tid * ${k.u(L)}`, "o");
  k.lines.push(`var ds: array<f32, ${K}>;`, `var sp: array<f32, ${K}>;`);
  k.lines.push(...loop(k, "t", nT, () => {
    const prev = k.let("select(t - 1u, 0u, t == 0u)", "tp");
    k.lines.push(`let a = exp(${k.value(g, [b, h, "t"])});`, `let be = ${k.value(beta, [b, h, "t"])};`);
    k.lines.push(`let vv = ${k.value(v, [b, h, "t", j])};`, "var p = 0.0;", "var du = 0.0;");
    k.lines.push(...loop(k, "i", nK, () => {
      const first = k.value(s0, [b, h, "i", j]), later = k.value(S, [b, h, prev, "i", j]);
      const kt = k.value(kk, [b, h, "t", "i"]);
      k.lines.push(`sp[i] = select(${later}, ${first}, t == 0u);`);
      k.lines.push(`ds[i] = ds[i] + ${k.value(dS, [b, h, "t", "i", j])};`);
      k.lines.push(`p = p + a * sp[i] * ${kt};`, `du = du + ds[i] * ${kt};`);
    }));
    k.lines.push("let u = be * (vv - p);", "let dp = -du * be;", "var da = 0.0;");
    k.lines.push(...loop(k, "i", nK, () => {
      const kt = k.value(kk, [b, h, "t", "i"]);
      k.lines.push(`out[${o} + t * ${nK} + i] = ds[i] * u + dp * a * sp[i];`);
      k.lines.push(`let dsd = ds[i] + dp * ${kt};`, "da = da + dsd * sp[i];", "ds[i] = a * dsd;");
    }));
    const tk = k.u(T * K);
    k.lines.push(`out[${o} + ${tk} + t] = du * be;`);
    k.lines.push(`out[${o} + ${tk} + ${nT} + t] = du * (vv - p);`);
    k.lines.push(`out[${o} + ${tk} + 2u * ${nT} + t] = da * a;`);
  }, true));
  k.lines.push(...loop(k, "i", nK, () => k.lines.push(`out[${o} + ${k.u(T * (K + 3))} + i] = ds[i];`)));
  return { body: k.lines, threads: B * H * V, workgroupSize: variant.wg };
}
