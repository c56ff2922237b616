// Pretrained models in the Hugging Face layout: a directory with config.json and safetensors weights, both ways.

import { readAll, treeFlatten, treePaths, treeUnflatten } from "../core/mod.ts";
import { Tensor } from "../core/tensor.ts";
import { fmt } from "../core/shape.ts";
import { checkFinite } from "./checkpoint_checks.ts";
import { architectureFor, fromHfConfig, toHfConfig } from "./hf_config.ts";
import { entryValues, readWeights, type WeightOut, writeWeights } from "./hf_weights.ts";
import { type ModelParams, modelTemplate } from "./model.ts";
import { directoryTokenizer, modelDirectory } from "./pretrained_source.ts";
import type { HubOptions } from "../hub/hub.ts";
import type { Tokenizer } from "../text/tokenizer.ts";
import { checkConfig, type ModelConfig } from "./spec.ts";

/** A model as `loadPretrained` returns it and `savePretrained` takes it. */
export interface Pretrained {
  /** The model's config. */
  readonly config: ModelConfig;
  /** Its params, exactly as `forward(params, tokens, config)` takes them. */
  readonly params: ModelParams;
  /**
   * The tokenizer of the directory (tokenizer.json, or vocab.json + merges.txt, with tokenizer_config.json), where it
   * has one. Its `vocabSize` may be below the embedding's rows (Qwen pads them); ids must lie below both to mean text.
   */
  readonly tokenizer?: Tokenizer;
}

/** Options of `loadPretrained`. */
export interface LoadPretrainedOptions {
  /** Load weights holding NaN or infinities (refused by default, naming the tensor). */
  readonly allowNonFinite?: boolean;
  /** For a Hub repo id: the cache, endpoint, token, offline mode and download progress (see `hubFile`). */
  readonly hub?: HubOptions;
}

/** Options of `savePretrained`. */
export interface SavePretrainedOptions {
  /** How the weights are stored: `"f32"` (exact; the default) or `"bf16"` (rounded to nearest even, as PyTorch does). */
  readonly dtype?: "f32" | "bf16";
  /** Shard the weights into files of at most this many bytes (a tensor larger than that gets a file of its own); 5e9 by default, as transformers does. */
  readonly maxShardBytes?: number;
}

// How a jetfold param is stored: its Hugging Face name, and whether it is a transposed linear weight.
interface Slot {
  readonly name: string;
  readonly transpose: boolean;
}

const JET_NAMES: Readonly<Record<string, string>> = {
  wq: "q_proj.weight",
  wk: "k_proj.weight",
  wv: "v_proj.weight",
  wg: "g_proj.weight",
  wb: "b_proj.weight",
  wa: "a_proj.weight",
  wo: "o_proj.weight",
  aLog: "A_log",
  dtBias: "dt_bias",
  norm: "o_norm.weight",
  "conv.w1": "dynamic_conv1d.kernel_generator.w1.weight",
  "conv.w2": "dynamic_conv1d.kernel_generator.w2.weight",
  "conv.b2": "dynamic_conv1d.kernel_generator.w2.bias",
};
const ATTENTION_NAMES: Readonly<Record<string, string>> = {
  wq: "q_proj.weight",
  wk: "k_proj.weight",
  wv: "v_proj.weight",
  wo: "o_proj.weight",
  bq: "q_proj.bias",
  bk: "k_proj.bias",
  bv: "v_proj.bias",
};
const BLOCK_NAMES: Readonly<Record<string, string>> = {
  norm1: "input_layernorm.weight",
  norm2: "post_attention_layernorm.weight",
  "ffn.w1": "mlp.gate_proj.weight",
  "ffn.w3": "mlp.up_proj.weight",
  "ffn.w2": "mlp.down_proj.weight",
};

// The Hugging Face name of a jetfold param path ("blocks.3.mixer.wq" -> "model.layers.3.self_attn.q_proj.weight").
function slotOf(path: string, cfg: ModelConfig): Slot {
  if (path === "embed") return { name: "model.embed_tokens.weight", transpose: false };
  if (path === "normf") return { name: "model.norm.weight", transpose: false };
  if (path === "head") return { name: "lm_head.weight", transpose: true };
  const m = /^blocks\.(\d+)\.(.+)$/.exec(path)!, i = Number(m[1]), rest = m[2], layer = `model.layers.${i}`;
  const table = cfg.blocks[i].attn === "jet" ? JET_NAMES : ATTENTION_NAMES;
  const hf = rest.startsWith("mixer.") ? `self_attn.${table[rest.slice(6)]}` : BLOCK_NAMES[rest];
  // Linear weights are [out, in] there and [in, out] here; vectors and the conv's bias are not.
  const transpose = hf.endsWith(".weight") && !hf.endsWith("norm.weight");
  return { name: `${layer}.${hf}`, transpose };
}

// [rows, cols] -> [cols, rows] on the host.
function transposed(values: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(values.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = values[r * cols + c];
  return out;
}

// The shape a param has in the file: linear weights reversed, the conv bias flat.
function storedShape(shape: readonly number[], slot: Slot): number[] {
  if (slot.transpose) return [shape[1], shape[0]];
  return slot.name.endsWith("w2.bias") ? [shape[0] * shape[1]] : [...shape];
}

async function readConfig(dir: string, where: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await Deno.readTextFile(`${dir}/config.json`);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new Error(`${where}: ${dir} has no config.json`);
    throw new Error(`${where}: could not read ${dir}/config.json: ${(e as Error).message}`, { cause: e });
  }
  try {
    const c = JSON.parse(text);
    if (typeof c === "object" && c !== null && !Array.isArray(c)) return c;
  } catch (e) {
    throw new Error(`${where}: config.json is not JSON (${(e as Error).message})`, { cause: e });
  }
  throw new Error(`${where}: config.json must hold a JSON object`);
}

// Tensors a reader may find and skip: RoPE tables older writers saved, and the head a tied model repeats.
function ignorable(name: string, cfg: ModelConfig): boolean {
  return name.endsWith(".rotary_emb.inv_freq") || (name === "lm_head.weight" && cfg.tied !== false);
}

/**
 * Loads a Hugging Face model: `source` is a directory, or a Hub repo id `org/name[@revision]`
 * whose files are found in the Hugging Face cache or downloaded into it (`opts.hub`: cache,
 * endpoint, token, `offline`, `onProgress`; downloads resume and need net permission, as for
 * `hubFile`). It reads `config.json` (JetNemotronForCausalLM, Qwen2ForCausalLM or
 * LlamaForCausalLM), `model.safetensors` or the shards `model.safetensors.index.json` names,
 * with F32, BF16 or F16 weights converted to f32 exactly, and the tokenizer where there is one
 * (tokenizer.json, or vocab.json + merges.txt; see `loadTokenizer`). `forward(params, tokens,
 * config)` then gives the original model's logits. Every check comes before any tensor is made:
 * an unknown architecture, a missing file or shard, a missing or unexpected tensor, or a shape
 * that disagrees with config.json is one error naming it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { block, forward, initModel, loadPretrained, modelConfig, randomKey, readAll, savePretrained, tensor } from "../mod.ts";
 * const config = modelConfig({ vocab: 16, width: 8, heads: 2, blocks: [block("mha", { bias: true })] });
 * const params = initModel(randomKey(0), config), dir = await Deno.makeTempDir();
 * await savePretrained(dir, { config, params }); // a Qwen2ForCausalLM directory
 * const loaded = await loadPretrained(dir);
 * assert.deepEqual(loaded.config, config);
 * const tokens = tensor([[1, 2, 3]], { dtype: "i32" });
 * const [a, b] = await readAll([forward(params, tokens, config), forward(loaded.params, tokens, loaded.config)]);
 * assert.deepEqual(a, b);
 * await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify({ architectures: ["GPT2LMHeadModel"] }));
 * await assert.rejects(loadPretrained(dir), /unknown architecture "GPT2LMHeadModel"/);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function loadPretrained(source: string, opts: LoadPretrainedOptions = {}): Promise<Pretrained> {
  const where = "loadPretrained";
  const dir = await modelDirectory(source, opts.hub ?? {}, where);
  const { cfg } = fromHfConfig(await readConfig(dir, where), where);
  const tokenizer = await directoryTokenizer(dir, where);
  const weights = await readWeights(dir, where);
  const template = modelTemplate(cfg); // only its structure and shapes are used
  const [leaves, def] = treeFlatten(template), paths = treePaths(template);
  const slots = paths.map((p) => slotOf(p, cfg));
  const wanted = new Set(slots.map((s) => s.name));
  const extra = [...weights.keys()].find((name) => !wanted.has(name) && !ignorable(name, cfg));
  if (extra !== undefined) {
    throw new Error(
      `${where}: tensor "${extra}" (in ${weights.get(extra)!.file}) has no place in the model config.json describes`,
    );
  }
  slots.forEach((slot, i) => {
    const e = weights.get(slot.name), want = storedShape(leaves[i].shape, slot);
    if (e === undefined) throw new Error(`${where}: tensor "${slot.name}" is missing (config.json needs ${fmt(want)})`);
    if (fmt(e.shape) !== fmt(want)) {
      throw new Error(
        `${where}: tensor "${slot.name}" in ${e.file} is ${fmt(e.shape)} but config.json implies ${fmt(want)}`,
      );
    }
  });
  // One tensor at a time, from disk: the bytes of one tensor are held beside the f32 params, never whole files.
  // Every tensor is read and checked before any is handed out, so an error leaves nothing half-loaded.
  const host: Float32Array[] = [];
  for (const slot of slots) {
    const e = weights.get(slot.name)!, values = entryValues({ code: e.code, bytes: await e.read() });
    if (!opts.allowNonFinite) checkFinite(slot.name, e.shape, values, `${where}: ${e.file}`);
    host.push(slot.transpose ? transposed(values, e.shape[0], e.shape[1]) : values);
  }
  // Each array is this function's alone (converted, copied or transposed from the bytes read): the tensors take them
  // as they are, where tensor() would copy every weight a second time and double the peak while loading.
  const params = treeUnflatten<ModelParams>(def, host.map((v, i) => Tensor.fromHost(v, leaves[i].shape, "f32")));
  return tokenizer === undefined ? { config: cfg, params } : { config: cfg, params, tokenizer };
}

/** What `pretrainedConfig` reads of a model without its weights. */
export interface PretrainedConfig {
  /** The model's config. */
  readonly config: ModelConfig;
  /** The architecture config.json names. */
  readonly architecture: string;
  /** The tokenizer, where the model has one. */
  readonly tokenizer?: Tokenizer;
}

/**
 * Reads a Hugging Face model's config.json and tokenizer without its weights: the same sources and
 * checks as `loadPretrained`, but a Hub repo id fetches only config.json and the tokenizer files,
 * so a model's size, layers and decoding state can be judged before gigabytes are downloaded.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { block, initModel, modelConfig, pretrainedConfig, randomKey, savePretrained } from "../mod.ts";
 * const config = modelConfig({ vocab: 16, width: 8, heads: 2, blocks: [block("jet"), block("mha", { bias: true })] });
 * const dir = await Deno.makeTempDir();
 * await savePretrained(dir, { config, params: initModel(randomKey(0), config) });
 * await Deno.remove(`${dir}/model.safetensors`); // not needed
 * const got = await pretrainedConfig(dir);
 * assert.deepEqual([got.architecture, got.config, got.tokenizer], ["JetNemotronForCausalLM", config, undefined]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function pretrainedConfig(source: string, opts: LoadPretrainedOptions = {}): Promise<PretrainedConfig> {
  const where = "pretrainedConfig";
  const dir = await modelDirectory(source, opts.hub ?? {}, where, { weights: false });
  const { arch, cfg } = fromHfConfig(await readConfig(dir, where), where);
  const tokenizer = await directoryTokenizer(dir, where);
  return tokenizer === undefined ? { config: cfg, architecture: arch } : { config: cfg, architecture: arch, tokenizer };
}

/**
 * @internal What `savePretrained` writes for `cfg`, without any values: config.json's object and every
 * tensor's name and stored shape in file order (the official attention's zero q/k/v biases included), so a
 * writer can stream tensors one at a time (the benchmark's random weights of the 2B geometry do).
 */
export function pretrainedLayout(cfg: ModelConfig, where = "pretrainedLayout"): {
  readonly json: Record<string, unknown>;
  readonly tensors: readonly { readonly name: string; readonly shape: readonly number[] }[];
} {
  checkConfig(cfg);
  const json = toHfConfig(cfg, architectureFor(cfg), where);
  const template = modelTemplate(cfg), [leaves] = treeFlatten(template), paths = treePaths(template);
  const tensors = leaves.map((t, i) => {
    const slot = slotOf(paths[i], cfg);
    return { name: slot.name, shape: storedShape(t.shape, slot) };
  });
  // The official attention always has q/k/v biases: zeros stand in for blocks without them.
  if ((json.architectures as string[])[0] === "JetNemotronForCausalLM") {
    cfg.blocks.forEach((b, i) => {
      if ((b.attn !== "mha" && b.attn !== "swa") || b.bias) return;
      for (const p of ["q", "k", "v"]) {
        const rows = tensors.find((t) => t.name === `model.layers.${i}.self_attn.${p}_proj.weight`)!.shape[0];
        tensors.push({ name: `model.layers.${i}.self_attn.${p}_proj.bias`, shape: [rows] });
      }
    });
  }
  return { json, tensors };
}

/**
 * Writes a model as a Hugging Face directory that transformers reads: `config.json` (with
 * `architectures`: JetNemotronForCausalLM when there are jet or swa layers, Qwen2ForCausalLM when
 * every layer is mha with biases, LlamaForCausalLM otherwise) and `model.safetensors` (F32 or, with
 * `dtype: "bf16"`, BF16; linear weights `[out, in]`, the official names, `format: "pt"`), sharded
 * with an index beyond `maxShardBytes`. A config that the format cannot express
 * (linear attention, gated FFNs, block convs, layers of differing geometry) is an error naming it,
 * before anything is written. A tokenizer given with the model (one `loadPretrained` or `loadTokenizer`
 * made) is written as `tokenizer.json` and `tokenizer_config.json`, so `loadPretrained` reads it back;
 * the byte tokenizer has no such files and is refused.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { block, initModel, modelConfig, randomKey, savePretrained } from "../mod.ts";
 * const config = modelConfig({ vocab: 16, width: 8, heads: 2, blocks: [block("jet"), block("mha", { bias: true })] });
 * const dir = await Deno.makeTempDir();
 * await savePretrained(dir, { config, params: initModel(randomKey(0), config) });
 * const json = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
 * assert.deepEqual([json.architectures, json.layer_types], [["JetNemotronForCausalLM"], ["jet", "attn"]]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function savePretrained(
  dir: string,
  model: Pretrained,
  opts: SavePretrainedOptions = {},
): Promise<void> {
  const where = "savePretrained", { config: cfg, params } = model;
  const { dtype = "f32", maxShardBytes = 5e9 } = opts;
  if (dtype !== "f32" && dtype !== "bf16") throw new Error(`${where}: dtype must be "f32" or "bf16", got ${dtype}`);
  if (!(Number.isSafeInteger(maxShardBytes) && maxShardBytes > 0)) {
    throw new Error(`${where}: maxShardBytes must be a positive integer, got ${maxShardBytes}`);
  }
  const tokenizerFiles = model.tokenizer?.files;
  if (model.tokenizer !== undefined && tokenizerFiles === undefined) {
    throw new Error(
      `${where}: the tokenizer has no Hugging Face files to write (the byte tokenizer has none): leave it out`,
    );
  }
  const { json, tensors } = pretrainedLayout(cfg, where);
  const template = modelTemplate(cfg);
  const [want] = treeFlatten(template), paths = treePaths(template);
  const [leaves] = treeFlatten(params, { op: where }), given = treePaths(params);
  if (given.join() !== paths.join() || leaves.some((t, i) => fmt(t.shape) !== fmt(want[i].shape))) {
    const i = paths.findIndex((p, i) => given[i] !== p || fmt(leaves[i].shape) !== fmt(want[i].shape));
    throw new Error(
      `${where}: the params do not fit the config: "${paths[i] ?? given[i]}" expected ${fmt(want[i]?.shape ?? [])}`,
    );
  }
  const host = await readAll(leaves);
  // The layout lists the params' tensors in order, then the zero biases the official attention needs.
  const out: WeightOut[] = tensors.map(({ name, shape }, i) => {
    if (i >= leaves.length) return { name, shape, values: new Float32Array(shape[0]) };
    // Only read from: an f32 array is written as it is (a copy would hold the weights once more while writing).
    const h = host[i], values = h instanceof Float32Array ? h : Float32Array.from(h as ArrayLike<number>);
    const t = leaves[i];
    return {
      name,
      shape,
      values: slotOf(paths[i], cfg).transpose ? transposed(values, t.shape[0], t.shape[1]) : values,
    };
  });
  const code = dtype === "bf16" ? "BF16" : "F32";
  await Deno.mkdir(dir, { recursive: true });
  await writeWeights(dir, out, { code, maxShardBytes, where });
  const torchDtype = dtype === "bf16" ? "bfloat16" : "float32";
  await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify({ ...json, torch_dtype: torchDtype }, null, 2) + "\n");
  if (tokenizerFiles !== undefined) {
    // As transformers saves a fast tokenizer: tokenizer.json, and tokenizer_config.json beside it (empty if none was read).
    await Deno.writeTextFile(`${dir}/tokenizer.json`, JSON.stringify(tokenizerFiles.tokenizer) + "\n");
    const config = JSON.stringify(tokenizerFiles.config ?? {}, null, 2) + "\n";
    await Deno.writeTextFile(`${dir}/tokenizer_config.json`, config);
  }
}
