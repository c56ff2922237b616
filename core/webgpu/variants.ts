// The matmul kernel variants a device may be tuned to: register tiles (each thread loads its own
// operands) and workgroup-memory tiles (a workgroup stages blocks of A and B in shared memory).

/**
 * A matmul kernel's parameters. `register`: each thread computes `rows` x 4`groups` outputs from
 * operands it loads itself (what load-bound software adapters want). `workgroup`: a workgroup of
 * `wx` x `wy` threads stages a (wy rows) x `depth` block of A and a `depth` x (wx columns) block of
 * B in workgroup memory per step of the contraction, each thread still computing rows x 4groups
 * outputs, so every loaded element serves wx (or wy) threads (what GPUs with fast shared memory
 * want). Both add each output's products in the same order (k ascending, one at a time).
 */
export type MatmulVariant =
  | { readonly kind: "register"; readonly rows: number; readonly groups: number }
  | {
    readonly kind: "workgroup";
    readonly rows: number;
    readonly groups: number;
    readonly wx: number;
    readonly wy: number;
    readonly depth: number;
  };

const register = (rows: number, groups: number): MatmulVariant => ({ kind: "register", rows, groups });
const workgroup = (wx: number, wy: number, rows: number, groups: number, depth: number): MatmulVariant => ({
  kind: "workgroup",
  rows,
  groups,
  wx,
  wy,
  depth,
});

/**
 * Every variant the tuner may choose, register tiles first. The workgroup tiles keep within
 * WebGPU's default limits (256 invocations, 16 KiB of workgroup memory) and load a whole number
 * of staged elements per thread.
 */
export const VARIANTS: readonly MatmulVariant[] = [
  register(4, 1),
  register(4, 2),
  register(8, 1),
  register(8, 2),
  register(16, 1),
  register(16, 2),
  workgroup(8, 8, 4, 1, 16), // 32 x 32 block, 64 threads
  workgroup(16, 16, 4, 1, 16), // 64 x 64, 256 threads
  workgroup(8, 8, 8, 2, 16), // 64 x 64, 64 threads
  workgroup(16, 16, 8, 1, 8), // 128 x 64, 256 threads
];

/** A variant's name, as profiles, benchmarks and the tuner's cache file show it. */
export function variantName(v: MatmulVariant): string {
  const tile = `${v.rows}x${4 * v.groups}`;
  if (v.kind === "register") return `tile ${tile}`;
  return `wg ${v.wy * v.rows}x${v.wx * 4 * v.groups}x${v.depth} tile ${tile}`;
}

/** The variant of this name among VARIANTS, or undefined. */
export function variantNamed(name: string): MatmulVariant | undefined {
  return VARIANTS.find((v) => variantName(v) === name);
}

/** Bytes of workgroup memory a variant stages (0 for register tiles). */
export function stagedBytes(v: MatmulVariant): number {
  return v.kind === "register" ? 0 : 4 * v.depth * (v.wy * v.rows + v.wx * 4 * v.groups);
}

/**
 * The built-in register tile: rows, and column groups of 4. Bigger tiles mean more FMAs per load
 * (the lever on load-bound adapters) but fewer threads and longer shader compiles, so large
 * products take 16 rows, small ones 8 or 4; 8 columns where N allows (measured on llvmpipe:
 * 1024^3 went from 12 to 25 GFLOP/s; 16 columns gained 5% more for a much slower compile).
 */
export function builtInVariant(batch: number, M: number, N: number): MatmulVariant {
  const G = N >= 8 ? 2 : 1;
  const threads = (tm: number) => batch * Math.ceil(M / tm) * Math.ceil(N / (4 * G));
  const rows = M >= 16 && threads(16) >= 8192 ? 16 : M >= 8 ? 8 : 4;
  return VARIANTS.find((v) => v.kind === "register" && v.rows === rows && v.groups === G)!;
}
