// Run directories: config.json, metrics.jsonl, search.json, report.html, and self-describing checkpoints.

import {
  adamw,
  type AdamWState,
  decodeSafetensors,
  initModel,
  type ModelConfig,
  modelConfig,
  type ModelParams,
  randomKey,
  saveSafetensors,
} from "../mod.ts";
import { InputError, readBytes } from "./args.ts";
import type { DataMeta } from "./data.ts";

/** The file names inside a run directory. */
export const FILES = {
  config: "config.json",
  checkpoint: "checkpoint.safetensors",
  metrics: "metrics.jsonl",
  search: "search.json",
  report: "report.html",
} as const;

function stamp(d: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${
    p(d.getSeconds())
  }`;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Creates the run directory: `out`, or `runs/<command>-<time>`. A directory that already holds a
 * run (a config.json) is refused rather than mixed with a new one.
 */
export async function makeRunDir(out: string | null, command: string): Promise<string> {
  let dir = out ?? `runs/${command}-${stamp(new Date())}`;
  if (out === null) { for (let n = 2; await exists(dir); n++) dir = `runs/${command}-${stamp(new Date())}-${n}`; }
  if (await exists(`${dir}/${FILES.config}`)) {
    throw new InputError(`--out ${dir} already holds a run (${FILES.config}); choose another directory`);
  }
  try {
    await Deno.mkdir(dir, { recursive: true });
  } catch (e) {
    throw new InputError(`--out ${dir}: cannot create the directory: ${(e as Error).message}`);
  }
  return dir;
}

/** Writes `value` as pretty JSON to `dir/name`. */
export async function writeJson(dir: string, name: string, value: unknown): Promise<void> {
  await Deno.writeTextFile(`${dir}/${name}`, JSON.stringify(value, null, 2) + "\n");
}

/** One line of metrics.jsonl. */
export interface MetricRecord {
  readonly phase: string;
  readonly step: number;
  readonly loss: number;
  readonly seconds: number;
  readonly [extra: string]: unknown;
}

/** Appends JSON lines to `dir/metrics.jsonl`. */
export function appendMetric(dir: string, record: MetricRecord): Promise<void> {
  return Deno.writeTextFile(`${dir}/${FILES.metrics}`, JSON.stringify(record) + "\n", { append: true });
}

/** The records of a metrics.jsonl file (none when it does not exist). */
export async function readMetrics(dir: string): Promise<MetricRecord[]> {
  let text = "";
  try {
    text = await Deno.readTextFile(`${dir}/${FILES.metrics}`);
  } catch {
    return [];
  }
  return text.split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l));
}

/** What a checkpoint holds: the model, and for resumable training the optimizer state and position. */
export interface Saved {
  readonly config: ModelConfig;
  readonly params: ModelParams;
  /** Training steps taken: the position in the data stream. */
  readonly step: number;
  /** How to rebuild the data, in order. */
  readonly data: DataMeta | null;
  /** AdamW state (present in `train` checkpoints, so a resume continues exactly). */
  readonly opt: AdamWState | null;
}

const META = { config: "jetfold.config", step: "jetfold.step", data: "jetfold.data", optimizer: "jetfold.optimizer" };

/** Saves a checkpoint atomically; the model config and position go into `__metadata__`. */
export async function saveCheckpoint(path: string, saved: Saved): Promise<void> {
  const metadata: Record<string, string> = {
    [META.config]: JSON.stringify(saved.config),
    [META.step]: String(saved.step),
    ...(saved.data ? { [META.data]: JSON.stringify(saved.data) } : {}),
    ...(saved.opt ? { [META.optimizer]: "adamw" } : {}),
  };
  const tree = saved.opt ? { ...saved.params, optimizer: saved.opt } : saved.params;
  await saveSafetensors(path, tree, { metadata });
}

/** The checkpoint of `--checkpoint FILE` or `--run DIR`; InputError when neither or both is given. */
export function checkpointOf(o: { readonly checkpoint: string | null; readonly run: string | null }): string {
  if (o.checkpoint !== null && o.run !== null) throw new InputError("give --checkpoint FILE or --run DIR, not both");
  if (o.checkpoint !== null) return o.checkpoint;
  if (o.run !== null) return `${o.run}/${FILES.checkpoint}`;
  throw new InputError("no model given: pass --checkpoint FILE or --run DIR");
}

/** Loads a checkpoint written by `saveCheckpoint`; any problem with the file is an InputError naming it. */
export async function loadCheckpoint(path: string): Promise<Saved> {
  const bytes = await readBytes(path, "checkpoint");
  const bad = (msg: string) => new InputError(`checkpoint ${path}: ${msg}`);
  const decode = <T>(like?: T) => {
    try {
      return decodeSafetensors<T>(bytes, like === undefined ? {} : { like });
    } catch (e) {
      throw bad((e as Error).message.replace(/^decodeSafetensors: /, ""));
    }
  };
  const { metadata } = decode();
  if (metadata[META.config] === undefined) throw bad(`no "${META.config}" in its metadata (not a jetfold checkpoint)`);
  let config: ModelConfig;
  let data: DataMeta | null = null;
  try {
    config = modelConfig(JSON.parse(metadata[META.config]));
    if (metadata[META.data] !== undefined) data = JSON.parse(metadata[META.data]);
  } catch (e) {
    throw bad(`invalid metadata: ${(e as Error).message}`);
  }
  const step = Number(metadata[META.step] ?? 0);
  if (!Number.isInteger(step) || step < 0) throw bad(`invalid step ${JSON.stringify(metadata[META.step])}`);
  const template = initModel(randomKey(0), config); // lazy: only its names, shapes and dtypes are used
  if (metadata[META.optimizer] === "adamw") {
    const { tree } = decode({ ...template, optimizer: adamw({ lr: 0 }).init(template) });
    const { optimizer, ...params } = tree;
    return { config, params: params as ModelParams, step, data, opt: optimizer };
  }
  return { config, params: decode(template).tree, step, data, opt: null };
}
