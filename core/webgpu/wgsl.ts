// WGSL vocabulary shared by the kernel builder and the lowering rules: types, constants, nesting.

import type { DType } from "../shape.ts";

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
