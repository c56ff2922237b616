// Device buffers recycled by size class, so a steady training loop allocates nothing new.

import { liveStats } from "../stats.ts";

const STORAGE = 0x80 | 0x4 | 0x8; // STORAGE | COPY_SRC | COPY_DST
const STAGING = 0x1 | 0x8; // MAP_READ | COPY_DST

/** Rounds a request up to its size class: a power of two, at least 16 bytes. */
export function sizeClass(bytes: number): number {
  return Math.max(16, 2 ** Math.ceil(Math.log2(Math.max(bytes, 1))));
}

/** A pool of storage buffers (and, separately, of mappable staging buffers) keyed by size class. */
export class BufferPool {
  readonly #device: GPUDevice;
  readonly #free = new Map<number, GPUBuffer[]>();
  readonly #staging = new Map<number, GPUBuffer[]>();

  constructor(device: GPUDevice) {
    this.#device = device;
  }

  /** A storage buffer of at least `bytes` bytes, counted in `bytesInUse` until released. */
  acquire(bytes: number): GPUBuffer {
    const size = sizeClass(bytes);
    const buf = this.#free.get(size)?.pop();
    if (buf) liveStats.bytesPooled -= size;
    liveStats.bytesInUse += size;
    return buf ?? this.#device.createBuffer({ size, usage: STORAGE });
  }

  /** Returns a storage buffer to the pool. */
  release(buf: GPUBuffer): void {
    const list = this.#free.get(buf.size) ?? [];
    list.push(buf);
    this.#free.set(buf.size, list);
    liveStats.bytesInUse -= buf.size;
    liveStats.bytesPooled += buf.size;
  }

  /** A mappable buffer for reading back `bytes` bytes. */
  acquireStaging(bytes: number): GPUBuffer {
    const size = sizeClass(bytes);
    return this.#staging.get(size)?.pop() ?? this.#device.createBuffer({ size, usage: STAGING });
  }

  /** Returns an unmapped staging buffer. */
  releaseStaging(buf: GPUBuffer): void {
    const list = this.#staging.get(buf.size) ?? [];
    list.push(buf);
    this.#staging.set(buf.size, list);
  }
}
