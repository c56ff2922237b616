// Counters of device work since start or since resetStats(); deterministic, so tests can assert them.

/** Work counters (on the CPU backend only `realizations` counts; the others are device work). */
export interface Stats {
  /** Graph realizations (one per `data()`/`realize()` call that had pending work). */
  realizations: number;
  /** `queue.submit` calls. */
  submits: number;
  /** Compute dispatches recorded. */
  dispatches: number;
  /** Readbacks (buffer maps), one per read of one or more tensors together. */
  readbacks: number;
  /** Shader modules created. */
  shaderModules: number;
  /** Compute pipelines created. */
  pipelines: number;
  /** Bind groups created (a repeated step reuses those of the buffers it bound before). */
  bindGroups: number;
  /** Bytes of device buffers owned by live tensors. */
  bytesInUse: number;
  /** Bytes of device buffers kept in the pool for reuse. */
  bytesPooled: number;
}

const counters: Stats = {
  realizations: 0,
  submits: 0,
  dispatches: 0,
  readbacks: 0,
  shaderModules: 0,
  pipelines: 0,
  bindGroups: 0,
  bytesInUse: 0,
  bytesPooled: 0,
};

/** @internal The live counters, for the backends to update. */
export const liveStats: Stats = counters;

/**
 * A snapshot of the counters. `bytesInUse` and `bytesPooled` are gauges; the rest count events
 * since start or since `resetStats()`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { resetStats, stats, tensor } from "../mod.ts";
 * resetStats();
 * await tensor([1, 2]).add(1).data();
 * const s = stats();
 * assert.equal(s.realizations, 1);
 * assert.ok(s.submits <= 1 && s.readbacks <= 1); // one submit and one readback on WebGPU, none on the CPU
 * ```
 */
export function stats(): Stats {
  return { ...counters };
}

/**
 * Zeroes the event counters (the byte gauges keep their values).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { resetStats, stats, tensor } from "../mod.ts";
 * await tensor([1, 2]).add(1).data();
 * resetStats();
 * assert.equal(stats().realizations, 0);
 * ```
 */
export function resetStats(): void {
  for (
    const k of [
      "realizations",
      "submits",
      "dispatches",
      "readbacks",
      "shaderModules",
      "pipelines",
      "bindGroups",
    ] as const
  ) {
    counters[k] = 0;
  }
}
