// The search space of demo and search: its candidates (fitted to a given model), its budget, its objective.

import { type AttentionGeometry, block, type BlockSpec, type JetGeometry, maxCount, type ModelConfig } from "../mod.ts";
import { InputError } from "./args.ts";

/** Search options (flags of demo and search). */
export interface SearchOptions {
  readonly space: "paper" | "seed" | null;
  readonly strategy: "beam" | "greedy" | null;
  readonly beamWidth: number;
  readonly maxMha: number;
  /** At most this many swa layers; null: no limit. */
  readonly maxSwa: number | null;
  readonly accuracyWeight: number;
  readonly window: number;
}

/** A search space: the candidates of every layer, the baseline undecided layers take, the strategy. */
export interface Space {
  readonly name: "paper" | "seed";
  readonly candidates: readonly BlockSpec[];
  readonly baseline: BlockSpec;
  readonly strategy: "beam" | "greedy";
  /** Weight of recall accuracy in the score (0: the proxy is held-out loss, i.e. log perplexity). */
  readonly accuracyWeight: number;
}

/**
 * paper: mha | swa | jet per layer, beam search, each with a causal conv before the mixer when `conv` (a base
 * model built with one keeps it whatever the mixer); seed: attention x FFN x conv, greedy by perplexity.
 */
export function makeSpace(o: SearchOptions, { conv = false }: { readonly conv?: boolean } = {}): Space {
  if (o.space === "seed") {
    const candidates = (["mha", "linear"] as const).flatMap((attn) =>
      (["swiglu", "gated"] as const).flatMap((ffn) => [false, true].map((conv) => block(attn, { ffn, conv })))
    );
    return { name: "seed", candidates, baseline: candidates[4], strategy: o.strategy ?? "greedy", accuracyWeight: 0 };
  }
  const candidates = [block("mha", { conv }), block("swa", { window: o.window, conv }), block("jet", { conv })];
  return {
    name: "paper",
    candidates,
    baseline: candidates[2],
    strategy: o.strategy ?? "beam",
    accuracyWeight: o.accuracyWeight,
  };
}

/** The budget: at most `maxMha` mha layers and, where given, at most `maxSwa` swa layers. */
export function budgetOf(o: Pick<SearchOptions, "maxMha" | "maxSwa">): (config: readonly BlockSpec[]) => boolean {
  const mha = maxCount((b: BlockSpec) => b.attn === "mha", o.maxMha);
  const swa = o.maxSwa === null ? () => true : maxCount((b: BlockSpec) => b.attn === "swa", o.maxSwa);
  return (config) => mha(config) && swa(config);
}

/** The budget as printed: "at most 1 mha layer(s), at most 1 swa layer(s)". */
export function budgetText(o: Pick<SearchOptions, "maxMha" | "maxSwa">): string {
  return `at most ${o.maxMha} mha layer(s)` + (o.maxSwa === null ? "" : `, at most ${o.maxSwa} swa layer(s)`);
}

/** The objective as printed and recorded: on held-out batches, or on `--eval`'s answers. */
export function objectiveOf(space: Space, evalSet: boolean): string {
  if (evalSet) {
    return space.accuracyWeight > 0
      ? `--eval answer loss - ${space.accuracyWeight} * exact match`
      : "--eval answer loss";
  }
  return space.accuracyWeight > 0
    ? `held-out loss - ${space.accuracyWeight} * recall accuracy`
    : "held-out loss (log perplexity)";
}

/**
 * The space's candidates in the given model's geometry: its FFN kind (the MLPs are inherited and frozen), in the
 * paper space its conv before the mixer, its attention's head size and biases for mha and swa, its JetBlock's heads
 * and head sizes for jet. A model whose layers differ in one of these has no single space to search, and is refused
 * naming the layer.
 */
export function fitSpace(space: Space, cfg: ModelConfig): Space {
  const one = <T>(what: string, of: (b: BlockSpec) => T | undefined): T | undefined => {
    const values = cfg.blocks.map(of);
    const found = values.find((v) => v !== undefined);
    const i = values.findIndex((v) => v !== undefined && JSON.stringify(v) !== JSON.stringify(found));
    if (i >= 0) {
      throw new InputError(`the given model's layers differ in ${what} (layer ${i}), so no one search space fits it`);
    }
    return found;
  };
  const ffn = one("FFN kind", (b) => b.ffn)!;
  // The paper space's candidates keep the model's conv before the mixer (inherited, like the MLPs); the seed space
  // searches the conv itself.
  const conv = space.name === "paper" ? one("conv before the mixer", (b) => b.conv ?? false) : undefined;
  const attention = one("attention geometry", (b) => b.attn === "mha" || b.attn === "swa" ? attentionOf(b) : undefined);
  const jet = one("JetBlock geometry", (b) => b.attn === "jet" ? jetOf(b) : undefined);
  const fit = (c: BlockSpec): BlockSpec => {
    const geometry = c.attn === "mha" || c.attn === "swa" ? attention : c.attn === "jet" ? jet : undefined;
    const { attn, ...rest } = { ...c, ...geometry, ffn, ...(conv === undefined ? {} : { conv }) };
    return block(attn, rest as Parameters<typeof block>[1]);
  };
  const candidates = space.candidates.map(fit);
  return { ...space, candidates, baseline: candidates[space.candidates.indexOf(space.baseline)] };
}

const attentionOf = (b: BlockSpec & AttentionGeometry) => pick(b, ["headDim", "bias"]);
const jetOf = (b: BlockSpec & JetGeometry) => pick(b, ["heads", "keyDim", "valueDim", "generatorHidden", "normEps"]);
function pick<T extends object, K extends keyof T>(o: T, keys: readonly K[]): Partial<Pick<T, K>> {
  return Object.fromEntries(keys.filter((k) => o[k] !== undefined).map((k) => [k, o[k]])) as Partial<Pick<T, K>>;
}
