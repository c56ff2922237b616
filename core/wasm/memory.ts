// The Wasm kernels' private memories, counted in stats(): their bytes are reserved by the backend
// but hold no tensor's value, so they count as `bytesPooled` beside the arena's free arrays, and
// bytes in use plus bytes pooled are what the backend really holds.

import { liveStats } from "../stats.ts";

// Bytes counted for each live memory; the counts leave the gauge when a memory is collected.
interface Counted {
  bytes: number;
}

const counted = new WeakMap<WebAssembly.Memory, Counted>();
let total = 0;
const collected = new FinalizationRegistry<Counted>((c) => {
  total -= c.bytes;
  liveStats.bytesPooled -= c.bytes;
});

/** Counts `memory`'s size again after it grew outside `reserve`. */
export function recount(memory: WebAssembly.Memory): void {
  const c = counted.get(memory);
  if (c === undefined) return;
  const now = memory.buffer.byteLength;
  total += now - c.bytes;
  liveStats.bytesPooled += now - c.bytes;
  c.bytes = now;
}

/** A new memory of a kernel (one 64 KiB page unless `desc` says otherwise), counted in stats(). */
export function kernelMemory(desc: WebAssembly.MemoryDescriptor = { initial: 1 }): WebAssembly.Memory {
  const memory = new WebAssembly.Memory(desc);
  const c = { bytes: 0 };
  counted.set(memory, c);
  collected.register(memory, c);
  recount(memory);
  return memory;
}

/** Grows `memory` to at least `bytes` (whole pages); the growth is counted in stats(). */
export function reserve(memory: WebAssembly.Memory, bytes: number): void {
  const have = memory.buffer.byteLength;
  if (bytes <= have) return;
  memory.grow(Math.ceil((bytes - have) / 65536));
  recount(memory);
}

/** @internal Bytes of all live kernel memories (what they add to stats().bytesPooled). */
export function kernelMemoryBytes(): number {
  return total;
}
