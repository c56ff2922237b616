// Hugging Face config.json <-> ModelConfig for JetNemotronForCausalLM, Qwen2ForCausalLM and LlamaForCausalLM.

import { block, type BlockSpec, jetGeometry, type ModelConfig, modelConfig } from "./spec.ts";

/** The architectures `loadPretrained` reads and `savePretrained` writes. */
export const ARCHITECTURES = ["JetNemotronForCausalLM", "Qwen2ForCausalLM", "LlamaForCausalLM"] as const;
/** One of `ARCHITECTURES`. */
export type Architecture = typeof ARCHITECTURES[number];

type Json = Record<string, unknown>;

const MODEL_TYPES: Readonly<Record<Architecture, string>> = {
  JetNemotronForCausalLM: "jet_nemotron",
  Qwen2ForCausalLM: "qwen2",
  LlamaForCausalLM: "llama",
};

function num(c: Json, field: string, where: string, fallback?: number): number {
  const raw = c[field] ?? fallback;
  // The official Jet-Nemotron config writes some numbers as strings ("norm_eps": "1e-5").
  const v = typeof raw === "string" && raw.trim() !== "" ? Number(raw) : raw;
  if (typeof v !== "number" || !Number.isFinite(v)) {
    throw new Error(`${where}: config.json ${field} must be a number, got ${JSON.stringify(raw)}`);
  }
  return v;
}

/** The architecture config.json names, checked to be one jetfold reads. */
export function architectureOf(c: Json, where: string): Architecture {
  const a = c.architectures;
  const name = Array.isArray(a) && a.length === 1 ? a[0] : a;
  if (!ARCHITECTURES.includes(name as Architecture)) {
    throw new Error(`${where}: unknown architecture ${JSON.stringify(name)} (supported: ${ARCHITECTURES.join(", ")})`);
  }
  return name as Architecture;
}

function refuse(c: Json, where: string): void {
  const act = c.hidden_act ?? "silu";
  if (act !== "silu") {
    throw new Error(`${where}: config.json hidden_act ${JSON.stringify(act)} is not supported (silu)`);
  }
  for (const field of ["mlp_bias", "use_sliding_window"]) {
    if (c[field] === true) throw new Error(`${where}: config.json ${field} true is not supported`);
  }
}

// rope_scaling: null, or linear scaling by a factor (older configs name the kind "type", newer ones "rope_type").
function ropeScaleOf(c: Json, where: string): { ropeScale?: number } {
  const r = c.rope_scaling;
  if (r === undefined || r === null) return {};
  if (typeof r !== "object" || Array.isArray(r)) {
    throw new Error(`${where}: config.json rope_scaling must be null or an object, got ${JSON.stringify(r)}`);
  }
  const kind = (r as Json).rope_type ?? (r as Json).type;
  if (kind === "default") return {};
  if (kind !== "linear") {
    throw new Error(
      `${where}: config.json rope_scaling type ${JSON.stringify(kind)} is not supported (supported: linear, default)`,
    );
  }
  const factor = num(r as Json, "factor", where);
  if (!(factor > 0)) throw new Error(`${where}: config.json rope_scaling factor must be positive, got ${factor}`);
  return factor === 1 ? {} : { ropeScale: factor };
}

// The JetBlock's geometry as the official code derives it (int() truncates, as Python does).
function jetSpec(c: Json, where: string): BlockSpec {
  const eac = (c.efficient_attention_config ?? {}) as Json, j = (eac.jet ?? {}) as Json;
  const heads = num(j, "num_heads", where, 6), keyDim = num(j, "head_dim", where, 256);
  const expand = num(j, "expand_v", where, 2), reduction = num(j, "dconv_generator_reduction", where, 8);
  const valueDim = Math.trunc(keyDim * expand);
  return block("jet", {
    heads,
    keyDim,
    valueDim,
    generatorHidden: Math.floor(Math.trunc(heads * keyDim * expand) / reduction),
    normEps: num(j, "norm_eps", where, 1e-5),
  });
}

/** The ModelConfig of a parsed config.json. */
export function fromHfConfig(c: Json, where: string): { arch: Architecture; cfg: ModelConfig } {
  const arch = architectureOf(c, where);
  refuse(c, where);
  const width = num(c, "hidden_size", where), heads = num(c, "num_attention_heads", where);
  const layers = num(c, "num_hidden_layers", where);
  const headDim = num(c, "head_dim", where, width / heads);
  const bias = arch === "LlamaForCausalLM" ? c.attention_bias === true : true;
  const attn = (kind: "mha" | "swa", window?: number) => block(kind, { window, headDim, bias });
  let blocks: BlockSpec[];
  let convWidth = 4;
  if (arch === "JetNemotronForCausalLM") {
    const types = c.layer_types;
    if (!Array.isArray(types) || types.length !== layers) {
      throw new Error(`${where}: config.json layer_types must list num_hidden_layers (${layers}) layer types`);
    }
    const eac = (c.efficient_attention_config ?? {}) as Json;
    const jet = jetSpec(c, where);
    convWidth = num((eac.jet ?? {}) as Json, "conv_size", where, 4);
    blocks = types.map((t, i) => {
      if (t === "attn") return attn("mha");
      if (t === "swa") return attn("swa", num((eac.swa ?? {}) as Json, "window_size", where));
      if (t === "jet") return jet;
      throw new Error(`${where}: config.json layer_types[${i}] ${JSON.stringify(t)} is not supported (attn, swa, jet)`);
    });
  } else blocks = Array.from({ length: layers }, () => attn("mha"));
  const sizes = {
    vocab: num(c, "vocab_size", where),
    width,
    heads,
    kvHeads: num(c, "num_key_value_heads", where, heads),
    ffnHidden: num(c, "intermediate_size", where),
    blocks,
    convWidth,
    normEps: num(c, "rms_norm_eps", where, 1e-6),
    ropeTheta: num(c, "rope_theta", where, 10000),
    ...ropeScaleOf(c, where),
  };
  // Geometry equal to the defaults is left out, so that a model jetfold saved loads back to an equal config.
  const canonical = blocks.map((b) => withoutDefaults(b, sizes));
  const tied = c.tie_word_embeddings === true ? {} : { tied: false };
  return { arch, cfg: modelConfig({ ...sizes, blocks: canonical, ...tied }) };
}

// What jetGeometry and headDim would fill in for a block that states nothing.
function withoutDefaults(b: BlockSpec, c: { width: number; heads: number; normEps: number }): BlockSpec {
  const E = c.width / c.heads;
  const defaults: Record<string, unknown> = b.attn === "jet"
    ? {
      heads: c.heads,
      keyDim: E,
      valueDim: E,
      generatorHidden: Math.max(8, Math.ceil(c.width / 8)),
      normEps: c.normEps,
    }
    : { headDim: E, bias: false };
  return Object.freeze(Object.fromEntries(Object.entries(b).filter(([k, v]) => defaults[k] !== v))) as BlockSpec;
}

function same<T>(xs: readonly T[], what: string, where: string): T | undefined {
  const keys = [...new Set(xs.map((x) => JSON.stringify(x)))];
  if (keys.length > 1) {
    throw new Error(`${where}: ${what} differs between layers (${keys.join(", ")}); config.json has one`);
  }
  return xs[0];
}

/** The architecture a ModelConfig saves as: JetNemotron with jet or swa layers, else Qwen2 with biases, else Llama. */
export function architectureFor(cfg: ModelConfig): Architecture {
  if (cfg.blocks.some((b) => b.attn === "jet" || b.attn === "swa")) return "JetNemotronForCausalLM";
  return cfg.blocks.every((b) => b.attn === "mha" && b.bias) ? "Qwen2ForCausalLM" : "LlamaForCausalLM";
}

/** The config.json of a ModelConfig, or an error naming what transformers' config cannot express. */
export function toHfConfig(cfg: ModelConfig, arch: Architecture, where: string): Json {
  cfg.blocks.forEach((b, i) => {
    if (b.ffn !== "swiglu" || b.conv) {
      throw new Error(
        `${where}: blocks[${i}] has ffn ${b.ffn}${b.conv ? " and conv" : ""}; ${arch} has swiglu and no block conv`,
      );
    }
    if (b.attn === "linear" || (arch !== "JetNemotronForCausalLM" && b.attn !== "mha")) {
      throw new Error(`${where}: blocks[${i}] is ${b.attn}, which ${arch} has not`);
    }
  });
  const attn = cfg.blocks.flatMap((b) => b.attn === "mha" || b.attn === "swa" ? [b] : []);
  const headDim = same(attn.map((b) => b.headDim ?? cfg.width / cfg.heads), "the attention head size", where) ??
    cfg.width / cfg.heads;
  const bias = same(attn.map((b) => b.bias === true), "attention bias", where) ?? false;
  if (arch === "Qwen2ForCausalLM" && !bias) {
    throw new Error(`${where}: Qwen2ForCausalLM has q/k/v biases; these blocks have none`);
  }
  const out: Json = {
    architectures: [arch],
    model_type: MODEL_TYPES[arch],
    vocab_size: cfg.vocab,
    hidden_size: cfg.width,
    intermediate_size: cfg.ffnHidden,
    num_hidden_layers: cfg.blocks.length,
    num_attention_heads: cfg.heads,
    num_key_value_heads: cfg.kvHeads,
    head_dim: headDim,
    hidden_act: "silu",
    rms_norm_eps: cfg.normEps,
    rope_theta: cfg.ropeTheta,
    rope_scaling: cfg.ropeScale === undefined ? null : { type: "linear", rope_type: "linear", factor: cfg.ropeScale },
    tie_word_embeddings: cfg.tied !== false,
    torch_dtype: "float32",
    max_position_embeddings: 131072,
  };
  if (arch === "LlamaForCausalLM") return { ...out, attention_bias: bias, mlp_bias: false };
  if (arch === "Qwen2ForCausalLM") return { ...out, use_sliding_window: false };
  return { ...out, ...jetConfig(cfg, where) };
}

function jetConfig(cfg: ModelConfig, where: string): Json {
  const jets = cfg.blocks.filter((b) => b.attn === "jet").map((b) => jetGeometry(cfg, b));
  const windows = cfg.blocks.flatMap((b) => b.attn === "swa" ? [b.window] : []);
  const g = same(jets, "the JetBlock geometry", where), window = same(windows, "the swa window", where);
  const eac: Json = {};
  if (g !== undefined) {
    const width = g.heads * g.valueDim, reduction = width / g.generatorHidden;
    if (!Number.isInteger(reduction)) {
      throw new Error(
        `${where}: generatorHidden ${g.generatorHidden} must divide the value width ${width} for config.json`,
      );
    }
    // The official code truncates keyDim * expand_v; nudge up so the product cannot land just below.
    let expand = g.valueDim / g.keyDim;
    if (Math.trunc(g.keyDim * expand) !== g.valueDim || Math.trunc(g.heads * g.keyDim * expand) !== width) {
      expand += 1e-10;
    }
    eac.jet = {
      mode: "chunk",
      num_heads: g.heads,
      head_dim: g.keyDim,
      expand_v: expand,
      conv_size: cfg.convWidth,
      dconv_generator_reduction: reduction,
      dconv_implementation: "triton",
      norm_eps: g.normEps,
    };
  }
  if (window !== undefined) eac.swa = { window_size: window };
  const layerTypes = cfg.blocks.map((b) => b.attn === "mha" ? "attn" : b.attn);
  return { efficient_attention_config: eac, layer_types: layerTypes, use_mrope: false };
}
