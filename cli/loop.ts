// Training loops: progress, the loss read only every N steps, metrics lines, and a signal that stops them cleanly.

import type { Tensor } from "../mod.ts";
import { interrupts } from "./interrupt.ts";
import type { MetricRecord } from "./rundir.ts";
import { type Out, Progress } from "./progress.ts";

/** Options of `trainLoop`. */
export interface LoopOptions {
  readonly out: Out;
  /** Shown before the bar, e.g. "pretrain". */
  readonly label: string;
  /** Written as `phase` in metrics.jsonl. */
  readonly phase: string;
  /** Where each logged loss goes (a run's metrics.jsonl), or null for nowhere. */
  readonly metrics: ((record: MetricRecord) => Promise<void>) | null;
  /** Steps already taken (0, or the checkpoint's step on resume). */
  readonly start: number;
  /** Step count at the end. */
  readonly total: number;
  /** Read and log the loss every this many steps (reads cost a device sync). */
  readonly logEvery: number;
  /** Takes step `i` (0-based) and returns its loss, realized but not read. */
  readonly step: (i: number) => Promise<Tensor>;
}

/** What a loop did. */
export interface LoopResult {
  /** Steps taken at the end (less than `total` when interrupted). */
  readonly step: number;
  readonly interrupted: boolean;
  /** Logged (step, loss) pairs. */
  readonly losses: readonly (readonly [number, number])[];
}

/** Runs steps `start..total-1` with progress output; stops early (cleanly) after a signal. */
export async function trainLoop(o: LoopOptions): Promise<LoopResult> {
  const progress = new Progress(o.out, o.label, { total: o.total, start: o.start });
  const losses: [number, number][] = [];
  const t0 = performance.now();
  let done = o.start;
  progress.update(done);
  try {
    while (done < o.total) {
      if (await interrupts.boundary()) break;
      const loss = await o.step(done);
      done++;
      if (done % o.logEvery !== 0 && done !== o.total) {
        loss.dispose();
        progress.update(done);
        continue;
      }
      const value = await loss.item();
      loss.dispose();
      if (!Number.isFinite(value)) {
        throw new Error(
          `${o.label}: the loss is ${value} at step ${done}; training diverged (try a lower learning rate)`,
        );
      }
      losses.push([done, value]);
      const seconds = Math.round(performance.now() - t0) / 1000;
      if (o.metrics !== null) await o.metrics({ phase: o.phase, step: done, loss: value, seconds });
      progress.update(done, value);
    }
  } finally {
    progress.finish();
  }
  return { step: done, interrupted: done < o.total, losses };
}
