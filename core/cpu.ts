// The CPU reference backend: interprets the pending graph with each primitive's `cpu` rule.

import type { CpuArray, CpuContext } from "./prim.ts";
import { PRIMS } from "./prims/mod.ts";
import { allocHost, type DType } from "./shape.ts";
import type { Tensor } from "./tensor.ts";

/** Numeric precision of the CPU backend's f32 tensors. */
export type Precision = "f32" | "f64";

/** Pending tensors reachable from `targets`, inputs before users (iterative, so deep graphs are fine). */
export function schedule(targets: readonly Tensor[]): Tensor[] {
  const order: Tensor[] = [];
  const state = new Map<Tensor, 1 | 2>(); // 1: inputs being visited, 2: done
  for (const root of targets) {
    const stack: Tensor[] = [root];
    while (stack.length > 0) {
      const t = stack[stack.length - 1];
      const src = t._src;
      if (src === null || state.get(t) === 2) {
        stack.pop();
        continue;
      }
      if (state.get(t) === 1) {
        state.set(t, 2);
        order.push(t);
        stack.pop();
        continue;
      }
      state.set(t, 1);
      for (const x of src.inputs) if (x._src !== null && !state.has(x)) stack.push(x);
    }
  }
  return order;
}

/** Computes every target on the CPU and stores its result in the tensor (cutting its graph). */
export function realizeCpu(targets: readonly Tensor[], precision: Precision): void {
  const ctx: CpuContext = {
    alloc: (
      dtype: DType,
      n: number,
    ) => (dtype === "f32" && precision === "f64" ? new Float64Array(n) : allocHost(dtype, n)),
  };
  const order = schedule(targets);
  const uses = new Map<Tensor, number>();
  for (const t of order) for (const x of t._src!.inputs) uses.set(x, (uses.get(x) ?? 0) + 1);
  const keep = new Set(targets);
  const values = new Map<Tensor, CpuArray>();
  const valueOf = (x: Tensor): CpuArray => {
    const v = x._data ?? values.get(x);
    if (v === undefined) throw new Error(`realize: input tensor of shape [${x.shape}] was disposed`);
    return v;
  };
  for (const t of order) {
    const { op, inputs, params } = t._src!;
    const ins = inputs.map(valueOf);
    // deno-lint-ignore no-explicit-any
    values.set(t, PRIMS[op].cpu(ins, inputs, t, params as any, ctx));
    for (const x of inputs) {
      const left = uses.get(x)! - 1;
      uses.set(x, left);
      if (left === 0 && !keep.has(x)) values.delete(x);
    }
  }
  for (const t of targets) {
    if (t._src !== null) {
      t._data = values.get(t)!;
      t._src = null;
    }
  }
}
