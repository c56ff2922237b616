// Executing plans on the device: pipelines cached by WGSL, one encoder and one submit per
// realization, and the device buffers of realized leaves (owned here, keyed by leaf node).

import { type Node, recordComputed } from "../graph.ts";
import type { Backend, Capabilities } from "../backend.ts";
import type { CpuArray } from "../prim.ts";
import type { DType } from "../shape.ts";
import { liveStats } from "../stats.ts";
import { deviceOf, hostValue, hostValues, putDevice } from "../storage.ts";
import { compileKernels } from "./compile.ts";
import { checkHealth, type Gpu, scopedCheck } from "./device.ts";
import { lower } from "./lower.ts";
import { type KernelPlan, planCached } from "./plan.ts";
import { BufferPool } from "./pool.ts";

const UNIFORM = 0x40 | 0x8; // UNIFORM | COPY_DST
const ALIGN = 256; // minUniformBufferOffsetAlignment's largest allowed value

/** Bytes a node occupies on the device (bool is stored as u32). */
const bytesOf = (t: Node) => Math.max(4 * t.size, 4);

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
  readonly gpu: Gpu;
  readonly pool: BufferPool;
  readonly capabilities: Capabilities;
  readonly #pipelines = new Map<string, GPUComputePipeline>();
  // Buffers of leaves: values computed here, and uploaded copies of host values.
  readonly #buffers = new WeakMap<Node, GPUBuffer>();
  readonly #registry: FinalizationRegistry<GPUBuffer>;
  #uniform: GPUBuffer | null = null;
  // Per computed leaf: whether the submit that computed it was accepted (resolved lazily).
  readonly #checks = new WeakMap<Node, Promise<Error | null>>();
  readonly #poisoned = new WeakMap<Node, Error>();

  constructor(gpu: Gpu) {
    this.gpu = gpu;
    this.adapter = gpu.description;
    this.fallbackAdapter = gpu.fallback;
    this.pool = new BufferPool(gpu.device);
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

  #uniforms(kernels: readonly KernelPlan[]): [GPUBuffer | null, number[]] {
    const offsets: number[] = [];
    let total = 0;
    for (const k of kernels) {
      offsets.push(total);
      total += Math.ceil((Math.ceil(k.uniforms.length / 4) * 16) / ALIGN) * ALIGN;
    }
    if (total === 0) return [null, offsets];
    if (this.#uniform === null || this.#uniform.size < total) {
      this.#uniform?.destroy();
      this.#uniform = this.gpu.device.createBuffer({ size: Math.max(total, 4096) * 2, usage: UNIFORM });
    }
    const words = new Uint32Array(total / 4);
    kernels.forEach((k, i) => words.set(k.uniforms, offsets[i] / 4));
    this.gpu.device.queue.writeBuffer(this.#uniform, 0, words);
    return [this.#uniform, offsets];
  }

  // What the device would reject, said in a sentence before anything is encoded.
  #checkLimits(k: KernelPlan): void {
    const { maxWorkgroupSize, maxWorkgroupsPerDimension: most } = this.gpu;
    if (k.workgroupSize > maxWorkgroupSize) {
      throw new Error(
        `webgpu: the kernel for ${k.label} uses workgroups of ${k.workgroupSize} invocations, above this ` +
          `adapter's ${maxWorkgroupSize}; use the CPU backend`,
      );
    }
    const [, y] = this.#grid(k);
    if (y > most) {
      throw new Error(
        `webgpu: the kernel for ${k.label} needs ${Math.ceil(k.threads / k.workgroupSize)} workgroups, above this ` +
          `adapter's ${most} x ${most}; split the work or use the CPU backend`,
      );
    }
    for (const t of [...k.outputs, ...k.inputs]) {
      if (bytesOf(t) > this.gpu.maxBindingSize) {
        const mb = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;
        throw new Error(
          `webgpu: ${k.outputs[0].op} [${k.outputs[0].shape}] needs a ${mb(bytesOf(t))} buffer for [${t.shape}], ` +
            `above this adapter's ${mb(this.gpu.maxBindingSize)} binding limit; split the work or use the CPU backend`,
        );
      }
    }
  }

  // Workgroups along x and y: as many along x as the device allows, the rest along y.
  #grid(k: KernelPlan): [number, number] {
    const groups = Math.ceil(k.threads / k.workgroupSize);
    const x = Math.min(groups, this.gpu.maxWorkgroupsPerDimension);
    return [x, Math.ceil(groups / x)];
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
    const graph = lower(targets, this.capabilities);
    const features = { ownTrig: !this.gpu.accurateTrig };
    const kernels = graph.length > 0 ? planCached(graph, this.gpu.maxStorageBuffers, features) : [];
    for (const k of kernels) this.#checkLimits(k);
    // Leaves held by another device (one lost, say) come through the host.
    const foreign = [...new Set(kernels.flatMap((k) => k.inputs.filter((x) => x.op === "data" && this.#foreign(x))))];
    const values = await hostValues(foreign, "realize");
    foreign.forEach((x, i) => this.#own(x, this.#upload(x, values[i])));
    await compileKernels(this.gpu, kernels, this.#pipelines);
    checkHealth(this.gpu);
    const label = `a realization of ${kernels.length} kernels (${describeKernels(kernels)})`;
    // Upload host inputs before any intermediate buffer is recycled within this submit.
    for (const k of kernels) for (const x of k.inputs) if (x.op === "data") this.buffer(x);
    // The uploads, the encoding and the submit share one error scope, whose first error is the root
    // cause (the device reports later ones as "invalid due to a previous error").
    const [staging, failed] = scopedCheck(this.gpu, label, () => this.#submit(kernels, graph, targets, leaves, read));
    // If the device rejects this submit, its results were never written: poison them, so reading
    // them (or computing from them) throws instead of returning stale memory.
    for (const l of leaves) this.#checks.set(l, failed);
    failed.then((e) => e && leaves.forEach((l) => this.#poisoned.set(l, e)));
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

  // Records every kernel of a realization in one compute pass and submits it; returns the staging
  // buffers that `read` is copied into.
  #submit(
    kernels: readonly KernelPlan[],
    graph: readonly Node[],
    targets: readonly Node[],
    leaves: readonly Node[],
    read: readonly Node[],
  ): GPUBuffer[] {
    const device = this.gpu.device;
    const lastUse = new Map<Node, number>();
    kernels.forEach((k, i) => k.inputs.forEach((x) => x.op !== "data" && lastUse.set(x, i)));
    const keep = new Set(graph);
    const bufs = new Map<Node, GPUBuffer>();
    const [uniform, offsets] = this.#uniforms(kernels);
    const encoder = device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    kernels.forEach((k, i) => {
      const outs = k.outputs.map((t) => {
        const buf = this.pool.acquire(bytesOf(t));
        bufs.set(t, buf);
        return buf;
      });
      if (k.threads > 0) {
        const pipe = this.#pipelines.get(k.wgsl)!;
        const entries: GPUBindGroupEntry[] = k.inputs.map((x, j) => ({
          binding: j + 1,
          resource: { buffer: x.op === "data" ? this.buffer(x) : bufs.get(x)! },
        }));
        outs.forEach((buffer, j) => entries.push({ binding: k.inputs.length + 1 + j, resource: { buffer } }));
        if (k.uniforms.length > 0) {
          const size = Math.ceil(k.uniforms.length / 4) * 16;
          entries.push({ binding: 0, resource: { buffer: uniform!, offset: offsets[i], size } });
        }
        pass.setPipeline(pipe);
        const layout = pipe.getBindGroupLayout(0);
        pass.setBindGroup(0, device.createBindGroup({ label: k.label, layout, entries }));
        pass.dispatchWorkgroups(...this.#grid(k));
        liveStats.dispatches++;
      }
      // A node bound twice (e.g. x @ x^T reads x as two layouts) is still released once.
      for (const x of new Set(k.inputs)) {
        if (lastUse.get(x) === i && !keep.has(x)) this.pool.release(bufs.get(x)!);
      }
    });
    pass.end();
    graph.forEach((n, i) => {
      this.#own(leaves[i], bufs.get(n)!);
      putDevice(leaves[i], this);
      recordComputed(targets[i], leaves[i]);
    });
    const staging = read.map((t) => this.pool.acquireStaging(bytesOf(t)));
    read.forEach((t, i) => encoder.copyBufferToBuffer(this.buffer(t), 0, staging[i], 0, bytesOf(t)));
    device.queue.submit([encoder.finish()]);
    return staging;
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
