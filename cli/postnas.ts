// The PostNAS phase: the budgeted search over a supernet (space.ts: what it searches), its printout and trace.

import {
  type BlockSpec,
  type Evaluation,
  type ObjectiveWeights,
  pathObjective,
  postnas,
  type Supernet,
  type ToyBatch,
  type Visit,
} from "../mod.ts";
import { interrupts } from "./interrupt.ts";
import type { GeometrySummary } from "./report.ts";
import { blockLabel } from "./options.ts";
import type { Ctx } from "./phases.ts";
import { paint, Progress, say } from "./progress.ts";
import { budgetOf, objectiveOf, type SearchOptions, type Space } from "./space.ts";

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
