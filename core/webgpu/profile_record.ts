// Recording a profiled submit for the WebGPU runner (run.ts): its kernels' timestamps resolved into a
// mappable buffer at the end of the encoder, then, once the device is done, each kernel's device time
// (or, without timestamp queries, the submit's wall time) appended to the profile.

import type { Gpu } from "./device.ts";
import type { KernelPlan } from "./plan.ts";
import type { ProfileRecord } from "./profile.ts";

/** Timestamps of one profiled submit at a time, read back after it. */
export class SubmitTimes {
  readonly #gpu: Gpu;
  #times: GPUBuffer | null = null;
  #resolved: GPUBuffer | null = null;

  constructor(gpu: Gpu) {
    this.#gpu = gpu;
  }

  /** The encoder's last commands when profiling with timestamps: the `n` kernels' times into a mappable buffer. */
  resolve(encoder: GPUCommandEncoder, set: GPUQuerySet, n: number): void {
    const bytes = 16 * n, device = this.#gpu.device;
    const resolved = device.createBuffer({ size: bytes, usage: 0x200 | 0x4 }); // QUERY_RESOLVE | COPY_SRC
    this.#times = device.createBuffer({ size: bytes, usage: 0x1 | 0x8 }); // MAP_READ | COPY_DST
    encoder.resolveQuerySet(set, 0, 2 * n, resolved, 0);
    encoder.copyBufferToBuffer(resolved, 0, this.#times, 0, bytes);
    this.#resolved = resolved;
  }

  /**
   * Waits for the profiled submit and appends what it ran to `into`: per-kernel device times from its
   * timestamps (`timing`, resolved by `resolve`), else its wall time from `submitted` to the device being done.
   */
  async record(
    into: ProfileRecord[],
    kernels: readonly KernelPlan[],
    timing: GPUQuerySet | null,
    hostMs: number,
    submitted: number,
  ): Promise<void> {
    const describe = (k: KernelPlan) => ({
      label: k.label,
      ops: k.ops ?? [],
      variant: k.variant,
      inputs: k.inputs.map((x) => [...x.shape]),
    });
    await this.#gpu.device.queue.onSubmittedWorkDone();
    const wallMs = performance.now() - submitted;
    // A submit with no kernels (a readback) has nothing to time: an empty list, not "untimed".
    let gpuMs: number[] | null = this.#gpu.timestamps && kernels.length === 0 ? [] : null;
    if (timing !== null && this.#times !== null) {
      const times = this.#times;
      await times.mapAsync(1 /* READ */);
      const ticks = new BigUint64Array(times.getMappedRange().slice(0));
      times.unmap();
      gpuMs = kernels.map((_, i) => Number(ticks[2 * i + 1] - ticks[2 * i]) / 1e6);
      for (const b of [times, this.#resolved!]) b.destroy();
      timing.destroy();
      [this.#times, this.#resolved] = [null, null];
    }
    into.push({ kernels: kernels.map(describe), gpuMs, wallMs, hostMs });
  }
}
