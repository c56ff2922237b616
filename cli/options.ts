// Option groups shared by the commands (model sizes, data, search, sampling) and block-list parsing.

import { block, type BlockSpec, type FfnKind, type MixerKind, type ModelConfig, modelConfig } from "../mod.ts";
import { choice, InputError, int, num, str } from "./args.ts";

/** Model sizes (vocab is 256: bytes). */
export const MODEL = {
  width: int(64, "model width", { min: 2 }),
  heads: int(4, "attention heads (width / heads must be even)", { min: 1 }),
  kvHeads: int(null, "key/value heads (grouped-query attention)", { min: 1, defaultText: "heads" }),
  ffnHidden: int(null, "hidden size of the FFNs", { min: 1, defaultText: "4 * width" }),
  layers: int(4, "number of layers", { min: 1 }),
  window: int(16, "window of sliding-window attention (swa) layers, in tokens", { min: 1 }),
} as const;

/** Which data and how it is batched. */
export const DATA = {
  data: str(null, "train on this UTF-8 text file (byte tokens, last tenth held out)", {
    defaultText: "toy data",
    meta: "FILE",
  }),
  seqLen: int(48, "tokens per sequence", { min: 2 }),
  batch: int(8, "sequences per training batch", { min: 1 }),
  pairs: int(4, "toy data: key-value pairs per sequence to recall", { min: 1 }),
  evalBatch: int(32, "held-out sequences for the proxies (loss, perplexity, recall)", { min: 1 }),
} as const;

/** How often the loss is read back and logged. */
export const LOG = {
  logEvery: int(25, "read and log the loss every N steps (each read is a device sync)", { min: 1 }),
} as const;

/** The PostNAS search. */
export const SEARCH = {
  space: choice(["paper", "seed"], "paper", "paper: mha|swa|jet per layer; seed: mha|linear x swiglu|gated x conv"),
  strategy: choice(["beam", "greedy"], null, "search strategy", { defaultText: "beam for paper, greedy for seed" }),
  beamWidth: int(2, "configurations kept per layer by beam search", { min: 1 }),
  maxMha: int(1, "budget: at most this many full-attention (mha) layers", { min: 0 }),
  accuracyWeight: num(1, "score = held-out loss - weight * recall accuracy (seed space: loss only)"),
  context: int(4096, "context length at which decoding state bytes are compared", { min: 1 }),
} as const;

/** Sampling. */
export const SAMPLE = {
  tokens: int(32, "tokens to generate (greedy)", { min: 0 }),
  prompt: str(null, "prompt text", {
    defaultText: "a held-out sequence up to its first recall query",
    meta: "TEXT",
  }),
} as const;

/** A block's short name: `mha`, `swa:16`, `jet`, `linear+conv+gated`. */
export function blockLabel(spec: BlockSpec): string {
  const base = spec.attn === "swa" ? `swa:${spec.window}` : spec.attn;
  return base + (spec.conv ? "+conv" : "") + (spec.ffn === "gated" ? "+gated" : "");
}

const KINDS: readonly MixerKind[] = ["mha", "swa", "linear", "jet"];

/** Parses a block list such as `mha,swa:32,jet+conv,linear+gated` (swa without a size uses `window`). */
export function parseBlocks(text: string, window: number, where = "--blocks"): BlockSpec[] {
  return text.split(",").map((part) => {
    const [head, ...mods] = part.trim().split("+");
    const [attn, size] = head.split(":");
    if (!KINDS.includes(attn as MixerKind)) {
      throw new InputError(`${where}: unknown block ${JSON.stringify(part)}; blocks are ${KINDS.join(", ")}`);
    }
    const bad = mods.find((m) => m !== "conv" && m !== "gated");
    if (bad !== undefined) throw new InputError(`${where}: unknown modifier +${bad} in ${JSON.stringify(part)}`);
    if (size !== undefined && (attn !== "swa" || !/^\d+$/.test(size) || Number(size) < 1)) {
      throw new InputError(`${where}: ${JSON.stringify(part)}: only swa takes a size, a positive integer (swa:16)`);
    }
    const ffn: FfnKind = mods.includes("gated") ? "gated" : "swiglu";
    return block(attn as MixerKind, { ffn, conv: mods.includes("conv"), window: size ? Number(size) : window });
  });
}

/** A validated model config from the size options; a problem is an InputError naming the field. */
export function configFrom(
  o: { width: number; heads: number; kvHeads: number | null; ffnHidden: number | null },
  blocks: readonly BlockSpec[],
): ModelConfig {
  try {
    return modelConfig({
      vocab: 256,
      width: o.width,
      heads: o.heads,
      kvHeads: o.kvHeads ?? o.heads,
      ffnHidden: o.ffnHidden ?? 4 * o.width,
      blocks,
    });
  } catch (e) {
    throw new InputError((e as Error).message.replace(/^modelConfig: /, "invalid model: "));
  }
}
