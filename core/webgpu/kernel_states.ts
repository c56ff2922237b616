// What the WebGPU runner keeps per kernel of a cached plan, so a repeated step prepares nothing on
// the host: its pipeline (compiled once per WGSL string), the bind groups it made for the buffers it
// was bound to, and the buffers each output was given last (asked for again from the pool).

import { liveStats } from "../stats.ts";
import type { KernelPlan } from "./plan.ts";
import type { BufferPool } from "./pool.ts";

// Bind groups a kernel of a cached plan keeps (most recent first), and buffers it remembers per
// output: a training loop's parameters alternate between two sets of buffers (the step's inputs and
// its outputs), so two would do; a few more absorb a loop that disposes late.
const BIND_GROUPS_KEPT = 4;
const RECENT_KEPT = 4;

/** The uniform buffer (null when no kernel has uniforms), then a kernel's inputs and outputs. */
export type Bound = readonly (GPUBuffer | null)[];

/** One kernel's state (see the module's comment). */
export interface KernelState {
  readonly pipeline: GPUComputePipeline;
  readonly layout: GPUBindGroupLayout;
  readonly groups: { readonly buffers: Bound; readonly group: GPUBindGroup }[];
  /** Per output, the buffers it was given last (newest first). */
  readonly recent: GPUBuffer[][];
}

/** The states of the kernels of cached plans (keyed by their plan slot) and the pipelines by WGSL. */
export class KernelStates {
  /** Compiled pipelines by WGSL (compileKernels fills it). */
  readonly pipelines = new Map<string, GPUComputePipeline>();
  readonly #states = new WeakMap<object, KernelState>();
  readonly #device: GPUDevice;
  readonly #pool: BufferPool;

  constructor(device: GPUDevice, pool: BufferPool) {
    this.#device = device;
    this.#pool = pool;
  }

  /** True when this kernel of a cached plan has run before (its pipeline exists). */
  has(k: KernelPlan): boolean {
    return k.slot !== undefined && this.#states.has(k.slot);
  }

  /** The pipeline and recent bind groups of a kernel, made on its first run. */
  of(k: KernelPlan): KernelState {
    const have = k.slot && this.#states.get(k.slot);
    if (have) return have;
    const pipeline = this.pipelines.get(k.wgsl)!;
    const state: KernelState = { pipeline, layout: pipeline.getBindGroupLayout(0), groups: [], recent: [] };
    if (k.slot) this.#states.set(k.slot, state);
    return state;
  }

  /**
   * `recent` with `buf` first (moved there if it was in it), at most RECENT_KEPT long; the pool
   * knows which buffers some kernel will ask for again.
   */
  remember(recent: readonly GPUBuffer[], buf: GPUBuffer): GPUBuffer[] {
    const had = recent.includes(buf);
    const next = [buf, ...recent.filter((b) => b !== buf)];
    if (!had) this.#pool.claim(buf, 1);
    if (next.length > RECENT_KEPT) this.#pool.claim(next.pop()!, -1);
    return next;
  }

  /**
   * A bind group for these buffers: one this kernel made before for the same buffers, else a new
   * one. `buffers` is the uniform buffer (or null), then the inputs and the outputs in binding order.
   */
  bindGroup(k: KernelPlan, state: KernelState, buffers: Bound, uniform: number): GPUBindGroup {
    const at = state.groups.findIndex((g) => g.buffers.every((b, j) => b === buffers[j]));
    if (at >= 0) {
      const hit = state.groups[at];
      if (at > 0) state.groups.splice(at, 1), state.groups.unshift(hit);
      return hit.group;
    }
    const entries: GPUBindGroupEntry[] = buffers.slice(1).map((buffer, j) => ({
      binding: j + 1,
      resource: { buffer: buffer! },
    }));
    if (k.uniforms.length > 0) {
      const size = Math.ceil(k.uniforms.length / 4) * 16;
      entries.push({ binding: 0, resource: { buffer: buffers[0]!, offset: uniform, size } });
    }
    const group = this.#device.createBindGroup({ label: k.label, layout: state.layout, entries });
    liveStats.bindGroups++;
    state.groups.unshift({ buffers, group });
    if (state.groups.length > BIND_GROUPS_KEPT) state.groups.pop();
    return group;
  }
}
