// Self-describing checkpoints: a model's params, its config, its data position and optimizer state in one safetensors file.

import {
  adamw,
  type AdamWState,
  decodeSafetensors,
  type ModelConfig,
  modelConfig,
  type ModelParams,
  modelTemplate,
  saveSafetensors,
} from "../mod.ts";
import { checkDataMeta, type DataMeta } from "./data.ts";
import { InputError, readBytes } from "./input.ts";
import { memoryLimit } from "./limits.ts";

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

/** Loads a checkpoint written by `saveCheckpoint`; any problem with the file is an InputError naming it. */
export async function loadCheckpoint(path: string): Promise<Saved> {
  const bytes = await readBytes(path, "checkpoint", memoryLimit().bytes);
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
  let config: ModelConfig, template: ModelParams;
  let data: DataMeta | null = null;
  try {
    config = modelConfig(parseMeta(metadata, META.config) as Parameters<typeof modelConfig>[0]);
    if (metadata[META.data] !== undefined) data = checkDataMeta(parseMeta(metadata, META.data));
    template = modelTemplate(config); // only its names, shapes and dtypes are used (initModel would draw them)
  } catch (e) {
    throw bad(`invalid metadata: ${(e as Error).message}`);
  }
  const stepText = metadata[META.step] ?? "0";
  const step = /^\d+$/.test(stepText) ? Number(stepText) : NaN;
  if (!Number.isSafeInteger(step)) throw bad(`invalid step ${JSON.stringify(metadata[META.step])}`);
  if (metadata[META.optimizer] === "adamw") {
    const { tree } = decode({ ...template, optimizer: adamw({ lr: 0 }).init(template) });
    const { optimizer, ...params } = tree;
    return { config, params: params as ModelParams, step, data, opt: optimizer };
  }
  return { config, params: decode(template).tree, step, data, opt: null };
}

// One metadata entry as JSON; a parse error names the entry.
function parseMeta(metadata: Readonly<Record<string, string>>, key: string): unknown {
  try {
    return JSON.parse(metadata[key]);
  } catch (e) {
    throw new Error(`"${key}" is not JSON (${(e as Error).message})`);
  }
}
