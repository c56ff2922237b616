// Training loops: progress, the loss read only every N steps, metrics lines, and Ctrl-C that stops cleanly.

import type { Tensor } from "../mod.ts";
import { appendMetric } from "./rundir.ts";
import { type Out, Progress } from "./progress.ts";

/** Thrown after Ctrl-C once the work so far is saved: the CLI exits with status 130. */
export class Interrupted extends Error {}

let sigints = 0;
let watching = false;

function onSigint(): void {
  sigints++;
  if (sigints > 1) {
    console.error("\njetfold: interrupted again; exiting without saving");
    Deno.exit(130);
  }
  console.error("\njetfold: interrupted; finishing the current step and saving (Ctrl-C again to quit at once)");
}

/** From now on Ctrl-C (SIGINT) asks the running loop to stop after its current step. */
export function watchInterrupt(): void {
  if (watching || Deno.build.os === "windows") return;
  Deno.addSignalListener("SIGINT", onSigint);
  watching = true;
}

/** Restores the default Ctrl-C behavior. */
export function unwatchInterrupt(): void {
  if (!watching) return;
  Deno.removeSignalListener("SIGINT", onSigint);
  watching = false;
}

/** Whether Ctrl-C was pressed since `watchInterrupt`. */
export function interrupted(): boolean {
  return sigints > 0;
}

/** Options of `trainLoop`. */
export interface LoopOptions {
  readonly out: Out;
  /** Shown before the bar, e.g. "pretrain". */
  readonly label: string;
  /** Written as `phase` in metrics.jsonl. */
  readonly phase: string;
  /** Run directory for metrics.jsonl, or null for none. */
  readonly dir: string | null;
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

// Signal listeners run as tasks of the event loop, and a training step that does no I/O resolves in
// microtasks alone, so a loop that only awaits steps would never see Ctrl-C until it next logged.
// Yielding one task a quarter second at most lets the listener run, at under 2% of the time.
const YIELD_EVERY_MS = 250;
let lastYield = 0;

async function letSignalsIn(): Promise<void> {
  const now = performance.now();
  if (now - lastYield < YIELD_EVERY_MS) return;
  await new Promise((resolve) => setTimeout(resolve, 0));
  lastYield = performance.now();
}

/** Runs steps `start..total-1` with progress output; stops early (cleanly) on Ctrl-C. */
export async function trainLoop(o: LoopOptions): Promise<LoopResult> {
  const progress = new Progress(o.out, o.label, { total: o.total, start: o.start });
  const losses: [number, number][] = [];
  const t0 = performance.now();
  let done = o.start;
  progress.update(done);
  try {
    while (done < o.total) {
      await letSignalsIn();
      if (interrupted()) break;
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
      if (o.dir !== null) await appendMetric(o.dir, { phase: o.phase, step: done, loss: value, seconds });
      progress.update(done, value);
    }
  } finally {
    progress.finish();
  }
  return { step: done, interrupted: done < o.total, losses };
}
