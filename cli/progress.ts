// Terminal output: colors (off with NO_COLOR or without a TTY), progress bars, plain lines elsewhere.

/** Where and how the CLI prints. */
export interface Out {
  /** Only results: no progress and no per-step lines. */
  readonly quiet: boolean;
  /** stdout is a terminal: progress redraws one line. */
  readonly tty: boolean;
  /** ANSI colors allowed (a terminal, and NO_COLOR unset). */
  readonly color: boolean;
}

/** Output settings from the environment and `--quiet`. */
export function makeOut(quiet: boolean): Out {
  const tty = Deno.stdout.isTerminal();
  let noColor = false;
  try {
    noColor = (Deno.env.get("NO_COLOR") ?? "") !== "";
  } catch {
    noColor = true; // without env permission, stay plain
  }
  return { quiet, tty, color: tty && !noColor };
}

const CODES = { bold: [1, 22], dim: [2, 22], green: [32, 39], yellow: [33, 39], red: [31, 39], cyan: [36, 39] };

/** Wraps text in an ANSI style when colors are on. */
export function paint(out: Out, style: keyof typeof CODES, text: string): string {
  const [on, off] = CODES[style];
  return out.color ? `\x1b[${on}m${text}\x1b[${off}m` : text;
}

const encoder = new TextEncoder();

/** Writes text to stdout without a newline. */
export function write(text: string): void {
  const bytes = encoder.encode(text);
  for (let done = 0; done < bytes.length;) done += Deno.stdout.writeSync(bytes.subarray(done));
}

/** Prints a line unless quiet (progress and commentary; results use `console.log`). */
export function say(out: Out, line: string): void {
  if (!out.quiet) console.log(line);
}

/** Seconds as "42s", "3m05s" or "1h02m". */
export function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "?";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

/**
 * Progress of a loop of `total` steps starting at `start`: on a terminal a redrawn bar with
 * steps/total, rate, ETA and the latest loss; otherwise one plain line per logged loss.
 */
export class Progress {
  readonly #out: Out;
  readonly #label: string;
  readonly #total: number;
  readonly #start: number;
  readonly #t0 = performance.now();
  #step: number;
  #loss: number | null = null;
  #drawn = 0;

  constructor(out: Out, label: string, opts: { readonly total: number; readonly start?: number }) {
    this.#out = out;
    this.#label = label;
    this.#total = opts.total;
    this.#start = this.#step = opts.start ?? 0;
  }

  #status(): string {
    const done = this.#step - this.#start, secs = (performance.now() - this.#t0) / 1000;
    const rate = done > 0 ? done / secs : NaN;
    const eta = done > 0 ? (this.#total - this.#step) / rate : NaN;
    const loss = this.#loss === null ? "" : `  loss ${this.#loss.toFixed(3)}`;
    const width = String(this.#total).length;
    return `${String(this.#step).padStart(width)}/${this.#total}  ${
      Number.isNaN(rate) ? "-" : rate.toFixed(1)
    } step/s  ` +
      `ETA ${duration(eta)}${loss}`;
  }

  /** Records that `step` steps are done (and the loss, when it was read). */
  update(step: number, loss?: number): void {
    this.#step = step;
    if (loss !== undefined) this.#loss = loss;
    if (this.#out.quiet) return;
    if (this.#out.tty) {
      const now = performance.now();
      if (loss === undefined && now - this.#drawn < 100 && step < this.#total) return;
      this.#drawn = now;
      const cols = 24, filled = Math.round(cols * Math.min(1, step / Math.max(this.#total, 1)));
      const bar = paint(this.#out, "cyan", "#".repeat(filled)) + paint(this.#out, "dim", ".".repeat(cols - filled));
      write(`\r\x1b[2K  ${this.#label} [${bar}] ${this.#status()}`);
    } else if (loss !== undefined) {
      console.log(`  ${this.#label} ${this.#status()}`);
    }
  }

  /** Ends the bar (a newline on a terminal). */
  finish(): void {
    if (!this.#out.quiet && this.#out.tty) write("\n");
  }
}
