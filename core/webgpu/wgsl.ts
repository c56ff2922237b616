// WGSL vocabulary shared by the kernel builder and the lowering rules: types, constants, nesting.

import type { DType } from "../shape.ts";
import type { KernelBuilder } from "./emit.ts";

/** WGSL value type of each dtype inside expressions. */
export const VALUE_TYPE: Readonly<Record<DType, string>> = { f32: "f32", i32: "i32", bool: "bool" };
/** WGSL element type of each dtype in storage buffers (bool is stored as u32). */
export const STORE_TYPE: Readonly<Record<DType, string>> = { f32: "f32", i32: "i32", bool: "u32" };

const f32Word = new Uint32Array(1), f32View = new Float32Array(f32Word.buffer);

/** The uniform word that carries a scalar of a dtype. */
export function scalarBits(v: number, dtype: DType): number {
  if (dtype === "f32") {
    f32View[0] = v;
    return f32Word[0];
  }
  return dtype === "i32" ? v >>> 0 : v ? 1 : 0;
}

/** The zero of a dtype as a WGSL expression. */
export function zero(dtype: DType): string {
  return dtype === "f32" ? "0.0" : dtype === "i32" ? "0i" : "false";
}

/** Indents nested lines under a header and closing brace. */
export function nest(header: string, inner: readonly string[]): string[] {
  return [header, ...inner.map((l) => `  ${l}`), "}"];
}

/**
 * A `for` over `n` (a WGSL u32 expression) with the loop variable `name` (counting down from n - 1
 * when `reverse`), its body emitted by `body` into a block of its own, so values computed inside
 * stay inside.
 */
export function forLoop(k: KernelBuilder, name: string, n: string, body: () => void, reverse = false): string[] {
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
