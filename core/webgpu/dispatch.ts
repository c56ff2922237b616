// What dispatching a planned kernel needs besides its pipeline: its workgroup grid, the limits a
// device would reject it for (said before anything is encoded), and the uniform words of a
// realization's kernels packed into one buffer at aligned offsets.

import type { Node } from "../graph.ts";
import type { Gpu } from "./device.ts";
import type { KernelPlan } from "./plan.ts";

const UNIFORM = 0x40 | 0x8; // UNIFORM | COPY_DST
const ALIGN = 256; // minUniformBufferOffsetAlignment's largest allowed value

/** Bytes a node occupies on the device (bool is stored as u32). */
export const bytesOf = (t: Node): number => Math.max(4 * t.size, 4);

/** Workgroups along x and y: as many along x as the device allows, the rest along y. */
export function gridOf(gpu: Pick<Gpu, "maxWorkgroupsPerDimension">, k: KernelPlan): [number, number] {
  const groups = Math.ceil(k.threads / k.workgroupSize);
  const x = Math.min(groups, gpu.maxWorkgroupsPerDimension);
  return [x, Math.ceil(groups / x)];
}

/** Throws, in a sentence naming the kernel and the limit, what the device would reject. */
export function checkLimits(gpu: Gpu, k: KernelPlan): void {
  const { maxWorkgroupSize, maxWorkgroupsPerDimension: most } = gpu;
  if (k.workgroupSize > maxWorkgroupSize) {
    throw new Error(
      `webgpu: the kernel for ${k.label} uses workgroups of ${k.workgroupSize} invocations, above this ` +
        `adapter's ${maxWorkgroupSize}; use the CPU backend`,
    );
  }
  const [, y] = gridOf(gpu, k);
  if (y > most) {
    throw new Error(
      `webgpu: the kernel for ${k.label} needs ${Math.ceil(k.threads / k.workgroupSize)} workgroups, above this ` +
        `adapter's ${most} x ${most}; split the work or use the CPU backend`,
    );
  }
  for (const t of [...k.outputs, ...k.inputs]) {
    if (bytesOf(t) > gpu.maxBindingSize) {
      const mb = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;
      throw new Error(
        `webgpu: ${k.outputs[0].op} [${k.outputs[0].shape}] needs a ${mb(bytesOf(t))} buffer for [${t.shape}], ` +
          `above this adapter's ${mb(gpu.maxBindingSize)} binding limit; split the work or use the CPU backend`,
      );
    }
  }
}

/** One uniform buffer, grown as needed, holding every kernel's uniforms of the realization at hand. */
export class UniformBlock {
  readonly #device: GPUDevice;
  #buffer: GPUBuffer | null = null;

  constructor(device: GPUDevice) {
    this.#device = device;
  }

  /** Writes each kernel's uniforms at its own aligned offset; the buffer is null when none has any. */
  write(kernels: readonly KernelPlan[]): [GPUBuffer | null, number[]] {
    const offsets: number[] = [];
    let total = 0;
    for (const k of kernels) {
      offsets.push(total);
      total += Math.ceil((Math.ceil(k.uniforms.length / 4) * 16) / ALIGN) * ALIGN;
    }
    if (total === 0) return [null, offsets];
    if (this.#buffer === null || this.#buffer.size < total) {
      this.#buffer?.destroy();
      this.#buffer = this.#device.createBuffer({ size: Math.max(total, 4096) * 2, usage: UNIFORM });
    }
    const words = new Uint32Array(total / 4);
    kernels.forEach((k, i) => words.set(k.uniforms, offsets[i] / 4));
    this.#device.queue.writeBuffer(this.#buffer, 0, words);
    return [this.#buffer, offsets];
  }
}
