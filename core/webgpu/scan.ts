// WGSL for the fused delta-rule scan and its reverse: one thread per (batch, head, value column),
// carrying that column of the state (K floats) through time in private memory.

import { packedLength } from "../prims/scan.ts";
import type { Node } from "../graph.ts";
import type { KernelBuilder } from "./emit.ts";
import { nest } from "./wgsl.ts";
import type { KernelBody } from "./rules.ts";

// B batch, H heads, T time, K key size, V value size; a thread owns (b, h, j) for j < V.
function column(k: KernelBuilder, B: number, H: number, V: number): [string, string, string] {
  k.lines.push(`if (tid >= ${k.u(B * H * V)}) { return; }`);
  const [b, h, j] = k.unravel("tid", [B, H, V]);
  return [b, h, j];
}

// Runs `body` in a `for` over `n` with the loop variable `name`, values computed inside stay inside.
function loop(k: KernelBuilder, name: string, n: string, body: () => void, reverse = false): string[] {
  const header = reverse
    ? `for (var ${name}r = 0u; ${name}r < ${n}; ${name}r++) {`
    : `for (var ${name} = 0u; ${name} < ${n}; ${name}++) {`;
  return nest(
    header,
    k.block(() => {
      if (reverse) k.lines.push(`let ${name} = ${n} - 1u - ${name}r;`);
      body();
    }),
  );
}

/** All states: `out[b, h, t, i, j]` is state column j's entry i after token t. */
export function deltaScanKernel(k: KernelBuilder, out: Node): KernelBody {
  const [kk, v, g, beta, s0] = out.src;
  const [B, H, T, K] = kk.shape, V = v.shape[3];
  const [b, h, j] = column(k, B, H, V);
  const nT = k.u(T), nK = k.u(K);
  k.lines.push(`var s: array<f32, ${K}>;`);
  k.lines.push(...loop(k, "i", nK, () => k.lines.push(`s[i] = ${k.value(s0, [b, h, "i", j])};`)));
  k.lines.push(...loop(k, "t", nT, () => {
    k.lines.push(`let a = exp(${k.value(g, [b, h, "t"])});`, "var p = 0.0;");
    k.lines.push(
      ...loop(k, "i", nK, () => k.lines.push("s[i] = s[i] * a;", `p = p + s[i] * ${k.value(kk, [b, h, "t", "i"])};`)),
    );
    k.lines.push(`let u = ${k.value(beta, [b, h, "t"])} * (${k.value(v, [b, h, "t", j])} - p);`);
    k.lines.push(...loop(k, "i", nK, () => {
      k.lines.push(`s[i] = s[i] + ${k.value(kk, [b, h, "t", "i"])} * u;`);
      k.lines.push(`out[${k.linear([b, h, "t", "i", j], out.shape)}] = s[i];`);
    }));
  }));
  return { body: k.lines, threads: B * H * V, workgroupSize: 64 };
}

/** The reverse scan, packed per column: dk (T*K), dv, dbeta, dg (T each), then ds0 (K). */
export function deltaScanGradKernel(k: KernelBuilder, out: Node): KernelBody {
  const [dS, kk, v, g, beta, s0, S] = out.src;
  const [B, H, T, K] = kk.shape, V = v.shape[3], L = packedLength(T, K);
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
  return { body: k.lines, threads: B * H * V, workgroupSize: 64 };
}
