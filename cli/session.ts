// What the commands share around their phases: the command record, backend choice, data, sampling, reports.

import {
  type BackendInfo,
  backendInfo,
  type BackendName,
  decodeBytes,
  type ModelConfig,
  type ModelParams,
  setBackend,
  type Tokenizer,
} from "../mod.ts";
import { InputError, type Specs, type Values } from "./args.ts";
import { codecOf, type DataMeta, type DataOptions, type DataSource, openData, reopenData } from "./data.ts";
import { decodeText, encodeText } from "./model.ts";
import { Interrupted, interrupts } from "./interrupt.ts";
import { refuseIgnored } from "./options.ts";
import { type Out, paint, say } from "./progress.ts";
import { type Ctx, sample } from "./phases.ts";
import { renderReport, type ReportInput } from "./report.ts";
import type { Saved } from "./checkpoint.ts";
import { FILES, openRun, type RunDir, type RunPlan } from "./rundir.ts";
import type { SearchRecord } from "./postnas.ts";

/** The work of a command, run once its options and inputs are checked. */
export type Job = () => Promise<void>;

/** A subcommand: its options, how it checks them, and what it does with them. */
export interface Command<S extends Specs = Specs> {
  readonly name: string;
  /** One line for the command list. */
  readonly summary: string;
  /** A paragraph for `--help`. */
  readonly description: string;
  readonly specs: S;
  /**
   * Checks every option and reads every input (config files, data, checkpoints) before any work:
   * it computes nothing, writes nothing, and any problem is an InputError. Returns the work.
   */
  prepare(values: Values<S>, given: ReadonlySet<string>): Job | Promise<Job>;
}

/** Declares a command (keeps the option types flowing into `prepare`). */
export function defineCommand<S extends Specs>(c: Command<S>): Command {
  return c as unknown as Command;
}

/** The package version (as in deno.json; the CLI tests check they agree), for config.json and `info`. */
export const VERSION = "0.1.0";

/** Selects the backend (`null`: JETFOLD_BACKEND or auto) and prints which one runs and why. */
export async function startBackend(out: Out, name: BackendName | null): Promise<BackendInfo> {
  let info: BackendInfo;
  try {
    info = name === null ? await backendInfo() : await setBackend(name);
  } catch (e) {
    throw new InputError((e as Error).message.replace(/^(setBackend|JETFOLD_BACKEND): /, "backend: "));
  }
  const adapter = info.adapter ? ` on ${info.adapter}` : "";
  say(out, `${paint(out, "dim", "backend:")} ${info.name}${adapter} (${info.reason})`);
  return info;
}

/** What config.json holds: the command, the version and every option value, reusable with --config. */
export function configRecord(command: string, values: Record<string, unknown>): Record<string, unknown> {
  const { config: _c, out: _o, resume: _r, ...rest } = values;
  return { command, version: VERSION, ...rest };
}

/**
 * Opens the planned run (creating its directory and config.json) and runs `fn` in it. When `fn`
 * fails, or a signal forces an exit, before the run holds any result, the run is removed again.
 */
export async function inRun<T>(plan: RunPlan, values: Record<string, unknown>, fn: (run: RunDir) => Promise<T>) {
  const run = await openRun(plan, configRecord(plan.command, values));
  return await within(run, fn);
}

/** Runs `fn` in an open run, removing the run if it fails before any result (see `inRun`). */
export async function within<T>(run: RunDir, fn: (run: RunDir) => Promise<T>): Promise<T> {
  interrupts.beforeExit(() => run.discardSync());
  try {
    return await fn(run);
  } catch (e) {
    await run.discard();
    throw e;
  } finally {
    interrupts.beforeExit(null);
  }
}

/**
 * The data of a command that starts from a checkpoint: what the checkpoint was trained on, with any
 * data option given explicitly (--data, --seed, --seq-len, --batch, --pairs, --queries) taking precedence.
 */
export async function dataFor(o: DataOptions, given: ReadonlySet<string>, from: DataMeta | null): Promise<DataSource> {
  if (from === null) return openData(o);
  const pick = <K extends keyof DataOptions>(k: K, fallback: DataOptions[K]) => (given.has(k) ? o[k] : fallback);
  const file = from.source === "toy" ? null : from.file;
  const merged: DataOptions = {
    data: pick("data", file),
    seed: pick("seed", from.seed),
    seqLen: pick("seqLen", from.seqLen),
    batch: pick("batch", from.batch),
    pairs: pick("pairs", from.source === "toy" ? from.pairs : o.pairs),
    queries: pick("queries", from.source === "toy" ? from.queries ?? null : o.queries),
    evalBatch: o.evalBatch,
  };
  const same = merged.data === file && merged.seed === from.seed && merged.seqLen === from.seqLen;
  if (same && from.source !== "toy") return reopenData(from, o.evalBatch);
  // A model fine-tuned from a --model reads text through that model's tokenizer, whatever the file.
  return openData(merged, from.source === "tokens" ? await codecOf(from) : undefined);
}

/** Refuses `--pairs` and `--queries` where the data is a text file (pairs shape the toy data only). */
export function refuseToyOptions(given: ReadonlySet<string>, data: DataSource): void {
  if (data.meta.source !== "toy") {
    refuseIgnored(given, ["pairs", "queries"], `on text data (${data.meta.file}): they shape the toy data`);
  }
}

/**
 * The prompt: `--prompt` text as UTF-8 bytes (never empty: the option refuses ""), or through the data's tokenizer
 * where it has one (a `--model`'s), or else the data's held-out prompt.
 */
export async function promptOf(data: DataSource | null, text: string | null) {
  if (text !== null && data?.tokenizer !== undefined && data.meta.source === "tokens") {
    return { ids: encodeText(data.tokenizer, text, data.meta.vocab, "--prompt"), expect: null };
  }
  if (text !== null) return { ids: Array.from(new TextEncoder().encode(text)), expect: null };
  if (data === null) throw new Error("promptOf: no --prompt and no data to take a prompt from");
  return await data.prompt();
}

/** The most tokens a prompt can have: `--prompt` in UTF-8 bytes, else the held-out prompt's bound (seq-len). */
export function promptLength(text: string | null, seqLen: number): number {
  return text === null ? seqLen : new TextEncoder().encode(text).length;
}

/** A generated sample, for printing and the report. */
export interface Sample {
  readonly prompt: string;
  readonly output: string;
  readonly ids: readonly number[];
  readonly promptIds: readonly number[];
}

/**
 * Greedily continues the prompt and prints prompt, token ids and text (and the recall check on toy data); the text
 * is shown through `tokenizer` where given (a `--model`'s), else byte by byte.
 */
export async function sampleAndPrint(
  out: Out,
  model: { readonly params: ModelParams; readonly config: ModelConfig },
  prompt: { readonly ids: readonly number[]; readonly expect: number | null },
  tokens: number,
  tokenizer?: Tokenizer,
): Promise<Sample> {
  const ids = await sample(model.params, model.config, prompt.ids, tokens);
  const show = (t: readonly number[]) => tokenizer === undefined ? decodeBytes(t) : decodeText(tokenizer, t);
  const s = { prompt: show(prompt.ids), output: show(ids), ids, promptIds: prompt.ids };
  console.log(`  prompt: ${JSON.stringify(s.prompt)}`);
  console.log(`  ids:    ${ids.join(" ")}`);
  console.log(`  text:   ${JSON.stringify(s.output)}`);
  if (prompt.expect !== null && ids.length > 0) {
    const ok = ids[0] === prompt.expect;
    const verdict = ok ? paint(out, "green", "recalled correctly") : paint(out, "yellow", "not recalled");
    console.log(
      `  recall: the query asks for ${JSON.stringify(decodeBytes([prompt.expect]))}; the model wrote ` +
        `${JSON.stringify(decodeBytes([ids[0]]))}: ${verdict}`,
    );
  }
  return s;
}

/** Writes report.html from the run's metrics.jsonl and what the command learned. */
export async function writeReport(
  run: RunDir,
  r: Omit<ReportInput, "metrics" | "sample" | "search"> & { sample?: Sample | null; search?: SearchRecord | null },
): Promise<void> {
  const metrics = await run.metrics();
  const html = renderReport({ ...r, metrics, sample: r.sample ?? null, search: r.search ?? null });
  await run.writeText(FILES.report, html);
}

/** After a loop: when a signal stopped it, saves `saved` as the run's checkpoint and throws Interrupted. */
export async function stopIfInterrupted(ctx: Ctx, what: string, saved: () => Saved, hint: string): Promise<void> {
  if (!interrupts.requested) return;
  await ctx.run.saveCheckpoint(saved());
  console.log(`interrupted during ${what}; saved ${ctx.run.file(FILES.checkpoint)}${hint}`);
  throw new Interrupted();
}

/**
 * The work a signal would have cut short is saved (`saved` says what): from now on a signal exits at
 * once. When one came while the work was held, says so and throws Interrupted.
 */
export function releaseSaved(saved: string): void {
  try {
    interrupts.release();
  } catch (e) {
    console.log(`interrupted; saved ${saved}`);
    throw e;
  }
}

/** "12.0 KiB", "1.5 MiB". */
export function bytes(n: number): string {
  return n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(1)} MiB` : `${(n / 1024).toFixed(1)} KiB`;
}
