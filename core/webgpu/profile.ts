// The WebGPU profiler: per-kernel device time from timestamp queries (or per-submit wall time where
// the adapter has none), with each kernel's ops and shapes, summed over the kernels of a run.

import { openWebGpu } from "./mod.ts";
import type { WebGpuRunner } from "./run.ts";

/** One kernel of a profiled submit: its outputs' ops and shapes, what it fuses, what it reads. */
export interface ProfiledKernel {
  /** The outputs' ops and shapes, e.g. "matmul [64,128]" or "add [16] + mul [16]". */
  readonly label: string;
  /** The primitives computed inside the kernel besides its outputs (inlined views, fused prologues). */
  readonly ops: readonly string[];
  /**
   * Its variant where it has several: a matmul's register tile ("tile 16x8", rows x columns per
   * thread) or workgroup-memory tile ("wg 64x64x16 tile 4x4": the block rows x columns x depth a
   * workgroup stages, then each thread's tile).
   */
  readonly variant?: string;
  /** The shapes of the buffers it reads. */
  readonly inputs: readonly (readonly number[])[];
}

/** One profiled submit: its kernels, their device times where measured, its wall and host time. */
export interface ProfileRecord {
  /** The kernels of the submit, in dispatch order. */
  readonly kernels: readonly ProfiledKernel[];
  /** Milliseconds per kernel from timestamp queries; null where the adapter has no `timestamp-query`. */
  readonly gpuMs: readonly number[] | null;
  /** Milliseconds from just before the submit to the device reporting it done (includes the wait). */
  readonly wallMs: number;
  /** Host milliseconds spent lowering, planning and encoding (not compiling, not in `submit`). */
  readonly hostMs: number;
}

/** What `profileKernels` measured, and the value of the function it ran. */
export interface Profile<T> {
  /** What the profiled function returned. */
  readonly result: T;
  /** The WebGPU adapter, or null where none exists. */
  readonly adapter: string | null;
  /**
   * "timestamps": per-kernel device time from timestamp queries; "wall": per-submit wall time only
   * (the adapter has no `timestamp-query`); "none": no WebGPU adapter, nothing was measured.
   */
  readonly method: "timestamps" | "wall" | "none";
  /** The WebGPU submits `fn` made, in order (none when it ran on another backend). */
  readonly submits: readonly ProfileRecord[];
}

/**
 * Runs `fn` with the WebGPU backend's profiler on and returns its result with what each WebGPU
 * submit ran and how long it took. Each realization inside waits for the device (so the run is
 * slower than unprofiled); the tensors it computes are the same. Realizations on other backends
 * are not recorded; without an adapter `method` is "none" and nothing is.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { profileKernels, tensor } from "../../mod.ts";
 * const x = tensor([1, 2, 3]);
 * const p = await profileKernels(() => x.exp().sum().data());
 * assert.ok(Math.abs(p.result[0] - (Math.E + Math.E ** 2 + Math.E ** 3)) < 1e-4);
 * // On WebGPU: one submit, its kernels named by ops and shapes ("sum [] ..."), each timed.
 * for (const s of p.submits) assert.equal(s.gpuMs?.length ?? s.kernels.length, s.kernels.length);
 * ```
 */
export async function profileKernels<T>(fn: () => T | Promise<T>): Promise<Profile<Awaited<T>>> {
  const runner = await openWebGpu() as WebGpuRunner | null;
  if (runner === null) return { result: await fn(), adapter: null, method: "none", submits: [] };
  if (runner.profiling) throw new Error("profileKernels: a profile is already being recorded; nest none");
  const records: ProfileRecord[] = [];
  runner.profileInto(records);
  try {
    const result = await fn();
    const method = runner.gpu.timestamps && records.every((r) => r.gpuMs !== null) ? "timestamps" : "wall";
    return { result, adapter: runner.adapter, method, submits: records };
  } finally {
    runner.profileInto(null);
  }
}

/** Options of `formatProfile`. */
export interface FormatProfileOptions {
  /** Rows shown, the most expensive first (default 20); the rest are summed in one line. */
  readonly top?: number;
}

/**
 * The profile as a markdown table: with timestamps, one row per distinct kernel (ops and shapes)
 * with its calls, total and mean device time and share; without, one row per submit with its wall
 * time and the kernels it ran. A header line gives the adapter, method, submits and host time.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatProfile, profileKernels, tensor } from "../../mod.ts";
 * const text = formatProfile(await profileKernels(() => tensor([1, 2]).exp().data()), { top: 5 });
 * assert.ok(text.includes("submits"));
 * ```
 */
export function formatProfile<T>(p: Profile<T>, opts: FormatProfileOptions = {}): string {
  const top = opts.top ?? 20;
  const host = p.submits.reduce((a, r) => a + r.hostMs, 0), wall = p.submits.reduce((a, r) => a + r.wallMs, 0);
  const kernels = p.submits.reduce((a, r) => a + r.kernels.length, 0);
  if (p.method === "none") return "no WebGPU adapter: nothing was profiled";
  const head = `${p.adapter}: ${p.submits.length} submits, ${kernels} kernels, host ${ms(host)}, ` +
    `submit-to-done ${ms(wall)} (${
      p.method === "timestamps"
        ? "kernel times from timestamp queries"
        : "wall time per submit; the adapter has no timestamp-query"
    })`;
  const rows: string[][] = [];
  if (p.method === "timestamps") {
    const by = new Map<string, { calls: number; total: number }>();
    for (const r of p.submits) {
      r.kernels.forEach((k, i) => {
        const notes = [...(k.variant ? [k.variant] : []), ...(k.ops.length > 0 ? [`fuses ${k.ops.join(", ")}`] : [])];
        const fused = notes.length > 0 ? ` (${notes.join("; ")})` : "";
        const key = `${k.label}${fused} <- ${k.inputs.map((s) => `[${s}]`).join(" ")}`;
        const e = by.get(key) ?? by.set(key, { calls: 0, total: 0 }).get(key)!;
        e.calls++;
        e.total += r.gpuMs![i];
      });
    }
    const all = [...by].sort((a, b) => b[1].total - a[1].total);
    const sum = all.reduce((a, [, e]) => a + e.total, 0);
    const row = (name: string, calls: number, total: number) => [
      name,
      `${calls}`,
      ms(total),
      ms(total / calls),
      `${sum > 0 ? (100 * total / sum).toFixed(1) : "0.0"}%`,
    ];
    for (const [key, e] of all.slice(0, top)) rows.push(row(key, e.calls, e.total));
    const rest = all.slice(top);
    if (rest.length > 0) {
      const calls = rest.reduce((a, [, e]) => a + e.calls, 0), total = rest.reduce((a, [, e]) => a + e.total, 0);
      rows.push(row(`${rest.length} other kernels`, calls, total));
    }
    rows.push(row("all kernels", kernels, sum));
    return [head, table(["kernel (outputs <- inputs)", "calls", "device time", "mean", "share"], rows)].join("\n");
  }
  const shown = [...p.submits].sort((a, b) => b.wallMs - a.wallMs).slice(0, top);
  for (const r of shown) {
    const names = r.kernels.slice(0, 3).map((k) => k.label).join(", ");
    const more = r.kernels.length > 3 ? `, and ${r.kernels.length - 3} more` : "";
    rows.push([
      r.kernels.length > 0 ? `${names}${more}` : "(a readback)",
      `${r.kernels.length}`,
      ms(r.wallMs),
      ms(r.hostMs),
    ]);
  }
  return [head, table(["submit (its kernels)", "kernels", "wall time", "host time"], rows)].join("\n");
}

function ms(v: number): string {
  return v >= 100 ? `${v.toFixed(0)} ms` : v >= 1 ? `${v.toFixed(2)} ms` : `${(v * 1000).toFixed(0)} µs`;
}

function table(head: readonly string[], rows: readonly string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: readonly string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(" | ")} |`;
  return [line(head), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...rows.map(line)].join("\n");
}

/**
 * Host milliseconds of the last WebGPU realizations that ran kernels (at most 64, newest last):
 * lowering, planning and encoding, without compiling, submitting or waiting for the device. Empty
 * where no adapter exists.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { hostEncodeTimes, realize, tensor } from "../../mod.ts";
 * await realize([tensor([1, 2]).exp()]);
 * assert.ok((await hostEncodeTimes()).every((ms) => ms >= 0));
 * ```
 */
export async function hostEncodeTimes(): Promise<number[]> {
  const runner = await openWebGpu() as WebGpuRunner | null;
  return runner === null ? [] : [...runner.hostTimes()];
}
