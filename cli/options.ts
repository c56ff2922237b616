// Option groups shared by the commands (model sizes, data, search, sampling) and block-list parsing.

import {
  block,
  type BlockSpec,
  type DistillWeights,
  type FfnKind,
  type MixerKind,
  type ModelConfig,
  modelConfig,
} from "../mod.ts";
import { choice, flagOf, InputError, int, num, type Spec, str } from "./args.ts";

/** The most steps a phase may take: data positions are 32-bit, and a billion steps is past any real run. */
export const MAX_STEPS = 1_000_000_000;

/** A step count: an integer in 0..MAX_STEPS (`min` 0 unless given). */
export function stepCount(def: number, help: string, opts?: { min?: number; defaultText?: string }): Spec<number>;
/** A step count that may be left unset (null). */
export function stepCount(def: null, help: string, opts?: { min?: number; defaultText?: string }): Spec<number | null>;
export function stepCount(def: number | null, help: string, opts: { min?: number; defaultText?: string } = {}) {
  return int(def as number, help, { ...opts, max: MAX_STEPS });
}

/** Model sizes (vocab is 256: bytes). */
export const MODEL = {
  width: int(64, "model width", { min: 2 }),
  heads: int(4, "attention heads (width / heads must be even)", { min: 1 }),
  kvHeads: int(null, "key/value heads (grouped-query attention)", { min: 1, defaultText: "heads" }),
  ffnHidden: int(null, "hidden size of the FFNs", { min: 1, defaultText: "4 * width" }),
  layers: int(4, "number of layers", { min: 1, max: 1024 }),
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
  queries: int(null, "toy data: recall queries per sequence (more: less text, more answers to learn from)", {
    min: 1,
    defaultText: "pairs",
  }),
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
  maxSwa: int(null, "budget: at most this many sliding-window (swa) layers", { min: 0, defaultText: "no limit" }),
  accuracyWeight: num(1, "score = held-out loss - weight * recall accuracy (seed space: loss only)"),
  context: int(4096, "context length at which decoding state bytes are compared", { min: 1 }),
} as const;

/** What a student learns from: the frozen teacher's layer outputs or logits, the data's next tokens, or a mix. */
export const DISTILL = {
  distill: str(
    "ce",
    "loss against the teacher: mse (each layer's output, the paper's choice), kl (its next-token\n" +
      "distribution), ce (the data's next token: no teacher), or weighted terms such as mse:1,ce:0.5",
    { meta: "SPEC" },
  ),
} as const;

const TERMS = ["mse", "kl", "ce"] as const;

/**
 * Parses a distillation spec: terms `mse`, `kl`, `ce`, comma-separated, each with an optional weight
 * (`mse:1,ce:0.5`; a bare term weighs 1). An unknown or repeated term, a weight that is not a non-negative number,
 * or no positive weight at all is an InputError naming it.
 */
export function parseDistill(text: string, where = "--distill"): DistillWeights {
  const weights: Record<string, number> = {};
  for (const [i, raw] of text.split(",").entries()) {
    const part = raw.trim();
    if (part === "") throw new InputError(`${where}: entry ${i + 1} is empty (a doubled or trailing comma?)`);
    const [name, w, ...extra] = part.split(":");
    if (!(TERMS as readonly string[]).includes(name)) {
      throw new InputError(`${where}: unknown term ${JSON.stringify(name)}; terms are ${TERMS.join(", ")}`);
    }
    if (name in weights) throw new InputError(`${where}: ${name} is given twice`);
    const weight = w === undefined ? 1 : Number(w);
    if (extra.length > 0 || w === "" || !(Number.isFinite(weight) && weight >= 0)) {
      throw new InputError(`${where}: the weight of ${name} must be a number >= 0, got ${JSON.stringify(part)}`);
    }
    weights[name] = weight;
  }
  if (!Object.values(weights).some((w) => w > 0)) throw new InputError(`${where}: give some term a positive weight`);
  return weights as DistillWeights;
}

/** True when the weights need a teacher (an mse or kl term); without one, training is plain next-token CE. */
export function needsTeacher(w: DistillWeights): boolean {
  return (w.mse ?? 0) > 0 || (w.kl ?? 0) > 0;
}

/** True for `ce` alone at weight 1: exactly the plain training of runs without --distill. */
export function plainTraining(w: DistillWeights): boolean {
  return !needsTeacher(w) && w.ce === 1;
}

/** `mse:1, ce:0.5` as printed. */
export function distillLabel(w: DistillWeights): string {
  return Object.entries(w).filter(([, v]) => v > 0).map(([k, v]) => (v === 1 ? k : `${k}:${v}`)).join(", ");
}

/** An evaluation set of prompts and answers. */
export const EVAL = {
  eval: str(
    null,
    'JSON lines {"prompt": ..., "answer": ...}: scored as the loss on the answer tokens and greedy\n' +
      "exact match (search: in place of the held-out loss and recall)",
    { meta: "FILE" },
  ),
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
const MODS = ["conv", "gated"] as const;

/** What `parseBlocks` read: the layers, and whether any takes its window from `--window`. */
export interface ParsedBlocks {
  readonly blocks: BlockSpec[];
  readonly usesWindow: boolean;
}

/**
 * Parses a block list such as `mha,swa:32,jet+conv,linear+gated` (swa without a size uses `window`).
 * Every part of the text must mean something: an empty entry, a second size, a size on a block
 * other than swa, or an unknown or repeated modifier is an InputError naming it.
 */
export function parseBlocks(text: string, window: number, where = "--blocks"): ParsedBlocks {
  let usesWindow = false;
  const parts = text.split(",");
  const blocks = parts.map((raw, i) => {
    const part = raw.trim(), shown = JSON.stringify(part);
    if (part === "") {
      throw new InputError(`${where}: entry ${i + 1} of ${parts.length} is empty (a doubled or trailing comma?)`);
    }
    const [head, ...mods] = part.split("+");
    const [attn, ...sizes] = head.split(":");
    if (!KINDS.includes(attn as MixerKind)) {
      throw new InputError(
        `${where}: unknown block ${JSON.stringify(attn)} in ${shown}; blocks are ${KINDS.join(", ")}`,
      );
    }
    if (sizes.length > 1) throw new InputError(`${where}: ${shown} has ${sizes.length} sizes; swa takes one (swa:16)`);
    const size = sizes[0];
    if (size !== undefined && attn !== "swa") {
      throw new InputError(`${where}: ${shown}: only swa takes a size (swa:16), ${attn} does not`);
    }
    if (size !== undefined && !(/^\d+$/.test(size) && Number.isSafeInteger(Number(size)) && Number(size) >= 1)) {
      throw new InputError(
        `${where}: ${shown}: the window of swa must be a positive integer, got ${JSON.stringify(size)}`,
      );
    }
    const bad = mods.find((m) => !(MODS as readonly string[]).includes(m));
    if (bad !== undefined) {
      throw new InputError(`${where}: unknown modifier +${bad} in ${shown}; modifiers are +${MODS.join(", +")}`);
    }
    const twice = mods.find((m, j) => mods.indexOf(m) !== j);
    if (twice !== undefined) throw new InputError(`${where}: ${shown} gives +${twice} twice`);
    if (attn === "swa" && size === undefined) usesWindow = true;
    const ffn: FfnKind = mods.includes("gated") ? "gated" : "swiglu";
    return block(attn as MixerKind, { ffn, conv: mods.includes("conv"), window: size ? Number(size) : window });
  });
  return { blocks, usesWindow };
}

/**
 * Applies the `--steps` shorthand to the step counts of `phases`; one of them given as well must
 * agree with it, or the shorthand would silently override it.
 */
export function applySteps<K extends string>(
  o: { steps: number | null } & Record<K, number>,
  given: ReadonlySet<string>,
  phases: readonly K[],
): void {
  if (o.steps === null) return;
  for (const k of phases) {
    if (given.has(k) && o[k] !== o.steps) {
      throw new InputError(`--steps ${o.steps} disagrees with ${flagOf(k)} ${o[k]}; give one of them`);
    }
    (o as Record<K, number>)[k] = o.steps;
  }
}

/**
 * Refuses options the user gave that have no effect here, so nothing is silently dropped: throws an
 * InputError naming them and `why` ("with --run: the checkpoint fixes the model's sizes").
 */
export function refuseIgnored(given: ReadonlySet<string>, keys: readonly string[], why: string): void {
  const named = keys.filter((k) => given.has(k)).map(flagOf);
  if (named.length === 0) return;
  throw new InputError(`${named.join(", ")} ${named.length > 1 ? "have" : "has"} no effect ${why}`);
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
