// Backend selection and realization: the one place that turns pending graphs into data.

import { type Precision, realizeCpu, schedule } from "./cpu.ts";
import type { HostArray } from "./shape.ts";
import type { Tensor } from "./tensor.ts";
import { liveStats } from "./stats.ts";
import { requestGpu } from "./webgpu/device.ts";
import { WebGpuRunner } from "./webgpu/run.ts";

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
  /** The WebGPU adapter's description, or null on the CPU backend. */
  readonly adapter: string | null;
  /** True when the adapter is a software/fallback one (such as Mesa's llvmpipe). */
  readonly fallbackAdapter: boolean;
  /** Why this backend was picked, in one sentence. */
  readonly reason: string;
}

interface Active {
  readonly info: BackendInfo;
  readonly runner: WebGpuRunner | null;
}

const NAMES: readonly BackendName[] = ["cpu", "webgpu", "auto"];
const NO_ADAPTER = "no WebGPU adapter is available (navigator.gpu is missing or offered no adapter). " +
  "Without a GPU, Mesa's software adapter works: apt-get install mesa-vulkan-drivers; " +
  'or choose the CPU backend with setBackend("cpu") or JETFOLD_BACKEND=cpu';

let current: Promise<Active> | null = null;
let runner: WebGpuRunner | null = null; // kept across switches: GPU-resident tensors stay readable

async function choose(requested: BackendName, opts: BackendOptions, where: string): Promise<Active> {
  const precision = opts.precision ?? "f32";
  const cpu = (reason: string): Active => ({
    info: { name: "cpu", requested, precision, adapter: null, fallbackAdapter: false, reason },
    runner: null,
  });
  if (requested === "cpu") return cpu("requested explicitly");
  if (precision !== "f32") throw new Error(`${where}: precision "f64" exists only on the CPU backend`);
  let gpu;
  try {
    gpu = await requestGpu();
  } catch (e) {
    if (requested === "webgpu") throw new Error(`${where}: ${(e as Error).message}`);
    return cpu(`auto: WebGPU failed to start (${(e as Error).message})`);
  }
  if (gpu === null) {
    if (requested === "webgpu") throw new Error(`${where}: ${NO_ADAPTER}`);
    return cpu("auto: no WebGPU adapter found");
  }
  if (runner?.gpu !== gpu) runner = new WebGpuRunner(gpu); // a new device after a lost one
  const reason = requested === "webgpu" ? "requested explicitly" : "auto: a WebGPU adapter is available";
  return {
    info: { name: "webgpu", requested, precision, adapter: gpu.description, fallbackAdapter: gpu.fallback, reason },
    runner,
  };
}

function validate(name: unknown, opts: BackendOptions, where: string): asserts name is BackendName {
  if (!NAMES.includes(name as BackendName)) {
    throw new Error(`${where}: unknown backend ${JSON.stringify(name)}; expected "cpu", "webgpu" or "auto"`);
  }
  const p = opts.precision;
  if (p !== undefined && p !== "f32" && p !== "f64") {
    throw new Error(`${where}: precision must be "f32" or "f64", got ${JSON.stringify(p)}`);
  }
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

function active(): Promise<Active> {
  if (current === null) {
    const name = envBackend() ?? "auto";
    validate(name, {}, "JETFOLD_BACKEND");
    current = choose(name, {}, "JETFOLD_BACKEND");
  }
  return current;
}

/**
 * Selects the backend for later realizations: "cpu", "webgpu" or "auto" (the default: WebGPU
 * when an adapter exists, else the CPU). Takes effect at once; await it to learn the outcome.
 * Explicit "webgpu" without an adapter rejects with an error that says how to fix it.
 *
 * @example
 * ```ts
 * import { setBackend } from "./mod.ts";
 * const info = await setBackend("cpu", { precision: "f64" });
 * console.log(info.name); // "cpu"
 * ```
 */
export function setBackend(name: BackendName, opts: BackendOptions = {}): Promise<BackendInfo> {
  validate(name, opts, "setBackend");
  const chosen = choose(name, opts, "setBackend");
  current = chosen;
  chosen.catch(() => {}); // the caller sees the rejection; later realizations see it too
  return chosen.then((a) => a.info);
}

/**
 * Describes the backend in use (choosing it first if nothing chose yet).
 *
 * @example
 * ```ts
 * import { backendInfo } from "./mod.ts";
 * const info = await backendInfo();
 * console.log(info.name, info.adapter, info.reason);
 * ```
 */
export async function backendInfo(): Promise<BackendInfo> {
  return (await active()).info;
}

function checkLive(ts: readonly Tensor[]): void {
  for (const t of ts) {
    if (t._disposed) throw new Error(`realize: tensor of shape [${t.shape}] was disposed`);
  }
}

// The CPU interpreter needs host copies of device-resident inputs.
async function download(ts: readonly Tensor[]): Promise<void> {
  const onDevice = ts.filter((t) => t._src === null && t._data === null && t._gpu !== null);
  if (onDevice.length === 0) return;
  const host = await runner!.run(onDevice, true);
  onDevice.forEach((t, i) => (t._data = host[i]));
}

function leavesOf(ts: readonly Tensor[]): Tensor[] {
  const leaves = new Set<Tensor>(ts.filter((t) => t._src === null));
  for (const t of schedule(ts)) for (const x of t._src!.inputs) if (x._src === null) leaves.add(x);
  return [...leaves];
}

/**
 * Computes tensors without reading them back (on WebGPU: one submit, no wait). Use it to keep a
 * training loop's graph from growing when the loss is not read every step.
 *
 * @example
 * ```ts
 * import { realize, tensor } from "./mod.ts";
 * const y = tensor([1, 2]).mul(3);
 * await realize([y]);
 * ```
 */
export async function realize(ts: readonly Tensor[]): Promise<void> {
  checkLive(ts);
  const { info, runner: gpu } = await active();
  const pending = ts.filter((t) => t._src !== null);
  if (pending.length === 0) return;
  if (gpu) {
    await gpu.run(pending, false);
    return;
  }
  await download(leavesOf(pending));
  realizeCpu(pending, info.precision);
  liveStats.realizations++;
}

/**
 * Reads several tensors in one realization (on WebGPU: one submit and one readback for all).
 *
 * @example
 * ```ts
 * import { readAll, tensor } from "./mod.ts";
 * const x = tensor([1, 2, 3]);
 * const [sum, max] = await readAll([x.sum(), x.max()]);
 * ```
 */
export function readAll(ts: readonly Tensor[]): Promise<HostArray[]> {
  return realizeMany(ts);
}

/** Realizes tensors together and returns copies of their data (f32 as Float32Array). */
export async function realizeMany(ts: readonly Tensor[]): Promise<HostArray[]> {
  checkLive(ts);
  const { info, runner: gpu } = await active();
  if (gpu && ts.some((t) => t._data === null)) {
    const need = ts.filter((t) => t._data === null);
    const host = await gpu.run(need, true);
    const byTensor = new Map(need.map((t, i) => [t, host[i]]));
    return ts.map((t) => byTensor.get(t) ?? hostCopy(t));
  }
  const pending = ts.filter((t) => t._src !== null);
  await download([...leavesOf(pending), ...ts]);
  if (pending.length > 0) {
    realizeCpu(pending, info.precision);
    liveStats.realizations++;
  }
  return ts.map(hostCopy);
}

function hostCopy(t: Tensor): HostArray {
  const d = t._data!;
  return d instanceof Float64Array ? Float32Array.from(d) : d.slice();
}

/** Reads an f32 tensor at the precision it was computed in (float64 on an f64 CPU backend). */
export async function readF64(t: Tensor): Promise<Float64Array> {
  await realizeMany([t]);
  return t._data ? Float64Array.from(t._data) : Float64Array.from(await t.data());
}
