// What the machine allows, checked before any work: estimates of the memory that training, evaluation and generation take.

import type { BlockSpec, ModelConfig } from "../mod.ts";
import { InputError, sizeText } from "./input.ts";

/** The most bytes `--data` may hold (the whole file is kept in memory). */
export const DATA_LIMIT = 256 * 2 ** 20;

/** How much memory the CLI lets one run plan for, and why. */
export interface MemoryLimit {
  readonly bytes: number;
  readonly basis: string;
}

const FALLBACK = 8 * 2 ** 30;

/** Half of this machine's memory (8 GiB when the size cannot be read, e.g. without --allow-sys). */
export function memoryLimit(): MemoryLimit {
  try {
    // Asked first, so that a run without the permission falls back instead of prompting for it.
    if (Deno.permissions.querySync({ name: "sys", kind: "systemMemoryInfo" }).state === "granted") {
      const total = Deno.systemMemoryInfo().total;
      if (total > 0) return { bytes: total / 2, basis: `half of this machine's ${sizeText(total)}` };
    }
  } catch { /* no such API or permission: fall through */ }
  return { bytes: FALLBACK, basis: "the machine's memory is unknown, so 8 GiB is assumed" };
}

const F32 = 4;
// Every mixer is counted as the JetBlock's (about 8 width^2: q, k, a value path twice as wide, the
// output gate and projection), so for attention layers the estimate errs high.
const MIXER_SQUARES = 8;

/** Parameters of a model of these sizes (an estimate that errs high), with `mixers` mixers per layer. */
export function paramEstimate(cfg: ModelConfig, mixers = 1): number {
  const w = cfg.width;
  const layer = mixers * MIXER_SQUARES * w * w + 3 * w * cfg.ffnHidden + 8 * w;
  return cfg.vocab * w + cfg.blocks.length * layer + w;
}

// Floats a forward pass keeps per token: activations of each layer (norms, projections, the FFN's
// hidden units, attention scores over the sequence or the chunked delta rule's state) and the logits.
function floatsPerToken(cfg: ModelConfig, seqLen: number): number {
  const w = cfg.width, heads = cfg.heads, hd = w / heads;
  const mixer = (b: BlockSpec) =>
    b.attn === "mha" || b.attn === "swa" ? 3 * heads * seqLen : 8 * w + 6 * heads * 32 + heads * 2 * hd * hd / 32;
  const layers = cfg.blocks.reduce((n, b) => n + 16 * w + 4 * cfg.ffnHidden + mixer(b) + (b.conv ? 4 * w : 0), 0);
  return layers + 4 * cfg.vocab;
}

/** Bytes of a training step: params, gradients and AdamW moments, and the activations kept for backward. */
export function trainBytes(cfg: ModelConfig, o: { batch: number; seqLen: number; mixers?: number }): number {
  const tokens = o.batch * o.seqLen;
  return F32 * (6 * paramEstimate(cfg, o.mixers) + 2 * tokens * floatsPerToken(cfg, o.seqLen));
}

/** Bytes of evaluating `batch` held-out sequences while a run's params and optimizer state are held. */
export function evalBytes(cfg: ModelConfig, o: { batch: number; seqLen: number; mixers?: number }): number {
  return F32 * (6 * paramEstimate(cfg, o.mixers) + o.batch * o.seqLen * floatsPerToken(cfg, o.seqLen));
}

// Per generated token: its key, its token tensor and the bookkeeping of one decoding step.
const PER_TOKEN_BYTES = 2048;

/** Bytes of generating `tokens` tokens after a prompt of `prompt` tokens: the prefill and the caches. */
export function generateBytes(cfg: ModelConfig, o: { prompt: number; tokens: number }): number {
  const context = o.prompt + o.tokens, kv = 2 * cfg.kvHeads * (cfg.width / cfg.heads);
  const hd = cfg.width / cfg.heads;
  const cache = cfg.blocks.reduce(
    (n, b) =>
      n + (b.attn === "mha" ? kv * context : b.attn === "swa" ? kv * Math.min(b.window, context) : 2 * cfg.width * hd),
    0,
  );
  // The caches are copied as they grow (old and new are alive together).
  const floats = 2 * paramEstimate(cfg) + o.prompt * floatsPerToken(cfg, o.prompt) + 2 * cache;
  return F32 * floats + PER_TOKEN_BYTES * o.tokens;
}

/**
 * Refuses a plan that needs more memory than the limit, with a sentence that names what was asked,
 * the estimate, the limit and what to lower.
 */
export function checkMemory(what: string, bytes: number, lower: string, limit: MemoryLimit = memoryLimit()): void {
  if (bytes <= limit.bytes) return;
  const need = Number.isFinite(bytes) && bytes < 2 ** 60 ? `about ${sizeText(bytes)}` : "more than an exbibyte";
  throw new InputError(
    `${what} needs ${need} of memory, more than the limit of ${sizeText(limit.bytes)} (${limit.basis}); lower ${lower}`,
  );
}
