// Run directories: created when the work starts, written atomically, cleaned up after kills, removed after a failed start.

import { saveCheckpoint, type Saved } from "./checkpoint.ts";
import { InputError } from "./input.ts";
import { interrupts } from "./interrupt.ts";

/** The file names inside a run directory. */
export const FILES = {
  config: "config.json",
  checkpoint: "checkpoint.safetensors",
  metrics: "metrics.jsonl",
  search: "search.json",
  summary: "summary.json",
  report: "report.html",
} as const;

function stamp(d: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${
    p(d.getSeconds())
  }`;
}

async function statOf(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.stat(path);
  } catch {
    return null;
  }
}

/** Where a new run will be written: checked before any work, created by `openRun` when the work starts. */
export interface RunPlan {
  readonly dir: string;
  readonly command: string;
}

/**
 * Checks where a new run goes: `out`, or `runs/<command>-<time>`. A path that is a file, or a
 * directory that already holds a run (a config.json), is refused rather than mixed with a new one.
 * Creates nothing.
 */
export async function planRunDir(out: string | null, command: string): Promise<RunPlan> {
  let dir = out ?? `runs/${command}-${stamp(new Date())}`;
  if (out === null) { for (let n = 2; await statOf(dir); n++) dir = `runs/${command}-${stamp(new Date())}-${n}`; }
  const info = await statOf(dir);
  if (info !== null && !info.isDirectory) throw new InputError(`--out ${dir} exists and is not a directory`);
  let up = dirname(dir), above = await statOf(up);
  while (above === null && dirname(up) !== up) above = await statOf(up = dirname(up));
  if (above !== null && !above.isDirectory) throw new InputError(`--out ${dir}: ${up} is not a directory`);
  if (await statOf(`${dir}/${FILES.config}`)) {
    throw new InputError(`--out ${dir} already holds a run (${FILES.config}); choose another directory`);
  }
  return { dir, command };
}

// A file that an atomic write of one of the run's files left behind when the process was killed:
// `checkpoint.safetensors.1a2b3c4d.tmp` (saveSafetensors) or `config.json.1a2b3c4d.tmp` (writeAtomic).
const STALE = new RegExp(`^\\.?(${Object.values(FILES).map((f) => f.replace(".", "\\.")).join("|")})\\..*tmp$`);

/** Writes `data` to `path` through a temporary file renamed over it, so a reader never sees half a file. */
async function writeAtomic(path: string, data: string): Promise<void> {
  const tmp = `${path}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  try {
    await Deno.writeTextFile(tmp, data, { createNew: true });
    await Deno.rename(tmp, path);
  } finally {
    await Deno.remove(tmp).catch(() => {});
  }
}

/**
 * An open run directory. Every write goes through the interrupt guard, so a second Ctrl-C never cuts
 * one short; `discard` removes a run that failed before writing any result.
 */
export class RunDir {
  readonly dir: string;
  /** Directories this run created, innermost first (removed again by `discard`). */
  readonly #created: readonly string[];
  #results: boolean;

  constructor(dir: string, created: readonly string[], results: boolean) {
    this.dir = dir;
    this.#created = created;
    this.#results = results;
  }

  /** The path of a file in the run. */
  file(name: string): string {
    return `${this.dir}/${name}`;
  }

  /** Writes `value` as pretty JSON to `name`, atomically. */
  writeJson(name: string, value: unknown): Promise<void> {
    return this.writeText(name, JSON.stringify(value, null, 2) + "\n");
  }

  /** Writes text to `name`, atomically. */
  writeText(name: string, text: string): Promise<void> {
    if (name !== FILES.config) this.#results = true;
    return interrupts.save(() => writeAtomic(this.file(name), text));
  }

  /** Appends one line to metrics.jsonl. */
  appendMetric(record: MetricRecord): Promise<void> {
    this.#results = true;
    const line = JSON.stringify(record) + "\n";
    return interrupts.save(() => Deno.writeTextFile(this.file(FILES.metrics), line, { append: true }));
  }

  /** Saves the run's checkpoint (atomically: the old one stays until the new one is complete). */
  saveCheckpoint(saved: Saved): Promise<void> {
    this.#results = true;
    return interrupts.save(() => saveCheckpoint(this.file(FILES.checkpoint), saved));
  }

  /** The records of metrics.jsonl. */
  metrics(): Promise<MetricRecord[]> {
    return readMetrics(this.dir);
  }

  /** Removes the run when it has no result yet (only config.json): a failed start leaves nothing behind. */
  async discard(): Promise<void> {
    if (this.#results) return;
    await Deno.remove(this.file(FILES.config)).catch(() => {});
    for (const d of this.#created) await Deno.remove(d).catch(() => {}); // only while empty
  }

  /** `discard`, synchronously (for an exit forced by a signal). */
  discardSync(): void {
    if (this.#results) return;
    const quiet = (f: () => void) => {
      try {
        f();
      } catch { /* leave what cannot be removed */ }
    };
    quiet(() => Deno.removeSync(this.file(FILES.config)));
    for (const d of this.#created) quiet(() => Deno.removeSync(d));
  }
}

async function removeStale(dir: string): Promise<void> {
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && STALE.test(e.name)) await Deno.remove(`${dir}/${e.name}`).catch(() => {});
  }
}

/**
 * Creates the planned run directory (and any missing parents), removes what killed writes left there
 * and writes `config` as config.json.
 */
export async function openRun(plan: RunPlan, config: Record<string, unknown>): Promise<RunDir> {
  const { dir } = plan;
  const missing: string[] = [];
  for (let d = dir; !(await statOf(d)); d = dirname(d)) {
    missing.push(d);
    if (dirname(d) === d) break;
  }
  if (await statOf(`${dir}/${FILES.config}`)) {
    throw new InputError(`--out ${dir} already holds a run (${FILES.config}); choose another directory`);
  }
  try {
    await Deno.mkdir(dir, { recursive: true });
  } catch (e) {
    throw new InputError(`--out ${dir}: cannot create the directory: ${(e as Error).message}`);
  }
  await removeStale(dir);
  const run = new RunDir(dir, missing, false);
  await run.writeJson(FILES.config, config);
  return run;
}

/**
 * Reopens a run to continue it from its checkpoint at `step`: removes what killed writes left, drops
 * the metrics lines past `step` (logged after the checkpoint, so the resumed run logs them again) and
 * any torn last line, and rewrites config.json.
 */
export async function reopenRun(dir: string, step: number, config: Record<string, unknown>): Promise<RunDir> {
  await removeStale(dir);
  const run = new RunDir(dir, [], true);
  let text: string | null = null;
  try {
    text = await Deno.readTextFile(run.file(FILES.metrics));
  } catch { /* no metrics yet */ }
  if (text !== null) {
    const lines = text.split("\n").filter((l) => l.trim() !== "");
    const kept = lines.filter((l) => {
      const r = parseRecord(l);
      return r !== null && r.step <= step;
    });
    if (kept.length !== lines.length || (text !== "" && !text.endsWith("\n"))) {
      await run.writeText(FILES.metrics, kept.map((l) => l + "\n").join(""));
    }
  }
  await run.writeJson(FILES.config, config);
  return run;
}

function dirname(path: string): string {
  const cut = path.replace(/\/+$/, "").lastIndexOf("/");
  return cut < 0 ? "." : cut === 0 ? "/" : path.slice(0, cut);
}

/** One line of metrics.jsonl. */
export interface MetricRecord {
  readonly phase: string;
  readonly step: number;
  readonly loss: number;
  readonly seconds: number;
  readonly [extra: string]: unknown;
}

function parseRecord(line: string): MetricRecord | null {
  try {
    const r = JSON.parse(line);
    return typeof r === "object" && r !== null && typeof r.step === "number" ? r : null;
  } catch {
    return null;
  }
}

/** The records of a metrics.jsonl file (none when it does not exist; a torn line is skipped). */
export async function readMetrics(dir: string): Promise<MetricRecord[]> {
  let text = "";
  try {
    text = await Deno.readTextFile(`${dir}/${FILES.metrics}`);
  } catch {
    return [];
  }
  return text.split("\n").map(parseRecord).filter((r): r is MetricRecord => r !== null);
}

/** The checkpoint of `--checkpoint FILE` or `--run DIR`; InputError when neither or both is given. */
export function checkpointOf(o: { readonly checkpoint: string | null; readonly run: string | null }): string {
  if (o.checkpoint !== null && o.run !== null) throw new InputError("give --checkpoint FILE or --run DIR, not both");
  if (o.checkpoint !== null) return o.checkpoint;
  if (o.run !== null) return `${o.run}/${FILES.checkpoint}`;
  throw new InputError("no model given: pass --checkpoint FILE or --run DIR");
}
