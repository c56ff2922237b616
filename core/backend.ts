// Backend selection and realization: the one place that turns pending graphs into data.

import { type Precision, realizeCpu } from "./cpu.ts";
import type { HostArray } from "./shape.ts";
import type { Tensor } from "./tensor.ts";

/** Names accepted by `setBackend` and the `JETFOLD_BACKEND` environment variable. */
export type BackendName = "cpu" | "webgpu" | "auto";

/** Options of `setBackend`. */
export interface BackendOptions {
  /** CPU backend only: compute f32 tensors in float64 (for reference checks). Default "f32". */
  readonly precision?: Precision;
}

/** What `backendInfo()` reports about the backend in use. */
export interface BackendInfo {
  /** The backend that runs computations. */
  readonly name: "cpu" | "webgpu";
  /** What was asked for, through `setBackend` or `JETFOLD_BACKEND`. */
  readonly requested: BackendName;
  /** Precision of f32 tensors on this backend. */
  readonly precision: Precision;
  /** Why this backend was picked, in one sentence. */
  readonly reason: string;
}

const NAMES: readonly BackendName[] = ["cpu", "webgpu", "auto"];
let current: BackendInfo | null = null;

function unavailableWebGpu(where: string): Error {
  return new Error(
    `${where}: the WebGPU backend is not available in this version of jetfold; ` +
      `use "cpu", or "auto" which falls back to the CPU backend`,
  );
}

function choose(requested: BackendName, opts: BackendOptions, where: string): BackendInfo {
  if (!NAMES.includes(requested)) {
    throw new Error(`${where}: unknown backend ${JSON.stringify(requested)}; expected "cpu", "webgpu" or "auto"`);
  }
  if (requested === "webgpu") throw unavailableWebGpu(where);
  const precision = opts.precision ?? "f32";
  if (precision !== "f32" && precision !== "f64") {
    throw new Error(`${where}: precision must be "f32" or "f64", got ${JSON.stringify(precision)}`);
  }
  const reason = requested === "cpu" ? "requested explicitly" : "auto: this version has no WebGPU backend yet";
  return { name: "cpu", requested, precision, reason };
}

// Reads JETFOLD_BACKEND only where env access is already granted, so computing needs no permissions.
function envBackend(): string | undefined {
  // deno-lint-ignore no-explicit-any
  const deno = (globalThis as any).Deno;
  try {
    const q = deno?.permissions?.querySync?.({ name: "env", variable: "JETFOLD_BACKEND" });
    return q?.state === "granted" ? deno.env.get("JETFOLD_BACKEND") || undefined : undefined;
  } catch {
    return undefined;
  }
}

function active(): BackendInfo {
  current ??= choose((envBackend() ?? "auto") as BackendName, {}, "JETFOLD_BACKEND");
  return current;
}

/**
 * Selects the backend for later realizations: "cpu", "webgpu" or "auto" (the default).
 *
 * @example
 * ```ts
 * import { setBackend, backendInfo } from "./mod.ts";
 * setBackend("cpu", { precision: "f64" });
 * console.log(backendInfo().name); // "cpu"
 * ```
 */
export function setBackend(name: BackendName, opts: BackendOptions = {}): BackendInfo {
  current = choose(name, opts, "setBackend");
  return current;
}

/**
 * Describes the backend in use (choosing it first if nothing chose yet).
 *
 * @example
 * ```ts
 * import { backendInfo } from "./mod.ts";
 * console.log(backendInfo().reason);
 * ```
 */
export function backendInfo(): BackendInfo {
  return active();
}

/** Realizes several tensors in one pass over their shared graph. */
export async function realize(ts: readonly Tensor[]): Promise<void> {
  for (const t of ts) {
    if (t._disposed) throw new Error(`realize: tensor of shape [${t.shape}] was disposed`);
  }
  realizeCpu(ts.filter((t) => t._src !== null), active().precision);
  await Promise.resolve();
}

/** Realizes tensors together and returns copies of their data (f32 as Float32Array). */
export async function realizeMany(ts: readonly Tensor[]): Promise<HostArray[]> {
  await realize(ts);
  return ts.map((t) => {
    const d = t._data!;
    return d instanceof Float64Array ? Float32Array.from(d) : d.slice();
  });
}

/** Reads an f32 tensor at the precision it was computed in (float64 on an f64 CPU backend). */
export async function readF64(t: Tensor): Promise<Float64Array> {
  await realize([t]);
  return Float64Array.from(t._data!);
}
