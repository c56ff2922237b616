// `--model SOURCE`: a Hugging Face model (a local directory or a Hub repo id) as config, params and tokenizer.
// Shared by generate, train, tune and info, and meant for search too: one option spec, one loader, one text codec.

import {
  type BackendInfo,
  type HubProgress,
  loadPretrained,
  mixer,
  type ModelConfig,
  type ModelParams,
  modelTemplate,
  paramCount,
  type PretrainedConfig,
  pretrainedConfig,
  type Tokenizer,
  treeDispose,
  treeLeaves,
  treePaths,
} from "../mod.ts";
import { InputError, str } from "./args.ts";
import { sizeText } from "./input.ts";
import { memoryLimit } from "./limits.ts";
import { type Out, write } from "./progress.ts";

/** The `--model` option. */
export const MODEL_SOURCE = {
  model: str(null, "a Hugging Face model: a directory, or a Hub repo id org/name[@revision] (cache, else download)", {
    meta: "SOURCE",
  }),
} as const;

/** A model that `--model` named, loaded. */
export interface LoadedModel {
  /** What was given: the directory or the repo id. */
  readonly source: string;
  /** How to find it again from anywhere: a directory's absolute path, or the repo id (for a run's records). */
  readonly ref: string;
  readonly config: ModelConfig;
  readonly params: ModelParams;
  /** The model's tokenizer; null where its directory has none. */
  readonly tokenizer: Tokenizer | null;
}

// One redrawn line per file on a terminal; elsewhere a line when a file is done.
function downloadProgress(out: Out): (p: HubProgress) => void {
  let last = 0;
  return (p) => {
    if (out.quiet) return;
    const total = p.total ?? 0, done = total > 0 && p.loaded >= total;
    const text = `  downloading ${p.file}: ${sizeText(p.loaded)}${total > 0 ? ` of ${sizeText(total)}` : ""}`;
    if (out.tty) {
      const now = performance.now();
      if (!done && now - last < 100) return;
      last = now;
      write(`\r\x1b[2K${text}${done ? "\n" : ""}`);
    } else if (done) console.log(text);
  };
}

/**
 * Loads `--model SOURCE` with `loadPretrained`, showing download progress; any problem (a missing directory or
 * repo, no network permission, offline without a cached copy, a bad config or weights) is an InputError.
 */
export async function loadModel(source: string, out: Out): Promise<LoadedModel> {
  try {
    const m = await loadPretrained(source, { hub: { onProgress: downloadProgress(out) } });
    const isDir = await Deno.stat(source).then((s) => s.isDirectory, () => false);
    const ref = isDir ? await Deno.realPath(source) : source;
    return { source, ref, config: m.config, params: m.params, tokenizer: m.tokenizer ?? null };
  } catch (e) {
    throw new InputError(`--model ${source}: ${(e as Error).message.replace(/^loadPretrained: /, "")}`);
  }
}

/** The model's tokenizer, or an InputError saying that `what` needs one. */
export function tokenizerOf(m: LoadedModel, what: string): Tokenizer {
  if (m.tokenizer !== null) return m.tokenizer;
  throw new InputError(
    `--model ${m.source} has no tokenizer (tokenizer.json, or vocab.json and merges.txt), which ${what} needs`,
  );
}

/**
 * The ids of `text` by `tokenizer`, each checked to be a row of the embedding (`vocab` rows): a tokenizer can name
 * more ids than a model has rows, and such an id would gather garbage rather than fail.
 */
export function encodeText(tokenizer: Tokenizer, text: string, vocab: number, what: string): number[] {
  const ids = tokenizer.encode(text, { addSpecial: false });
  const bad = ids.findIndex((id) => !(Number.isInteger(id) && id >= 0 && id < vocab));
  if (bad >= 0) {
    throw new InputError(
      `${what}: the tokenizer gives id ${ids[bad]} (token ${bad}), but the model's embedding has ${vocab} rows`,
    );
  }
  return ids;
}

/**
 * The text of generated ids. A model may produce ids its tokenizer does not have (Qwen pads the embedding past the
 * vocabulary); those show as `<id N>` instead of failing the decode.
 */
export function decodeText(tokenizer: Tokenizer, ids: readonly number[]): string {
  let text = "", run: number[] = [];
  const flush = () => (text += run.length ? tokenizer.decode(run) : "", run = []);
  for (const id of ids) {
    if (id >= 0 && id < tokenizer.vocabSize) run.push(id);
    else flush(), text += `<id ${id}>`;
  }
  flush();
  return text;
}

/** Bytes of a model's f32 params. */
export function paramBytes(params: ModelParams): number {
  return 4 * paramCount(params);
}

/** One line about a loaded model: where from, its layers and its parameter count. */
export function modelSummary(m: LoadedModel): string {
  const kinds = new Map<string, number>();
  for (const b of m.config.blocks) {
    const k = b.attn === "swa" ? `swa:${b.window}` : b.attn;
    kinds.set(k, (kinds.get(k) ?? 0) + 1);
  }
  const layers = [...kinds].map(([k, n]) => `${n} x ${k}`).join(", ");
  return `${m.source}: ${m.config.blocks.length} layers (${layers}), width ${m.config.width}, ` +
    `${paramCount(m.params).toLocaleString("en-US")} parameters`;
}

/** What `--model` names, without its weights (a Hub repo id fetches config.json and the tokenizer only). */
export interface ModelConfigOf extends PretrainedConfig {
  readonly source: string;
}

/** Reads `--model SOURCE`'s config and tokenizer, as `loadModel` reads the whole model. */
export async function readModelConfig(source: string, out: Out): Promise<ModelConfigOf> {
  try {
    return { source, ...await pretrainedConfig(source, { hub: { onProgress: downloadProgress(out) } }) };
  } catch (e) {
    throw new InputError(`--model ${source}: ${(e as Error).message.replace(/^pretrainedConfig: /, "")}`);
  }
}

// Layer kinds by runs of indices: "0-2 jet, 3 mha, 4-5 jet".
function layerRuns(cfg: ModelConfig): string {
  const kinds = cfg.blocks.map((b) => b.attn === "swa" ? `swa:${b.window}` : b.attn);
  const runs: string[] = [];
  for (let i = 0; i < kinds.length;) {
    let j = i;
    while (j + 1 < kinds.length && kinds[j + 1] === kinds[i]) j++;
    runs.push(`${i === j ? i : `${i}-${j}`} ${kinds[i]}`);
    i = j + 1;
  }
  return runs.join(", ");
}

/** Decoding state bytes of one sequence at `context` tokens, per layer (f32; the conv tail of blocks with conv). */
export function stateBytesOf(cfg: ModelConfig, context: number): number[] {
  return cfg.blocks.map((b) => mixer(cfg, b).stateBytes(context) + (b.conv ? (cfg.convWidth - 1) * cfg.width * 4 : 0));
}

/** The lines `info --model` prints. */
export function describeModel(m: ModelConfigOf, context: number): string[] {
  const { config: cfg } = m;
  const template = modelTemplate(cfg); // only its shapes are counted
  const params = paramCount(template);
  treeDispose(template);
  const state = stateBytesOf(cfg, context), total = state.reduce((a, b) => a + b, 0);
  const byKind = new Map<string, number>();
  cfg.blocks.forEach((b, i) => byKind.set(b.attn, (byKind.get(b.attn) ?? 0) + state[i]));
  const kinds = [...byKind].map(([k, n]) => `${k} ${sizeText(n)}`).join(", ");
  const limit = memoryLimit(), weights = 4 * params, need = weights + total;
  const tok = m.tokenizer;
  return [
    `model: ${m.source}`,
    `  architecture: ${m.architecture}, width ${cfg.width}, ${cfg.heads} heads (${cfg.kvHeads} key/value), ` +
    `ffn ${cfg.ffnHidden}, vocab ${cfg.vocab}${cfg.tied === false ? "" : ", tied embeddings"}`,
    `  layers: ${cfg.blocks.length}: ${layerRuns(cfg)}`,
    `  parameters: ${params.toLocaleString("en-US")} (${sizeText(weights)} in f32, as jetfold holds them)`,
    `  decoding state at ${context.toLocaleString("en-US")} tokens: ${sizeText(total)} a sequence (${kinds})`,
    `  memory to decode at that context: about ${sizeText(need)} (weights and state), ` +
    `${need <= limit.bytes ? "within" : "over"} the limit of ${sizeText(limit.bytes)} (${limit.basis})`,
    `  tokenizer: ${
      tok === undefined ? "none" : `${tok.vocabSize.toLocaleString("en-US")} ids` +
        (tok.vocabSize !== cfg.vocab ? ` (the embedding has ${cfg.vocab.toLocaleString("en-US")} rows)` : "") +
        (tok.eosId !== undefined ? `, end of text ${tok.eosId}` : "")
    }`,
  ];
}

/**
 * Refuses, before any work, a model with a tensor larger than one buffer of the backend may be (WebGPU binds at
 * most maxStorageBufferBindingSize: 128 MiB on llvmpipe, less than a real model's embedding), naming the tensor,
 * its size and the limit: such tensors are not split across buffers yet. The largest activations of the work are
 * counted too: a prefill's attention scores (`batch` x heads x tokens^2) and the logits (`batch` x tokens x vocab).
 */
export function checkBuffers(
  m: { readonly source: string; readonly config: ModelConfig; readonly params: ModelParams },
  backend: Pick<BackendInfo, "name" | "capabilities">,
  work: { readonly batch: number; readonly tokens: number },
): void {
  const limit = backend.capabilities.maxBufferBytes;
  if (!Number.isFinite(limit)) return;
  const { config: cfg } = m, leaves = treeLeaves(m.params), paths = treePaths(m.params);
  const sized: [string, number][] = leaves.map((t, i) => [`tensor "${paths[i]}" [${t.shape.join(", ")}]`, 4 * t.size]);
  const hasAttention = cfg.blocks.some((b) => b.attn === "mha" || b.attn === "swa");
  const { batch, tokens } = work;
  if (hasAttention) sized.push([`the attention scores of ${tokens} tokens`, 4 * batch * cfg.heads * tokens * tokens]);
  sized.push([`the logits of ${tokens} tokens`, 4 * batch * tokens * cfg.vocab]);
  const over = sized.find(([, bytes]) => bytes > limit);
  if (over === undefined) return;
  const f = (n: number) => n.toLocaleString("en-US");
  throw new InputError(
    `--model ${m.source}: ${over[0]} needs ${sizeText(over[1])} (${f(over[1])} bytes), more than the ` +
      `${f(limit)} bytes one buffer may hold on the ${backend.name} backend here, and tensors are not split across ` +
      "buffers yet; use --backend wasm or cpu" + (over[0].startsWith("tensor") ? "" : ", or fewer tokens"),
  );
}
