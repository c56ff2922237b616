// Where realized values live: host arrays (the CPU backend's results; constants carry theirs in
// their leaf) and, for device-resident leaves, the backend that owns them. Tensors hold no storage.

import type { Node } from "./graph.ts";
import type { CpuArray } from "./prim.ts";

/** What storage needs of a backend that keeps values off the host. */
export interface DeviceStore {
  /** The backend's name, for error messages. */
  readonly name: string;
  /** Host copies of leaves this store holds, in one transfer. */
  read(leaves: readonly Node[]): Promise<CpuArray[]>;
  /** Frees whatever the store keeps for `leaf` (its value, or a copy of a host value). */
  release(leaf: Node): void;
}

const host = new WeakMap<Node, CpuArray>();
const owners = new WeakMap<Node, DeviceStore>();
const stores = new Set<DeviceStore>();
const released = new WeakSet<Node>();

/** Makes `store` known, so that releasing a host leaf also frees its copies there. */
export function addStore(store: DeviceStore): void {
  stores.add(store);
}

/** Stores a host value for a leaf (constants, uploads, CPU results). */
export function putHost(leaf: Node, value: CpuArray): void {
  if (value.length !== leaf.size) throw new Error(`storage: ${value.length} values for a leaf of ${leaf.size}`);
  host.set(leaf, value);
}

/** Records that a device store holds `leaf`'s value. */
export function putDevice(leaf: Node, store: DeviceStore): void {
  owners.set(leaf, store);
}

/** The host value of a leaf, if it lives on the host. */
export function hostValue(leaf: Node): CpuArray | undefined {
  if (leaf.value !== null) return released.has(leaf) ? undefined : leaf.value;
  return host.get(leaf);
}

/** The device store holding a leaf, if it lives on a device. */
export function deviceOf(leaf: Node): DeviceStore | undefined {
  return owners.get(leaf);
}

/** True when the leaf's value was released (disposed). */
export function isReleased(leaf: Node): boolean {
  return released.has(leaf);
}

/** Host values of leaves, downloading device-resident ones (one transfer per store). */
export async function hostValues(leaves: readonly Node[], where: string): Promise<CpuArray[]> {
  const out = new Array<CpuArray>(leaves.length);
  const byStore = new Map<DeviceStore, number[]>();
  leaves.forEach((leaf, i) => {
    const h = hostValue(leaf);
    if (h !== undefined) return (out[i] = h);
    const s = owners.get(leaf);
    if (s === undefined) throw missing(leaf, where);
    (byStore.get(s) ?? byStore.set(s, []).get(s)!).push(i);
  });
  for (const [s, idx] of byStore) {
    const values = await s.read(idx.map((i) => leaves[i]));
    idx.forEach((i, j) => (out[i] = values[j]));
  }
  return out;
}

/** The error for a leaf without a value: it was disposed. */
export function missing(leaf: Node, where: string): Error {
  return new Error(`${where}: input tensor of shape [${leaf.shape}] was disposed`);
}

/** Frees a leaf's value everywhere; using it afterwards is an error. */
export function releaseLeaf(leaf: Node): void {
  released.add(leaf);
  host.delete(leaf);
  owners.delete(leaf);
  for (const s of stores) s.release(leaf);
}
