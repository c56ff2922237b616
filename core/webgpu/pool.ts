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
  // Sets, so a caller can ask for a particular free buffer back (see `acquire`).
  readonly #free = new Map<number, Set<GPUBuffer>>();
  readonly #staging = new Map<number, GPUBuffer[]>();
  // How many kernels of cached plans ask for each buffer again (see `claim`).
  readonly #claims = new WeakMap<GPUBuffer, number>();

  constructor(device: GPUDevice) {
    this.#device = device;
  }

  /**
   * A storage buffer of at least `bytes` bytes, counted in `bytesInUse` until released: the first
   * of `prefer` that is free and of the right size class, else a free one that no kernel claims,
   * else (with no preference) any free one, else a new one. A repeated plan prefers the buffers it
   * had last time, so its cached bind groups match again; not taking the buffers other kernels claim
   * keeps one miss (a parameter whose old buffers are still held) from cascading through the step.
   */
  acquire(bytes: number, prefer: readonly GPUBuffer[] = []): GPUBuffer {
    const size = sizeClass(bytes);
    const free = this.#free.get(size);
    let buf = prefer.find((b) => b.size === size && free?.has(b));
    if (buf === undefined && free !== undefined && free.size > 0) {
      for (const b of free) {
        if (!this.#claims.get(b)) {
          buf = b;
          break;
        }
      }
      if (prefer.length === 0) buf ??= free.values().next().value!;
    }
    if (buf) {
      free!.delete(buf);
      liveStats.bytesPooled -= size;
    }
    liveStats.bytesInUse += size;
    return buf ?? this.#device.createBuffer({ size, usage: STORAGE });
  }

  /** Notes that a kernel will ask for `buf` again (`by` +1), or no longer will (`by` -1). */
  claim(buf: GPUBuffer, by: 1 | -1): void {
    this.#claims.set(buf, (this.#claims.get(buf) ?? 0) + by);
  }

  /** Returns a storage buffer to the pool. */
  release(buf: GPUBuffer): void {
    const list = this.#free.get(buf.size) ?? new Set();
    list.add(buf);
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
