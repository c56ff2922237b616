// The delta-rule scans with one value column shared by `split` threads (the scan's split
// variants): thread `lane` of a column carries state entries i = lane + split * r, so each holds
// K / split floats instead of K. Per token, the dot products over i (the state times the key in the
// forward scan; those and the decay's gradient in the reverse one) are partial sums that merge
// through workgroup memory, every lane adding the `split` partials in the same order. Threads of
// one workgroup cover wg / split columns side by side, lane-major, so adjacent threads read
// adjacent values and write adjacent state columns. No thread returns early: each reaches every
// barrier, and threads past the last column only skip their writes.

import { packedLength } from "../prims/scan.ts";
import type { Node } from "../graph.ts";
import type { KernelBuilder } from "./emit.ts";
import type { KernelBody } from "./rules.ts";
import type { ScanVariant } from "./kernel_variants.ts";
import { forLoop, nest } from "./wgsl.ts";

interface Frame {
  /** The column's batch, head and value index (clamped to the last column past the end). */
  readonly b: string;
  readonly h: string;
  readonly j: string;
  /** Emits `i`, this thread's state entry r, as a WGSL let. */
  readonly entry: () => void;
  /** Sums each named f32 partial over the column's lanes into `<name>t`; two barriers. */
  readonly merge: (names: readonly string[]) => void;
  readonly R: number;
  readonly body: (lines: string[]) => KernelBody;
}

function frame(k: KernelBuilder, v: ScanVariant, B: number, H: number, V: number, K: number, parts: number): Frame {
  const S = v.split, C = v.wg / S, R = K / S, n = B * H * V;
  for (let slot = 0; slot < parts; slot++) k.workgroup.push(`var<workgroup> jf_part${slot}: array<f32, ${v.wg}>;`);
  // WGSL lets: `lane` (0..S-1 within the column), `col` (the column's linear index; past the last
  // one for a ragged workgroup's spare threads) and `live` (whether that column exists).
  k.lines.push(`let lane = lid.x / ${C}u;`, `let col = wg * ${C}u + lid.x % ${C}u;`);
  k.lines.push(`let live = col < ${k.u(n)};`);
  const [b, h, j] = k.unravel(`min(col, ${k.u(n - 1)})`, [B, H, V]);
  return {
    b,
    h,
    j,
    R,
    entry: () => k.lines.push(`let i = lane + ${S}u * r;`),
    merge: (names) => {
      names.forEach((p, slot) => k.lines.push(`jf_part${slot}[lid.x] = ${p};`));
      k.lines.push("workgroupBarrier();");
      for (const p of names) k.lines.push(`var ${p}t = 0.0;`);
      k.lines.push(
        ...nest(`for (var q = 0u; q < ${S}u; q++) {`, [
          `let at = q * ${C}u + lid.x % ${C}u;`,
          ...names.map((p, slot) => `${p}t = ${p}t + jf_part${slot}[at];`),
        ]),
      );
      k.lines.push("workgroupBarrier();");
    },
    body: (lines) => ({ body: lines, threads: Math.ceil(n / C) * v.wg, workgroupSize: v.wg }),
  };
}

/** All states, as deltaScanKernel computes them, with `v.split` threads per value column. */
export function splitScanKernel(k: KernelBuilder, out: Node, v: ScanVariant): KernelBody {
  const [kk, vv, g, beta, s0] = out.src;
  const [B, H, T, K] = kk.shape, V = vv.shape[3];
  const f = frame(k, v, B, H, V, K, 1), { b, h, j } = f, nT = k.u(T), nR = `${f.R}u`;
  k.lines.push(`var s: array<f32, ${f.R}>;`);
  k.lines.push(...forLoop(k, "r", nR, () => {
    f.entry();
    k.lines.push(`s[r] = ${k.value(s0, [b, h, "i", j])};`);
  }));
  k.lines.push(...forLoop(k, "t", nT, () => {
    k.lines.push(`let a = exp(${k.value(g, [b, h, "t"])});`, `let be = ${k.value(beta, [b, h, "t"])};`);
    k.lines.push("var p = 0.0;");
    k.lines.push(...forLoop(k, "r", nR, () => {
      f.entry();
      k.lines.push("s[r] = s[r] * a;", `p = p + s[r] * ${k.value(kk, [b, h, "t", "i"])};`);
    }));
    f.merge(["p"]);
    k.lines.push(`let u = be * (${k.value(vv, [b, h, "t", j])} - pt);`);
    k.lines.push(...forLoop(k, "r", nR, () => {
      f.entry();
      k.lines.push(`s[r] = s[r] + ${k.value(kk, [b, h, "t", "i"])} * u;`);
      k.lines.push(...nest(`if (live) {`, [`out[${k.linear([b, h, "t", "i", j], out.shape)}] = s[r];`]));
    }));
  }));
  return f.body(k.lines);
}

/** The reverse scan, packed per column as deltaScanGradKernel packs it, `v.split` threads a column. */
export function splitScanGradKernel(k: KernelBuilder, out: Node, v: ScanVariant): KernelBody {
  const [dS, kk, vv, g, beta, s0, S] = out.src;
  const [B, H, T, K] = kk.shape, V = vv.shape[3], L = packedLength(T, K);
  const f = frame(k, v, B, H, V, K, 2), { b, h, j } = f, nT = k.u(T), nK = k.u(K), nR = `${f.R}u`;
  const o = k.let(`col * ${k.u(L)}`, "o");
  const put = (at: string, value: string) => k.lines.push(...nest(`if (live) {`, [`out[${at}] = ${value};`]));
  k.lines.push(`var ds: array<f32, ${f.R}>;`, `var sp: array<f32, ${f.R}>;`);
  k.lines.push(...forLoop(k, "t", nT, () => {
    const prev = k.let("select(t - 1u, 0u, t == 0u)", "tp");
    k.lines.push(`let a = exp(${k.value(g, [b, h, "t"])});`, `let be = ${k.value(beta, [b, h, "t"])};`);
    k.lines.push(`let vv = ${k.value(vv, [b, h, "t", j])};`, "var p = 0.0;", "var du = 0.0;");
    k.lines.push(...forLoop(k, "r", nR, () => {
      f.entry();
      const first = k.value(s0, [b, h, "i", j]), later = k.value(S, [b, h, prev, "i", j]);
      const kt = k.value(kk, [b, h, "t", "i"]);
      k.lines.push(`sp[r] = select(${later}, ${first}, t == 0u);`);
      k.lines.push(`ds[r] = ds[r] + ${k.value(dS, [b, h, "t", "i", j])};`);
      k.lines.push(`p = p + a * sp[r] * ${kt};`, `du = du + ds[r] * ${kt};`);
    }));
    f.merge(["p", "du"]);
    k.lines.push("let u = be * (vv - pt);", "let dp = -dut * be;", "var da = 0.0;");
    k.lines.push(...forLoop(k, "r", nR, () => {
      f.entry();
      const kt = k.value(kk, [b, h, "t", "i"]);
      put(`${o} + t * ${nK} + i`, "ds[r] * u + dp * a * sp[r]");
      k.lines.push(`let dsd = ds[r] + dp * ${kt};`, "da = da + dsd * sp[r];", "ds[r] = a * dsd;");
    }));
    f.merge(["da"]);
    const tk = k.u(T * K);
    k.lines.push(...nest(`if (lane == 0u && live) {`, [
      `out[${o} + ${tk} + t] = dut * be;`,
      `out[${o} + ${tk} + ${nT} + t] = dut * (vv - pt);`,
      `out[${o} + ${tk} + 2u * ${nT} + t] = dat * a;`,
    ]));
  }, true));
  k.lines.push(...forLoop(k, "r", nR, () => {
    f.entry();
    put(`${o} + ${k.u(T * (K + 3))} + i`, "ds[r]");
  }));
  return f.body(k.lines);
}
