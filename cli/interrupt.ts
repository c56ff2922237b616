// Ctrl-C and SIGTERM: the first stops the running loop at its next step so its work is saved; another exits, never mid-save.

/** Thrown once the work so far is saved after a signal: the CLI exits with status 130. */
export class Interrupted extends Error {}

/** What the signal handling does to the process (a test passes its own). */
export interface InterruptHost {
  exit(code: number): void;
  warn(line: string): void;
}

type Signal = "SIGINT" | "SIGTERM";

// Signal listeners run as tasks of the event loop, and a training step that does no I/O resolves in
// microtasks alone, so a loop that only awaits steps would never see a signal. Yielding one task a
// quarter second at most lets the listener run, at under 2% of the time.
const YIELD_EVERY_MS = 250;

/**
 * The state of signal handling. While work is `held` (a loop whose progress would be lost), the first
 * SIGINT or SIGTERM only asks it to stop at the next step boundary; otherwise, and at the second
 * signal, the process exits with status 130 at once, unless a save is being written, in which case
 * it exits as soon as that write is complete.
 */
export class Interrupts {
  readonly #host: InterruptHost;
  #signals = 0;
  #held = false;
  #stopping = "finishing the current step and saving";
  #saving = 0;
  #exitPending = false;
  #lastYield = 0;
  #listening = false;
  #beforeExit: (() => void) | null = null;
  readonly #listener = () => this.signal("SIGINT");
  readonly #termListener = () => this.signal("SIGTERM");

  constructor(host: InterruptHost) {
    this.#host = host;
  }

  /** Whether a signal asked the work to stop. */
  get requested(): boolean {
    return this.#signals > 0;
  }

  /** Whether a save is being written now. */
  get saving(): boolean {
    return this.#saving > 0;
  }

  /** Installs the SIGINT and SIGTERM listeners (a no-op on Windows, which has no SIGTERM listener). */
  listen(): void {
    if (this.#listening || Deno.build.os === "windows") return;
    Deno.addSignalListener("SIGINT", this.#listener);
    Deno.addSignalListener("SIGTERM", this.#termListener);
    this.#listening = true;
  }

  /** Removes the listeners and forgets past signals. */
  unlisten(): void {
    if (this.#listening) {
      Deno.removeSignalListener("SIGINT", this.#listener);
      Deno.removeSignalListener("SIGTERM", this.#termListener);
    }
    this.#listening = false;
    this.#signals = 0;
    this.#held = false;
    this.#beforeExit = null;
  }

  /** Runs `fn` (synchronously) just before a signal exits the process, e.g. to remove an empty run. */
  beforeExit(fn: (() => void) | null): void {
    this.#beforeExit = fn;
  }

  /**
   * From now on a first signal asks the work to stop at its next step boundary instead of exiting;
   * `stopping` says what happens then ("finishing the current step and saving").
   */
  hold(stopping = "finishing the current step and saving"): void {
    this.#held = true;
    this.#stopping = stopping;
  }

  /**
   * The held work is saved: from now on a signal exits at once. Throws Interrupted when a signal
   * came while it was held (the caller has saved everything and says so first).
   */
  release(): void {
    this.#held = false;
    if (this.requested) throw new Interrupted();
  }

  /** Handles one signal (the listeners call this). */
  signal(name: Signal): void {
    this.#signals++;
    const what = name === "SIGTERM" ? "terminated" : "interrupted";
    if (this.#signals === 1 && this.#held) {
      this.#host.warn(`\njetfold: ${what}; ${this.#stopping} (Ctrl-C again to quit at once)`);
      return;
    }
    if (this.#saving > 0) {
      this.#exitPending = true;
      this.#host.warn(`\njetfold: ${what}; exiting as soon as the save being written is complete`);
      return;
    }
    this.#host.warn(`\njetfold: ${what}${this.#held ? " again; exiting without saving" : ""}`);
    this.#exit();
  }

  /** Runs a write that a signal must not cut short (a checkpoint, a metrics line, a JSON file). */
  async save<T>(fn: () => Promise<T>): Promise<T> {
    this.#saving++;
    try {
      return await fn();
    } finally {
      this.#saving--;
      if (this.#saving === 0 && this.#exitPending) this.#exit();
    }
  }

  /**
   * A step boundary: lets pending signals in (yielding to the event loop at most every 250 ms) and
   * says whether the work should stop here.
   */
  async boundary(): Promise<boolean> {
    const now = performance.now();
    if (now - this.#lastYield >= YIELD_EVERY_MS) {
      await new Promise((resolve) => setTimeout(resolve, 0));
      this.#lastYield = performance.now();
    }
    return this.requested;
  }

  #exit(): void {
    try {
      this.#beforeExit?.();
    } catch { /* exiting anyway */ }
    this.#host.exit(130);
  }
}

/** The process's signal handling. */
export const interrupts: Interrupts = new Interrupts({
  exit: (code) => Deno.exit(code),
  warn: (line) => console.error(line),
});
