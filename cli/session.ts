// What the commands share around their phases: the command record, backend choice, data, sampling, reports.

import {
  type BackendInfo,
  backendInfo,
  type BackendName,
  decodeBytes,
  type ModelConfig,
  type ModelParams,
  setBackend,
} from "../mod.ts";
import { InputError, type Specs, type Values } from "./args.ts";
import { type DataMeta, type DataOptions, type DataSource, openData, reopenData } from "./data.ts";
import { Interrupted, interrupted } from "./loop.ts";
import { type Out, paint, say } from "./progress.ts";
import { type Ctx, sample } from "./phases.ts";
import { renderReport, type ReportInput } from "./report.ts";
import { FILES, readMetrics, saveCheckpoint, type Saved, writeJson } from "./rundir.ts";
import type { SearchRecord } from "./postnas.ts";

/** A subcommand: its options and what it does with them. */
export interface Command<S extends Specs = Specs> {
  readonly name: string;
  /** One line for the command list. */
  readonly summary: string;
  /** A paragraph for `--help`. */
  readonly description: string;
  readonly specs: S;
  run(values: Values<S>, given: ReadonlySet<string>): Promise<void>;
}

/** Declares a command (keeps the option types flowing into `run`). */
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

/** Writes config.json: the command, the version and every option value, reusable with --config. */
export function writeConfig(dir: string, command: string, values: Record<string, unknown>): Promise<void> {
  const { config: _c, out: _o, resume: _r, ...rest } = values;
  return writeJson(dir, FILES.config, { command, version: VERSION, ...rest });
}

/**
 * The data of a command that starts from a checkpoint: what the checkpoint was trained on, with any
 * data option given explicitly (--data, --seed, --seq-len, --batch, --pairs) taking precedence.
 */
export function dataFor(o: DataOptions, given: ReadonlySet<string>, from: DataMeta | null): Promise<DataSource> {
  if (from === null) return openData(o);
  const pick = <K extends keyof DataOptions>(k: K, fallback: DataOptions[K]) => (given.has(k) ? o[k] : fallback);
  const file = from.source === "text" ? from.file : null;
  const merged: DataOptions = {
    data: pick("data", file),
    seed: pick("seed", from.seed),
    seqLen: pick("seqLen", from.seqLen),
    batch: pick("batch", from.batch),
    pairs: pick("pairs", from.source === "toy" ? from.pairs : o.pairs),
    evalBatch: o.evalBatch,
  };
  const same = merged.data === file && merged.seed === from.seed && merged.seqLen === from.seqLen;
  return same && from.source === "text" ? reopenData(from, o.evalBatch) : openData(merged);
}

/** The prompt: `--prompt` text as UTF-8 bytes, or the data's held-out prompt. */
export async function promptOf(data: DataSource, text: string | null) {
  if (text === null) return await data.prompt();
  const ids = Array.from(new TextEncoder().encode(text));
  if (ids.length === 0) throw new InputError("--prompt must not be empty");
  return { ids, expect: null };
}

/** A generated sample, for printing and the report. */
export interface Sample {
  readonly prompt: string;
  readonly output: string;
  readonly ids: readonly number[];
  readonly promptIds: readonly number[];
}

/** Greedily continues the prompt and prints prompt, token ids and text (and the recall check on toy data). */
export async function sampleAndPrint(
  out: Out,
  model: { readonly params: ModelParams; readonly config: ModelConfig },
  prompt: { readonly ids: readonly number[]; readonly expect: number | null },
  tokens: number,
): Promise<Sample> {
  const ids = await sample(model.params, model.config, prompt.ids, tokens);
  const s = { prompt: decodeBytes(prompt.ids), output: decodeBytes(ids), ids, promptIds: prompt.ids };
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
  dir: string,
  r: Omit<ReportInput, "metrics" | "sample" | "search"> & { sample?: Sample | null; search?: SearchRecord | null },
): Promise<void> {
  const metrics = await readMetrics(dir);
  const html = renderReport({ ...r, metrics, sample: r.sample ?? null, search: r.search ?? null });
  await Deno.writeTextFile(`${dir}/${FILES.report}`, html);
}

/** After a loop: when Ctrl-C stopped it, saves `saved` as the run's checkpoint and throws Interrupted. */
export async function stopIfInterrupted(ctx: Ctx, what: string, saved: () => Saved, hint: string): Promise<void> {
  if (!interrupted()) return;
  const path = `${ctx.dir}/${FILES.checkpoint}`;
  await saveCheckpoint(path, saved());
  console.log(`interrupted during ${what}; saved ${path}${hint}`);
  throw new Interrupted();
}

/** "12.0 KiB", "1.5 MiB". */
export function bytes(n: number): string {
  return n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(1)} MiB` : `${(n / 1024).toFixed(1)} KiB`;
}
