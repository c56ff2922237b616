// The PostNAS phase: the search space, the budgeted search over a supernet, its printout and trace.

import {
  type AttentionGeometry,
  block,
  type BlockSpec,
  type Evaluation,
  type JetGeometry,
  maxCount,
  type ModelConfig,
  type ObjectiveWeights,
  pathObjective,
  postnas,
  type Supernet,
  type ToyBatch,
  type Visit,
} from "../mod.ts";
import { InputError } from "./args.ts";
import { interrupts } from "./interrupt.ts";
import type { GeometrySummary } from "./report.ts";
import { blockLabel } from "./options.ts";
import type { Ctx } from "./phases.ts";
import { paint, Progress, say } from "./progress.ts";

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

/** One candidate's best score at one layer, as printed and drawn in the heatmap. */
export interface Cell {
  readonly candidate: string;
  readonly score: number | null;
  readonly loss: number | null;
  readonly accuracy: number | null;
  /** Some configuration with this candidate here fit the budget. */
  readonly feasible: boolean;
}

/** What search.json holds. */
export interface SearchRecord {
  readonly space: string;
  readonly strategy: string;
  readonly beamWidth: number;
  readonly maxMha: number;
  /** The swa budget; null: none. */
  readonly maxSwa: number | null;
  readonly objective: string;
  readonly baseline: string;
  readonly candidates: readonly string[];
  readonly choice: readonly string[];
  readonly score: number;
  readonly layers: readonly { readonly layer: number; readonly chosen: string; readonly cells: readonly Cell[] }[];
  readonly trace: readonly Record<string, unknown>[];
  /** With --hardware-search: the rule and every geometry tried (the same rows as summary.json's). */
  readonly hardware?: { readonly rule: string; readonly geometries: readonly GeometrySummary[] };
}

/** What search.json holds when a signal stopped the search: the trace so far, no choice. */
export interface PartialSearchRecord {
  readonly space: string;
  readonly strategy: string;
  readonly interrupted: true;
  readonly objective: string;
  readonly candidates: readonly string[];
  readonly trace: readonly Record<string, unknown>[];
}

/** How a search ended: with a choice, or stopped by a signal at a configuration boundary. */
export type SearchOutcome =
  | { readonly done: true; readonly choice: readonly BlockSpec[]; readonly record: SearchRecord }
  | { readonly done: false; readonly partial: PartialSearchRecord };

/**
 * Scores configurations: the local `pathObjective`, or one whose `many` sends a layer's
 * configurations to workers (`tick` runs while it waits and may throw to stop).
 */
export interface Scorer {
  (config: readonly BlockSpec[]): Promise<number>;
  evaluation(config: readonly BlockSpec[]): Evaluation | undefined;
  many?(configs: readonly (readonly BlockSpec[])[], tick: () => Promise<void>): Promise<readonly number[]>;
}

/** Makes the scorer of a search from its supernet, held-out batches and objective weights. */
export type MakeScorer = (sn: Supernet, batches: readonly ToyBatch[], weights: ObjectiveWeights) => Promise<Scorer>;

const num = (v: number) => (Number.isFinite(v) ? v : null);

class Stopped extends Error {}

// Configurations a search scores at most: every candidate at each layer, for each kept prefix.
function visitBound(layers: number, candidates: number, beam: number): number {
  let total = 0, prefixes = 1;
  for (let l = 0; l < layers; l++) {
    total += prefixes * candidates;
    prefixes = Math.min(beam, prefixes * candidates);
  }
  return total;
}

/**
 * Runs PostNAS over the supernet on held-out data, printing per layer each candidate's proxy scores.
 * A signal stops it before the next configuration is scored, with the trace so far.
 */
export async function runSearch(
  ctx: Ctx,
  sn: Supernet,
  space: Space,
  o: SearchOptions,
  makeScorer?: MakeScorer,
): Promise<SearchOutcome> {
  const L = sn.space.length, C = space.candidates.length;
  const weights = { accuracy: space.accuracyWeight };
  if (ctx.evalSet !== undefined && makeScorer !== undefined) throw new Error("runSearch: --eval is scored here only");
  const objective: Scorer = makeScorer === undefined
    ? pathObjective(sn, ctx.evalSet ?? ctx.data.heldOut(), weights)
    : await makeScorer(sn, ctx.data.heldOut(), weights);
  const progress = new Progress(ctx.out, "search", {
    total: visitBound(L, C, space.strategy === "greedy" ? 1 : o.beamWidth),
  });
  const labels = space.candidates.map(blockLabel);
  const objectiveText = objectiveOf(space, ctx.evalSet !== undefined);
  const metricsOf = (config: readonly BlockSpec[]) => objective.evaluation(config)!;
  const traced = (v: Visit<BlockSpec>) => {
    const ev = metricsOf(v.config);
    return {
      layer: v.layer,
      candidate: labels[v.candidate],
      config: v.config.map(blockLabel),
      score: v.score,
      feasible: v.feasible,
      cached: v.cached,
      loss: ev.loss,
      perplexity: ev.perplexity,
      accuracy: num(ev.accuracy),
    };
  };
  const visits: Visit<BlockSpec>[] = [];
  const stopHere = async () => {
    if (await interrupts.boundary()) throw new Stopped();
  };
  const scored = async (config: readonly BlockSpec[]) => {
    await stopHere();
    return objective(config);
  };
  const many = objective.many?.bind(objective);
  let result;
  try {
    result = await postnas(sn.space, scored, {
      strategy: space.strategy,
      beamWidth: o.beamWidth,
      baseline: sn.space.map(() => space.baseline),
      feasible: budgetOf(o),
      onVisit: (v) => progress.update(visits.push(v)),
      evaluateMany: many && (async (configs) => {
        await stopHere();
        return await many(configs, stopHere);
      }),
    });
  } catch (e) {
    if (!(e instanceof Stopped)) throw e;
    const partial: PartialSearchRecord = {
      space: space.name,
      strategy: space.strategy,
      interrupted: true,
      objective: objectiveText,
      candidates: labels,
      trace: visits.map(traced),
    };
    return { done: false, partial };
  } finally {
    progress.finish();
  }
  const layers = Array.from({ length: L }, (_, layer) => {
    const cells = space.candidates.map((_, c): Cell => {
      const here = result.trace.filter((v) => v.layer === layer && v.candidate === c);
      const pool = here.some((v) => v.feasible) ? here.filter((v) => v.feasible) : here;
      if (pool.length === 0) return { candidate: labels[c], score: null, loss: null, accuracy: null, feasible: false };
      const best = pool.reduce((a, b) => (b.score < a.score ? b : a));
      const ev = metricsOf(best.config);
      return {
        candidate: labels[c],
        score: best.score,
        loss: ev.loss,
        accuracy: num(ev.accuracy),
        feasible: best.feasible,
      };
    });
    return { layer, chosen: blockLabel(result.choice[layer]), cells };
  });
  const record: SearchRecord = {
    space: space.name,
    strategy: space.strategy,
    beamWidth: space.strategy === "beam" ? o.beamWidth : 1,
    maxMha: o.maxMha,
    maxSwa: o.maxSwa,
    objective: objectiveText,
    baseline: blockLabel(space.baseline),
    candidates: labels,
    choice: result.choice.map(blockLabel),
    score: result.score,
    layers,
    trace: result.trace.map(traced),
  };
  printLayers(ctx, record, ctx.evalSet === undefined ? "recall" : "exact");
  return { done: true, choice: result.choice, record };
}

function printLayers(ctx: Ctx, record: SearchRecord, accuracyName: string): void {
  const w = Math.max(...record.candidates.map((c) => c.length));
  for (const { layer, chosen, cells } of record.layers) {
    say(ctx.out, `  layer ${layer}: ${paint(ctx.out, "bold", chosen)}`);
    for (const c of cells) {
      const mark = c.candidate === chosen ? paint(ctx.out, "green", "  <- chosen") : "";
      const over = c.score !== null && !c.feasible ? paint(ctx.out, "yellow", "  (over budget)") : "";
      const scores = c.score === null ? "not scored" : `score ${c.score.toFixed(3)}  loss ${c.loss!.toFixed(3)}` +
        (c.accuracy === null ? "" : `  ${accuracyName} ${c.accuracy.toFixed(3)}`);
      say(ctx.out, `    ${c.candidate.padEnd(w)}  ${scores}${over}${mark}`);
    }
  }
}
