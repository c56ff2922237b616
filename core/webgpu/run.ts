// Executing plans on the device: pipelines cached by WGSL, one encoder and one submit per realization.

import type { DType, HostArray } from "../shape.ts";
import { liveStats } from "../stats.ts";
import type { Tensor } from "../tensor.ts";
import { checkHealth, type Gpu, scoped, scopedCheck } from "./device.ts";
import { type KernelPlan, planCached } from "./plan.ts";
import { BufferPool } from "./pool.ts";

const UNIFORM = 0x40 | 0x8; // UNIFORM | COPY_DST
const ALIGN = 256; // minUniformBufferOffsetAlignment's largest allowed value
const MAX_GROUPS = 65535;

/** Bytes a tensor occupies on the device (bool is stored as u32). */
const bytesOf = (t: Tensor) => Math.max(4 * t.size, 4);

/** The WebGPU backend: owns the pool, the pipeline cache and the buffers of realized tensors. */
export class WebGpuRunner {
  readonly gpu: Gpu;
  readonly pool: BufferPool;
  readonly #pipelines = new Map<string, GPUComputePipeline>();
  readonly #registry: FinalizationRegistry<GPUBuffer>;
  #uniform: GPUBuffer | null = null;
  // Per realized tensor: whether the submit that computed it was accepted (resolved lazily).
  readonly #checks = new WeakMap<Tensor, Promise<Error | null>>();
  readonly #poisoned = new WeakMap<Tensor, Error>();

  constructor(gpu: Gpu) {
    this.gpu = gpu;
    this.pool = new BufferPool(gpu.device);
    this.#registry = new FinalizationRegistry((buf) => this.pool.release(buf));
  }

  /** Gives `t` ownership of `buf` until it is disposed or collected. */
  #own(t: Tensor, buf: GPUBuffer): void {
    if (t._gpu !== null) throw new Error(`webgpu: tensor of shape [${t.shape}] already owns a buffer`);
    t._gpu = buf;
    this.#registry.register(t, buf, t);
    t._release = () => {
      this.#registry.unregister(t);
      this.pool.release(buf);
      t._gpu = null;
      t._release = null;
    };
  }

  /** The device buffer of a realized or host tensor, uploading host data on first use. */
  buffer(t: Tensor): GPUBuffer {
    const poisoned = this.#poisoned.get(t);
    if (poisoned) throw new Error(`webgpu: this tensor [${t.shape}] was never computed: ${poisoned.message}`);
    if (t._gpu) return t._gpu as GPUBuffer;
    const host = t._data;
    if (host === null) throw new Error(`webgpu: tensor of shape [${t.shape}] was disposed`);
    const buf = this.pool.acquire(bytesOf(t));
    const words = t.dtype === "f32"
      ? Float32Array.from(host)
      : t.dtype === "i32"
      ? Int32Array.from(host)
      : Uint32Array.from(host);
    if (words.length > 0) this.gpu.device.queue.writeBuffer(buf, 0, words);
    this.#own(t, buf);
    return buf;
  }

  #pipeline(k: KernelPlan): GPUComputePipeline {
    let p = this.#pipelines.get(k.wgsl);
    if (p === undefined) {
      const what = `the kernel for ${k.outputs.map((t) => `${t._src!.op} [${t.shape}]`).join(", ")}`;
      p = scoped(this.gpu, what, () => {
        const module = this.gpu.device.createShaderModule({ code: k.wgsl });
        liveStats.shaderModules++;
        const pipe = this.gpu.device.createComputePipeline({ layout: "auto", compute: { module, entryPoint: "main" } });
        liveStats.pipelines++;
        return pipe;
      });
      this.#pipelines.set(k.wgsl, p);
    }
    return p;
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

  #checkSize(k: KernelPlan): void {
    for (const t of [...k.outputs, ...k.inputs]) {
      if (bytesOf(t) > this.gpu.maxBindingSize) {
        const mb = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;
        throw new Error(
          `webgpu: ${k.outputs[0]._src!.op} [${k.outputs[0].shape}] needs a ${
            mb(bytesOf(t))
          } buffer for [${t.shape}], ` +
            `above this adapter's ${mb(this.gpu.maxBindingSize)} binding limit; split the work or use the CPU backend`,
        );
      }
    }
  }

  /** Computes the pending targets in one submit; with `read`, also copies every target back. */
  async run(targets: readonly Tensor[], read: boolean): Promise<HostArray[]> {
    checkHealth(this.gpu);
    for (const t of targets) {
      const e = this.#poisoned.get(t);
      if (e) throw new Error(`webgpu: this tensor [${t.shape}] was never computed: ${e.message}`);
    }
    const pending = [...new Set(targets.filter((t) => t._src !== null))];
    const kernels = pending.length > 0 ? planCached(pending, this.gpu.maxStorageBuffers) : [];
    if (kernels.length === 0 && !read) return [];
    for (const k of kernels) this.#checkSize(k);
    const label = `a realization of ${kernels.length} kernels (${describeKernels(kernels)})`;
    const device = this.gpu.device;
    // Upload host inputs before any intermediate buffer is recycled within this submit.
    for (const k of kernels) for (const x of k.inputs) if (x._src === null) this.buffer(x);
    const lastUse = new Map<Tensor, number>();
    kernels.forEach((k, i) => k.inputs.forEach((x) => x._src !== null && lastUse.set(x, i)));
    const keep = new Set(pending);
    const bufs = new Map<Tensor, GPUBuffer>();
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
        const pipe = this.#pipeline(k);
        const entries: GPUBindGroupEntry[] = k.inputs.map((x, j) => ({
          binding: j + 1,
          resource: { buffer: x._src === null ? this.buffer(x) : bufs.get(x)! },
        }));
        outs.forEach((buffer, j) => entries.push({ binding: k.inputs.length + 1 + j, resource: { buffer } }));
        if (k.uniforms.length > 0) {
          const size = Math.ceil(k.uniforms.length / 4) * 16;
          entries.push({ binding: 0, resource: { buffer: uniform!, offset: offsets[i], size } });
        }
        pass.setPipeline(pipe);
        pass.setBindGroup(0, device.createBindGroup({ layout: pipe.getBindGroupLayout(0), entries }));
        const groups = Math.ceil(k.threads / k.workgroupSize);
        const x = Math.min(groups, MAX_GROUPS);
        pass.dispatchWorkgroups(x, Math.ceil(groups / x));
        liveStats.dispatches++;
      }
      // A tensor bound twice (e.g. x @ x^T reads x as two layouts) is still released once.
      for (const x of new Set(k.inputs)) {
        if (lastUse.get(x) === i && !keep.has(x)) this.pool.release(bufs.get(x)!);
      }
    });
    pass.end();
    for (const t of pending) {
      t._src = null;
      this.#own(t, bufs.get(t)!);
    }
    const staging = read ? targets.map((t) => this.pool.acquireStaging(bytesOf(t))) : [];
    if (read) targets.forEach((t, i) => encoder.copyBufferToBuffer(this.buffer(t), 0, staging[i], 0, bytesOf(t)));
    const [, failed] = scopedCheck(
      this.gpu,
      label,
      () => device.queue.submit([encoder.finish()]),
    );
    // If the device rejects this submit, its results were never written: poison them, so reading
    // them (or computing from them) throws instead of returning stale memory.
    for (const t of pending) this.#checks.set(t, failed);
    failed.then((e) => e && pending.forEach((t) => this.#poisoned.set(t, e)));
    liveStats.submits++;
    if (kernels.length > 0) liveStats.realizations++;
    if (!read) return [];
    await Promise.all(staging.map((s) => s.mapAsync(1 /* READ */)));
    const errors = await Promise.all(targets.map((t) => this.#checks.get(t) ?? null));
    liveStats.readbacks++;
    const bad = errors.find((e) => e !== null);
    if (bad) {
      if (this.gpu.pending === bad) this.gpu.pending = null; // reported here, once
      staging.forEach((s) => (s.unmap(), this.pool.releaseStaging(s)));
      throw bad;
    }
    checkHealth(this.gpu);
    return targets.map((t, i) => {
      const bytes = staging[i].getMappedRange(0, bytesOf(t)).slice(0);
      staging[i].unmap();
      this.pool.releaseStaging(staging[i]);
      return hostView(bytes, t.dtype, t.size);
    });
  }
}

// The kernels' ops and output shapes, for error messages: the first few and a count.
function describeKernels(kernels: readonly KernelPlan[]): string {
  const names = kernels.slice(0, 4).map((k) =>
    k.outputs.map((t) => `${t._src?.op ?? "value"} [${t.shape}]`).join(" + ")
  );
  return names.join(", ") + (kernels.length > 4 ? `, and ${kernels.length - 4} more` : "");
}

function hostView(bytes: ArrayBuffer, dtype: DType, n: number): HostArray {
  if (dtype === "f32") return new Float32Array(bytes, 0, n);
  if (dtype === "i32") return new Int32Array(bytes, 0, n);
  return Uint8Array.from(new Uint32Array(bytes, 0, n));
}
