// Backends behind one interface: the interface itself, the registry, selection (setBackend,
// backendInfo), and realization, the one place that turns pending graphs into data.

import { isPending, leafNode, type Node, resolve } from "./graph.ts";
import type { CpuArray } from "./prim.ts";
import type { HostArray } from "./shape.ts";
import { type DeviceStore, hostValues } from "./storage.ts";
import type { Tensor } from "./tensor.ts";
import { openReference } from "./cpu/mod.ts";
import { openWasm } from "./wasm/mod.ts";
import { openWebGpu } from "./webgpu/mod.ts";

/** Numeric precision of a backend's f32 tensors. */
export type Precision = "f32" | "f64";

/** What a backend can do in one kernel or one buffer; its lowering splits work to fit. */
export interface Capabilities {
  /** Storage buffers one kernel may bind, inputs and outputs together. */
  readonly maxKernelBuffers: number;
  /** Loop iterations one kernel invocation may run (software adapters stop longer ones). */
  readonly maxLoop: number;
  /** Bytes of the largest buffer one kernel may bind. */
  readonly maxBufferBytes: number;
  /** Precisions f32 tensors can be computed in. */
  readonly precisions: readonly Precision[];
}

/**
 * One backend. It lowers graphs to its own kernels (fusing, and splitting work to fit its
 * capabilities), owns the storage of what it computed, and records computed nodes in the graph.
 */
export interface Backend extends DeviceStore {
  readonly name: "cpu" | "webgpu" | "wasm";
  readonly capabilities: Capabilities;
  readonly precision: Precision;
  /** The adapter's description, or null. */
  readonly adapter: string | null;
  /** True for software/fallback adapters (such as Mesa's llvmpipe). */
  readonly fallbackAdapter: boolean;
  /** Host threads it computes on: the Wasm backend's workers and the calling thread; 1 elsewhere. */
  readonly threads: number;
  /**
   * Computes the pending `targets` in one realization (on WebGPU: one submit), stores the value of
   * `targets[i]` under `leaves[i]` and records it computed; returns host copies of `read`, leaves
   * this backend holds afterwards, read in the same go.
   */
  realize(targets: readonly Node[], leaves: readonly Node[], read: readonly Node[]): Promise<CpuArray[]>;
  /** True when this backend holds `leaf`'s value. */
  holds(leaf: Node): boolean;
}

/** How each backend is opened: null when it cannot run here (no adapter), an error when it broke. */
const BACKENDS: { readonly [N in Backend["name"]]: (precision: Precision) => Promise<Backend | null> } = {
  cpu: openReference,
  webgpu: openWebGpu,
  wasm: openWasm,
};

/** Names accepted by `setBackend` and the `JETFOLD_BACKEND` environment variable. */
export type BackendName = "cpu" | "webgpu" | "wasm" | "auto";

/** Options of `setBackend`. */
export interface BackendOptions {
  /** CPU backend only: compute f32 tensors in float64 (for reference checks); reads return float64. */
  readonly precision?: Precision;
}

/** What `backendInfo()` reports about the backend in use. */
export interface BackendInfo {
  /** The backend that runs computations. */
  readonly name: "cpu" | "webgpu" | "wasm";
  /** What was asked for, through `setBackend` or `JETFOLD_BACKEND`. */
  readonly requested: BackendName;
  /** Precision of f32 tensors on this backend. */
  readonly precision: Precision;
  /** The WebGPU adapter's description, or null on the CPU backend. */
  readonly adapter: string | null;
  /** True when the adapter is a software/fallback one (such as Mesa's llvmpipe). */
  readonly fallbackAdapter: boolean;
  /** Host threads it computes on: on wasm, its workers and the calling thread; 1 on the others. */
  readonly threads: number;
  /** Why this backend was picked, in one sentence. */
  readonly reason: string;
  /** What the backend can do in one kernel; it splits larger work itself. */
  readonly capabilities: Capabilities;
}

interface Active {
  readonly info: BackendInfo;
  readonly backend: Backend;
}

const NAMES: readonly BackendName[] = ["cpu", "webgpu", "wasm", "auto"];
const NO_ADAPTER = "no WebGPU adapter is available (navigator.gpu is missing or offered no adapter). " +
  "Without a GPU, Mesa's software adapter works: apt-get install mesa-vulkan-drivers; " +
  'or choose the CPU backend with setBackend("cpu") or JETFOLD_BACKEND=cpu';

let current: Promise<Active> | null = null;

function activeOf(backend: Backend, requested: BackendName, reason: string): Active {
  const { name, precision, adapter, fallbackAdapter, threads, capabilities } = backend;
  return { backend, info: { name, requested, precision, adapter, fallbackAdapter, threads, reason, capabilities } };
}

async function choose(requested: BackendName, opts: BackendOptions, where: string): Promise<Active> {
  const precision = opts.precision ?? "f32";
  const cpu = async (reason: string) => activeOf((await BACKENDS.cpu(precision))!, requested, reason);
  if (requested === "cpu") return cpu("requested explicitly");
  if (precision !== "f32") throw new Error(`${where}: precision "f64" exists only on the CPU backend`);
  if (requested === "wasm") {
    const wasm = await BACKENDS.wasm(precision);
    if (wasm === null) throw new Error(`${where}: this runtime has no WebAssembly SIMD; choose "cpu"`);
    return activeOf(wasm, requested, "requested explicitly");
  }
  // auto: WebGPU on a hardware adapter; on a software one (or none) Wasm SIMD, which is faster
  // there; the CPU reference only where neither runs.
  const probe = requested === "auto" ? await adapterProbe() : null;
  if (probe !== null && probe.kind !== "hardware") {
    const wasm = await BACKENDS.wasm(precision);
    if (wasm !== null) {
      const why = probe.kind === "none"
        ? "auto: no WebGPU adapter found, and this runtime has WebAssembly SIMD"
        : `auto: the only WebGPU adapter is a software one (${probe.description}), slower here than Wasm SIMD`;
      return activeOf(wasm, requested, why);
    }
  }
  let gpu;
  try {
    gpu = await BACKENDS.webgpu(precision);
  } catch (e) {
    if (requested === "webgpu") throw new Error(`${where}: ${(e as Error).message}`);
    return cpu(`auto: WebGPU failed to start (${(e as Error).message})`);
  }
  if (gpu === null) {
    if (requested === "webgpu") throw new Error(`${where}: ${NO_ADAPTER}`);
    return cpu("auto: no WebGPU adapter found, and no WebAssembly SIMD");
  }
  const why = requested === "webgpu"
    ? "requested explicitly"
    : gpu.fallbackAdapter || isSoftwareAdapter(gpu.adapter ?? "")
    ? "auto: only a software WebGPU adapter is available, and this runtime has no WebAssembly SIMD"
    : "auto: a hardware WebGPU adapter is available";
  return activeOf(gpu, requested, why);
}

/**
 * True when an adapter's description names a software rasterizer (Mesa's llvmpipe, lavapipe or
 * softpipe, Chromium's SwiftShader, Microsoft's WARP): a GPU emulated on the CPU.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isSoftwareAdapter } from "./backend.ts";
 * assert.ok(isSoftwareAdapter("llvmpipe (LLVM 15.0.6, 256 bits)"));
 * assert.ok(!isSoftwareAdapter("NVIDIA GeForce RTX 4090"));
 * ```
 */
export function isSoftwareAdapter(description: string): boolean {
  return /llvmpipe|lavapipe|softpipe|swiftshader|software|microsoft basic render|\bwarp\b/i.test(description);
}

// What kind of adapter `navigator.gpu` offers, asked without opening a device (that is left to the
// backend chosen): none, a software one, or hardware.
async function adapterProbe(): Promise<{ kind: "none" | "software" | "hardware"; description: string }> {
  try {
    const api = (globalThis.navigator as { gpu?: GPU } | undefined)?.gpu;
    const adapter = await api?.requestAdapter({ powerPreference: "high-performance" });
    if (adapter == null) return { kind: "none", description: "" };
    const info: Partial<GPUAdapterInfo> = adapter.info ?? {};
    const description = info.description || [info.vendor, info.architecture, info.device].filter(Boolean).join(" ");
    const fallback = Boolean(info.isFallbackAdapter ?? (adapter as { isFallbackAdapter?: boolean }).isFallbackAdapter);
    return { kind: fallback || isSoftwareAdapter(description) ? "software" : "hardware", description };
  } catch {
    return { kind: "none", description: "" };
  }
}

function validate(name: unknown, opts: BackendOptions, where: string): asserts name is BackendName {
  if (!NAMES.includes(name as BackendName)) {
    throw new Error(`${where}: unknown backend ${JSON.stringify(name)}; expected "cpu", "webgpu", "wasm" or "auto"`);
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
 * Selects the backend for later realizations: "cpu", "webgpu", "wasm" or "auto" (the default:
 * WebGPU on a hardware adapter; Wasm SIMD when the only adapter is a software one such as
 * llvmpipe or SwiftShader, or when there is none; the CPU reference where neither runs;
 * `backendInfo().reason` says which applied). Takes effect at once; await it to learn the outcome.
 * Explicit "webgpu" without an adapter rejects with an error that says how to fix it. Tensors
 * computed on another backend stay readable and usable.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { setBackend, tensor } from "../mod.ts";
 * const info = await setBackend("cpu", { precision: "f64" });
 * assert.deepEqual([info.name, info.precision], ["cpu", "f64"]);
 * const third = await tensor(1).div(3).data(); // f32 tensors computed and read in float64
 * assert.ok(third instanceof Float64Array && third[0] === 1 / 3);
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
 * import assert from "node:assert/strict";
 * import { backendInfo } from "../mod.ts";
 * const info = await backendInfo();
 * assert.ok(["webgpu", "wasm", "cpu"].includes(info.name), info.reason);
 * assert.equal(info.adapter === null, info.name !== "webgpu");
 * ```
 */
export async function backendInfo(): Promise<BackendInfo> {
  return (await active()).info;
}

/** Sees the pending graph of a realization before a backend computes it (see `observeRealizations`). */
export type RealizationObserver = (targets: readonly Node[], backend: Backend["name"]) => void;

const observers = new Set<RealizationObserver>();

/**
 * Calls `fn` with the pending targets of every later realization, on any backend, before it is
 * computed (for tools and tests: e.g. planning the WGSL a workload would need on another adapter);
 * returns the function that stops it.
 */
export function observeRealizations(fn: RealizationObserver): () => void {
  observers.add(fn);
  return () => observers.delete(fn);
}

// Realizes `ts` on the active backend; returns host values of those in `read` positions.
async function run(ts: readonly Tensor[], read: boolean): Promise<HostArray[]> {
  for (const t of ts) if (t.disposed) throw new Error(`realize: tensor of shape [${t.shape}] was disposed`);
  const { backend, info } = await active();
  const nodes = ts.map((t) => resolve(t.node));
  const leafOf = new Map<Node, Node>(); // each pending target and the leaf that will hold its value
  for (const n of nodes) if (isPending(n) && !leafOf.has(n)) leafOf.set(n, leafNode(n.shape, n.dtype));
  const pending = [...leafOf.keys()], leaves = [...leafOf.values()];
  const finals = nodes.map((n) => leafOf.get(n) ?? n);
  const fresh = new Set(leaves);
  const mine = read ? [...new Set(finals.filter((l) => fresh.has(l) || backend.holds(l)))] : [];
  let values: CpuArray[] = [];
  try {
    if (pending.length > 0) { for (const fn of observers) fn(pending, backend.name); }
    if (pending.length > 0 || mine.length > 0) values = await backend.realize(pending, leaves, mine);
  } finally {
    for (const t of ts) t._become(resolve(t.node));
  }
  if (!read) return [];
  const onBackend = new Set(mine);
  const others = [...new Set(finals.filter((l) => !onBackend.has(l)))];
  const rest = await hostValues(others, "realize");
  const byLeaf = new Map<Node, CpuArray>([
    ...mine.map((l, i) => [l, values[i]] as const),
    ...others.map((l, i) => [l, rest[i]] as const),
  ]);
  return finals.map((l) => hostCopy(byLeaf.get(l)!, l, info.precision));
}

// A copy in the reading precision: float64 for f32 tensors on an f64 backend, else the dtype's array.
function hostCopy(v: CpuArray, leaf: Node, precision: Precision): HostArray {
  if (leaf.dtype === "f32") return precision === "f64" ? Float64Array.from(v) : Float32Array.from(v);
  return v.slice() as Int32Array | Uint8Array;
}

/**
 * Computes tensors without reading them back (on WebGPU: one submit, no wait). Use it to keep a
 * training loop's graph from growing when the loss is not read every step.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { realize, stats, tensor } from "../mod.ts";
 * const y = tensor([1, 2]).mul(3);
 * await realize([y]); // computed now, nothing read back
 * const done = stats().realizations;
 * assert.deepEqual(await y.array(), [3, 6]);
 * assert.equal(stats().realizations, done); // reading it computed nothing more
 * ```
 */
export async function realize(ts: readonly Tensor[]): Promise<void> {
  await run(ts, false);
}

/**
 * Reads several tensors in one realization (on WebGPU: one submit and one readback for all).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readAll, tensor } from "../mod.ts";
 * const x = tensor([1, 2, 3]);
 * const [sum, max] = await readAll([x.sum(), x.max()]);
 * assert.deepEqual([sum[0], max[0]], [6, 3]);
 * ```
 */
export function readAll(ts: readonly Tensor[]): Promise<HostArray[]> {
  return run(ts, true);
}

/** Realizes tensors together and returns copies of their data. */
export function realizeMany(ts: readonly Tensor[]): Promise<HostArray[]> {
  return run(ts, true);
}
