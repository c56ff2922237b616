// The plan cache: a realization's graph keyed by its structure, so a repeated step reuses the
// kernels, WGSL and slots planned for the first one and only rebinds its tensors.

import { type Node, schedule } from "../graph.ts";
import { StructureCache, structureOf } from "../plan_key.ts";
import { hostValue } from "../storage.ts";
import { DEFAULT_FEATURES, type KernelFeatures, scalarBits } from "./emit.ts";
import { type KernelPlan, planKernels } from "./plan.ts";

// A plan with tensors replaced by their positions: pending nodes in schedule order (>= 0) and leaves
// in first-use order (< 0, as ~index), so one compiled plan serves every graph of the same structure.
interface CachedKernel extends Omit<KernelPlan, "inputs" | "outputs" | "scalars"> {
  readonly inputs: readonly number[];
  readonly outputs: readonly number[];
  readonly scalars: readonly (readonly [number, number])[];
}

const CACHE_LIMIT = 128;
const cache = new StructureCache<readonly CachedKernel[]>(CACHE_LIMIT);

// A leaf is bound as a uniform scalar (a host value of one element) or as a buffer.
const leafKind = (x: Node) => (x.size === 1 && hostValue(x) !== undefined ? 1 : 0);

/** Like `planKernels`, but reuses the compiled plan of an earlier graph with the same structure. */
export function planCached(
  targets: readonly Node[],
  maxBuffers: number,
  features: KernelFeatures = DEFAULT_FEATURES,
): KernelPlan[] {
  const order = schedule(targets);
  // Structure codes (core/plan_key.ts): the backend's limits and features first, each leaf's kind
  // of binding, and the targets' positions last.
  const prefix = [maxBuffers, features.ownTrig, features.tuning ?? ""];
  const s = structureOf(order, new Set(targets), { prefix, leafCode: leafKind, outputs: targets });
  const leaves = s.leaves, at = (i: number) => (i >= 0 ? order[i] : leaves[~i]);
  let fresh: KernelPlan[] | null = null;
  const cached = cache.get(s, () => {
    fresh = planKernels(targets, maxBuffers, order, features);
    const index = new Map<Node, number>();
    order.forEach((t, i) => index.set(t, i));
    leaves.forEach((t, i) => index.set(t, ~i));
    return fresh.map((k) => ({
      ...k,
      slot: {},
      inputs: k.inputs.map((t) => index.get(t)!),
      outputs: k.outputs.map((t) => index.get(t)!),
      scalars: k.scalars.map(([w, t]) => [w, index.get(t)!] as const),
    }));
  });
  if (fresh !== null) return (fresh as KernelPlan[]).map((k, i) => ({ ...k, slot: cached[i].slot }));
  return cached.map((c) => {
    const uniforms = [...c.uniforms];
    const scalars = c.scalars.map(([w, i]) => [w, at(i)] as const);
    for (const [w, t] of scalars) uniforms[w] = scalarBits(hostValue(t)![0], t.dtype);
    return { ...c, uniforms, scalars, inputs: c.inputs.map(at), outputs: c.outputs.map(at) };
  });
}
