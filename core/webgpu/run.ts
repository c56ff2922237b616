// Executing plans on the device: one encoder and one submit per realization (each kernel's pipeline
// and bind groups kept in kernel_states.ts), and the device buffers of realized leaves (owned here,
// keyed by leaf node).

import { type Node, recordComputed } from "../graph.ts";
import type { Backend, Capabilities } from "../backend.ts";
import type { CpuArray } from "../prim.ts";
import type { DType } from "../shape.ts";
import { liveStats } from "../stats.ts";
import { deviceOf, hostValue, hostValues, putDevice } from "../storage.ts";
import { compileKernels } from "./compile.ts";
import { checkHealth, type Gpu, scopedCheck } from "./device.ts";
import { bytesOf, checkLimits, gridOf, UniformBlock } from "./dispatch.ts";
import { lower } from "./lower.ts";
import type { KernelPlan } from "./plan.ts";
import { planCached } from "./plan_cache.ts";
import { BufferPool } from "./pool.ts";
import type { ProfileRecord } from "./profile.ts";
import type { KernelFeatures } from "./emit.ts";
import { type ForcedVariants, kernelFeatures, MatmulTuner, type TuneOptions } from "./tune.ts";
import { KernelStates } from "./kernel_states.ts";
import { SubmitTimes } from "./profile_record.ts";

const HOST_TIMES_KEPT = 64;
// Timestamp queries one profiled submit may write (two per kernel); more kernels are timed by the wall.
const MAX_QUERIES = 4096;

/** What one kernel may do on a device with these limits (what `lower` fits a graph to). */
export function capabilitiesOf(limits: Pick<Gpu, "maxStorageBuffers" | "maxBindingSize">): Capabilities {
  return {
    maxKernelBuffers: limits.maxStorageBuffers,
    maxLoop: 65535, // what llvmpipe allows; a safe bound for any adapter
    maxBufferBytes: limits.maxBindingSize,
    precisions: ["f32"],
  };
}

/** The WebGPU backend's engine: owns the pool, the pipeline cache and the buffers of realized leaves. */
export class WebGpuRunner implements Backend {
  readonly name = "webgpu";
  readonly precision = "f32";
  readonly adapter: string;
  readonly fallbackAdapter: boolean;
  readonly threads = 1;
  readonly gpu: Gpu;
  readonly pool: BufferPool;
  readonly capabilities: Capabilities;
  // Per kernel of a cached plan: its pipeline, bind groups and recent output buffers.
  readonly #kernels: KernelStates;
  // Buffers of leaves: values computed here, and uploaded copies of host values.
  readonly #buffers = new WeakMap<Node, GPUBuffer>();
  readonly #registry: FinalizationRegistry<GPUBuffer>;
  readonly #uniforms: UniformBlock;
  // Per computed leaf: whether the submit that computed it was accepted (resolved lazily).
  readonly #checks = new WeakMap<Node, Promise<Error | null>>();
  readonly #poisoned = new WeakMap<Node, Error>();

  /** Chooses matmul variants on this device by measurement. */
  readonly tuner: MatmulTuner;
  readonly #forced: ForcedVariants;
  readonly #variant: boolean;

  /**
   * `tuning` configures the tuner; `variant`, `reduce` and `scan` force one matmul, reduction or
   * scan variant wherever it applies (for tests; nothing is then measured).
   */
  constructor(gpu: Gpu, opts: { tuning?: TuneOptions } & ForcedVariants = {}) {
    this.gpu = gpu;
    this.tuner = new MatmulTuner(gpu, opts.tuning);
    this.#forced = { variant: opts.variant, reduce: opts.reduce, scan: opts.scan };
    this.#variant = Object.values(this.#forced).some((v) => v !== undefined);
    this.adapter = gpu.description;
    this.fallbackAdapter = gpu.fallback;
    this.pool = new BufferPool(gpu.device);
    this.#kernels = new KernelStates(gpu.device, this.pool);
    this.#submitTimes = new SubmitTimes(gpu);
    this.#uniforms = new UniformBlock(gpu.device);
    this.#registry = new FinalizationRegistry((buf) => this.pool.release(buf));
    this.capabilities = capabilitiesOf(gpu);
  }

  /** Gives `leaf` ownership of `buf` until it is released or collected. */
  #own(leaf: Node, buf: GPUBuffer): void {
    if (this.#buffers.has(leaf)) throw new Error(`webgpu: a leaf of shape [${leaf.shape}] already owns a buffer`);
    this.#buffers.set(leaf, buf);
    this.#registry.register(leaf, buf, leaf);
  }

  /** True when the value of `leaf` was computed here. */
  holds(leaf: Node): boolean {
    return deviceOf(leaf) === this && this.#buffers.has(leaf);
  }

  release(leaf: Node): void {
    const buf = this.#buffers.get(leaf);
    if (buf === undefined) return;
    this.#buffers.delete(leaf);
    this.#registry.unregister(leaf);
    this.pool.release(buf);
  }

  /** The device buffer of a leaf, uploading its host value on first use. */
  buffer(leaf: Node): GPUBuffer {
    const poisoned = this.#poisoned.get(leaf);
    if (poisoned) throw new Error(`webgpu: this tensor [${leaf.shape}] was never computed: ${poisoned.message}`);
    const have = this.#buffers.get(leaf);
    if (have) return have;
    const host = hostValue(leaf);
    if (host === undefined) throw new Error(`realize: input tensor of shape [${leaf.shape}] was disposed`);
    const buf = this.#upload(leaf, host);
    this.#own(leaf, buf);
    return buf;
  }

  /** Host copies of leaves held here, in one submit and one readback. */
  read(leaves: readonly Node[]): Promise<CpuArray[]> {
    return this.realize([], [], leaves);
  }

  /**
   * Computes the pending `targets` in one submit, storing `targets[i]`'s value under `leaves[i]`;
   * also copies back every leaf of `read` (held here) in the same submit.
   */
  async realize(targets: readonly Node[], leaves: readonly Node[], read: readonly Node[]): Promise<CpuArray[]> {
    checkHealth(this.gpu);
    for (const t of read) {
      const e = this.#poisoned.get(t);
      if (e) throw new Error(`webgpu: this tensor [${t.shape}] was never computed: ${e.message}`);
    }
    // The tuner's stored choices, read once before the first plan (IndexedDB reads are async).
    if (!this.#variant && this.tuner.enabled && !this.tuner.loaded) await this.tuner.load();
    const t0 = performance.now();
    const graph = lower(targets, this.capabilities);
    const plan = () => {
      const features = kernelFeatures(this.gpu, this.tuner, this.#forced);
      const planned = graph.length > 0 ? planCached(graph, this.gpu.maxStorageBuffers, features) : [];
      for (const k of planned) checkLimits(this.gpu, k);
      return planned;
    };
    let kernels = plan();
    let host = performance.now() - t0;
    // Matmuls of a size this device has not measured yet: time their candidate variants, then plan
    // again with the choices (only kernels that never ran are looked at).
    const untuned = this.#variant ? [] : this.tuner.untuned(kernels.filter((k) => !this.#kernels.has(k)));
    if (untuned.length > 0) {
      await this.tuner.measure(untuned, kernelFeatures(this.gpu, this.tuner, this.#forced));
      const t2 = performance.now();
      kernels = plan();
      host += performance.now() - t2;
    }
    // Leaves held by another device (one lost, say) come through the host.
    const foreign = [...new Set(kernels.flatMap((k) => k.inputs.filter((x) => x.op === "data" && this.#foreign(x))))];
    const values = await hostValues(foreign, "realize");
    foreign.forEach((x, i) => this.#own(x, this.#upload(x, values[i])));
    // Kernels of a cached plan that ran before keep their pipelines: only new ones compile.
    const fresh = kernels.filter((k) => k.threads > 0 && !this.#kernels.has(k));
    if (fresh.length > 0) await compileKernels(this.gpu, fresh, this.#kernels.pipelines);
    checkHealth(this.gpu);
    const t1 = performance.now();
    const label = `a realization of ${kernels.length} kernels (${describeKernels(kernels)})`;
    // Upload host inputs before any intermediate buffer is recycled within this submit.
    for (const k of kernels) for (const x of k.inputs) if (x.op === "data") this.buffer(x);
    const profiling = this.#profile;
    const timed = kernels.filter((k) => k.threads > 0);
    const timing = profiling && this.gpu.timestamps && timed.length > 0 && 2 * timed.length <= MAX_QUERIES
      ? this.gpu.device.createQuerySet({ type: "timestamp", count: 2 * timed.length })
      : null;
    // The uploads, the encoding and the submit share one error scope, whose first error is the root
    // cause (the device reports later ones as "invalid due to a previous error").
    const [staging, failed] = scopedCheck(
      this.gpu,
      label,
      () => this.#submit(kernels, graph, targets, leaves, read, timing),
    );
    // Not the submit itself: on llvmpipe it blocks while the device finishes earlier work.
    const submitted = performance.now();
    host += this.#encoded - t1;
    if (kernels.length > 0) this.#noteHost(host);
    // If the device rejects this submit, its results were never written: poison them, so reading
    // them (or computing from them) throws instead of returning stale memory.
    for (const l of leaves) this.#checks.set(l, failed);
    failed.then((e) => e && leaves.forEach((l) => this.#poisoned.set(l, e)));
    if (profiling) await this.#submitTimes.record(profiling, timed, timing, host, submitted);
    liveStats.submits++;
    if (kernels.length > 0) liveStats.realizations++;
    if (read.length === 0) return [];
    await Promise.all(staging.map((s) => s.mapAsync(1 /* READ */)));
    const errors = await Promise.all(read.map((t) => this.#checks.get(t) ?? null));
    liveStats.readbacks++;
    const bad = errors.find((e) => e !== null);
    if (bad) {
      if (this.gpu.pending === bad) this.gpu.pending = null; // reported here, once
      staging.forEach((s) => (s.unmap(), this.pool.releaseStaging(s)));
      throw bad;
    }
    checkHealth(this.gpu);
    return read.map((t, i) => {
      const bytes = staging[i].getMappedRange(0, bytesOf(t)).slice(0);
      staging[i].unmap();
      this.pool.releaseStaging(staging[i]);
      return hostView(bytes, t.dtype, t.size);
    });
  }

  // Records every kernel of a realization in one compute pass (one pass per kernel when profiled,
  // each with its timestamps) and submits it; returns the staging buffers that `read` is copied into.
  #submit(
    kernels: readonly KernelPlan[],
    graph: readonly Node[],
    targets: readonly Node[],
    leaves: readonly Node[],
    read: readonly Node[],
    timing: GPUQuerySet | null,
  ): GPUBuffer[] {
    const device = this.gpu.device;
    const lastUse = new Map<Node, number>();
    kernels.forEach((k, i) => k.inputs.forEach((x) => x.op !== "data" && lastUse.set(x, i)));
    const keep = new Set(graph);
    const bufs = new Map<Node, GPUBuffer>();
    const [uniform, offsets] = this.#uniforms.write(kernels);
    const encoder = device.createCommandEncoder();
    let pass = timing ? null : encoder.beginComputePass();
    let timed = 0;
    kernels.forEach((k, i) => {
      const state = k.threads > 0 ? this.#kernels.of(k) : null;
      const outs = k.outputs.map((t, j) => {
        const recent = state?.recent[j];
        const buf = this.pool.acquire(bytesOf(t), recent);
        if (state && recent?.[0] !== buf) state.recent[j] = this.#kernels.remember(recent ?? [], buf);
        bufs.set(t, buf);
        return buf;
      });
      if (state !== null) {
        const buffers = [uniform, ...k.inputs.map((x) => (x.op === "data" ? this.buffer(x) : bufs.get(x)!)), ...outs];
        const group = this.#kernels.bindGroup(k, state, buffers, offsets[i]);
        if (timing) {
          const writes = { querySet: timing, beginningOfPassWriteIndex: 2 * timed, endOfPassWriteIndex: 2 * timed + 1 };
          pass = encoder.beginComputePass({ timestampWrites: writes });
          timed++;
        }
        pass!.setPipeline(state.pipeline);
        pass!.setBindGroup(0, group);
        pass!.dispatchWorkgroups(...gridOf(this.gpu, k));
        if (timing) pass!.end();
        liveStats.dispatches++;
      }
      // A node bound twice (e.g. x @ x^T reads x as two layouts) is still released once.
      for (const x of new Set(k.inputs)) {
        if (lastUse.get(x) === i && !keep.has(x)) this.pool.release(bufs.get(x)!);
      }
    });
    if (!timing) pass!.end();
    graph.forEach((n, i) => {
      this.#own(leaves[i], bufs.get(n)!);
      putDevice(leaves[i], this);
      recordComputed(targets[i], leaves[i]);
    });
    const staging = read.map((t) => this.pool.acquireStaging(bytesOf(t)));
    read.forEach((t, i) => encoder.copyBufferToBuffer(this.buffer(t), 0, staging[i], 0, bytesOf(t)));
    if (timing) this.#submitTimes.resolve(encoder, timing, timed);
    const commands = encoder.finish();
    this.#encoded = performance.now();
    device.queue.submit([commands]);
    return staging;
  }

  // Host milliseconds of the last realizations that ran kernels (lowering, planning, encoding; not
  // compiling, submitting or waiting), newest last.
  readonly #hostMs: number[] = [];
  #profile: ProfileRecord[] | null = null;
  #encoded = 0; // when the last submit's commands were finished
  readonly #submitTimes: SubmitTimes;

  #noteHost(ms: number): void {
    this.#hostMs.push(ms);
    if (this.#hostMs.length > HOST_TIMES_KEPT) this.#hostMs.shift();
  }

  /** Host milliseconds (lowering, planning, encoding) of the last realizations that ran kernels (at most 64), newest last. */
  hostTimes(): readonly number[] {
    return [...this.#hostMs];
  }

  /**
   * Records every realization's kernels and times into `records` from now on (stop with `null`).
   * Each profiled realization waits for the device before it returns.
   */
  profileInto(records: ProfileRecord[] | null): void {
    this.#profile = records;
  }

  /** True while a profile is being recorded. */
  get profiling(): boolean {
    return this.#profile !== null;
  }

  #foreign(leaf: Node): boolean {
    return !this.#buffers.has(leaf) && hostValue(leaf) === undefined && deviceOf(leaf) !== undefined;
  }

  #upload(leaf: Node, host: CpuArray): GPUBuffer {
    const buf = this.pool.acquire(bytesOf(leaf));
    const words = leaf.dtype === "f32"
      ? Float32Array.from(host)
      : leaf.dtype === "i32"
      ? Int32Array.from(host)
      : Uint32Array.from(host);
    if (words.length > 0) this.gpu.device.queue.writeBuffer(buf, 0, words);
    return buf;
  }
}

// The kernels' ops and output shapes, for error messages: the first few and a count.
function describeKernels(kernels: readonly KernelPlan[]): string {
  const names = kernels.slice(0, 4).map((k) => k.outputs.map((t) => `${t.op} [${t.shape}]`).join(" + "));
  return names.join(", ") + (kernels.length > 4 ? `, and ${kernels.length - 4} more` : "");
}

function hostView(bytes: ArrayBuffer, dtype: DType, n: number): CpuArray {
  if (dtype === "f32") return new Float32Array(bytes, 0, n);
  if (dtype === "i32") return new Int32Array(bytes, 0, n);
  return Uint8Array.from(new Uint32Array(bytes, 0, n));
}
