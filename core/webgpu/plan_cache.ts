// The plan cache: a realization's graph keyed by its structure, so a repeated step reuses the
// kernels, WGSL and slots planned for the first one and only rebinds its tensors.

import { type Node, paramsKey, schedule, shapeKey } from "../graph.ts";
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
const cache = new Map<string, readonly CachedKernel[]>();

/** Structural key of a pending graph: ops, params, shapes, dtypes, wiring and the kind of each leaf. */
function signature(order: readonly Node[], targets: readonly Node[]): [string, Node[]] {
  const pos = new Map<Node, number>();
  order.forEach((t, i) => pos.set(t, i));
  const leaves: Node[] = [];
  let key = "";
  for (const t of order) {
    key += `${t.op}${paramsKey(t.params)}${t.dtype}${shapeKey(t.shape)}(`;
    for (let j = 0; j < t.src.length; j++) {
      const x = t.src[j];
      if (j > 0) key += ",";
      const p = pos.get(x);
      if (p !== undefined) {
        key += p;
        continue;
      }
      pos.set(x, ~leaves.length);
      leaves.push(x);
      const kind = x.size === 1 && hostValue(x) !== undefined ? "s" : "b";
      key += `L${kind}${x.dtype}${shapeKey(x.shape)}`;
    }
    key += ");";
  }
  key += `->${targets.map((t) => pos.get(t)).join(",")}`;
  return [key, leaves];
}

/** Like `planKernels`, but reuses the compiled plan of an earlier graph with the same structure. */
export function planCached(
  targets: readonly Node[],
  maxBuffers: number,
  features: KernelFeatures = DEFAULT_FEATURES,
): KernelPlan[] {
  const order = schedule(targets);
  const [structure, leaves] = signature(order, targets);
  const key = `${maxBuffers};${features.ownTrig};${features.tuning ?? 0};${structure}`;
  const at = (i: number) => (i >= 0 ? order[i] : leaves[~i]);
  const hit = cache.get(key);
  if (hit !== undefined) {
    return hit.map((c) => {
      const uniforms = [...c.uniforms];
      const scalars = c.scalars.map(([w, i]) => [w, at(i)] as const);
      for (const [w, t] of scalars) uniforms[w] = scalarBits(hostValue(t)![0], t.dtype);
      return { ...c, uniforms, scalars, inputs: c.inputs.map(at), outputs: c.outputs.map(at) };
    });
  }
  const kernels = planKernels(targets, maxBuffers, order, features);
  const index = new Map<Node, number>();
  order.forEach((t, i) => index.set(t, i));
  leaves.forEach((t, i) => index.set(t, ~i));
  const compiled = kernels.map((k) => ({
    ...k,
    slot: {},
    inputs: k.inputs.map((t) => index.get(t)!),
    outputs: k.outputs.map((t) => index.get(t)!),
    scalars: k.scalars.map(([w, t]) => [w, index.get(t)!] as const),
  }));
  if (cache.size >= CACHE_LIMIT) cache.delete(cache.keys().next().value!);
  cache.set(key, compiled);
  return kernels.map((k, i) => ({ ...k, slot: compiled[i].slot }));
}
