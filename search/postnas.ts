// PostNAS as a pure fold over layers: greedy (a beam of one) or beam search, memoized, traced.

/** Options of `postnas`. */
export interface PostnasOptions<C> {
  /** Greedy keeps the single best configuration at each layer; beam keeps `beamWidth`. */
  readonly strategy: "greedy" | "beam";
  /** Configurations kept per layer by beam search (default 4). */
  readonly beamWidth?: number;
  /** The value every not-yet-decided layer takes while earlier layers are scored. */
  readonly baseline: readonly C[];
  /** Budgets: a configuration failing this is never kept (default: everything is feasible). */
  readonly feasible?: (config: readonly C[]) => boolean;
  /** The order in which layers are decided (default 0..L-1). */
  readonly order?: readonly number[];
  /** Called after each visit, e.g. to print progress. */
  readonly onVisit?: (visit: Visit<C>) => void;
  /**
   * Scores several configurations at once, e.g. concurrently or on other machines: at each layer the
   * configurations not scored before go to one call, in visiting order, and it returns one score
   * each, equal to what `evaluate` gives for that configuration. Without it `evaluate` scores them
   * one after another; the choice, the scores and the trace are the same either way.
   */
  readonly evaluateMany?: (configs: readonly (readonly C[])[]) => Promise<readonly number[]>;
}

/** One scored configuration in the search's trace. */
export interface Visit<C> {
  /** The layer being decided. */
  readonly layer: number;
  /** Index of the candidate tried at that layer. */
  readonly candidate: number;
  /** The complete configuration scored (decided layers, the candidate, baseline elsewhere). */
  readonly config: readonly C[];
  /** Its objective (lower is better). */
  readonly score: number;
  /** Whether it passed `feasible`. */
  readonly feasible: boolean;
  /** True when the score came from the memo (the configuration was scored before). */
  readonly cached: boolean;
}

/** What `postnas` returns: the chosen configuration, its score and every visit in order. */
export interface PostnasResult<C> {
  /** The best feasible configuration found. */
  readonly choice: readonly C[];
  /** Its objective. */
  readonly score: number;
  /** Every visit, in order. */
  readonly trace: readonly Visit<C>[];
}

interface Prefix<C> {
  readonly config: readonly C[];
  readonly path: readonly number[]; // candidate indices in visiting order: the tie-break
  /** Its objective. */
  readonly score: number;
}

interface State<C> {
  readonly beam: readonly Prefix<C>[];
  /** Every visit, in order. */
  readonly trace: readonly Visit<C>[];
}

/** A key equal for equal configurations whatever their key order: memo key and tie-break aid. */
export function stableKey(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableKey).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const rec = value as Record<string, unknown>;
    return `{${Object.keys(rec).sort().map((k) => `${JSON.stringify(k)}:${stableKey(rec[k])}`).join(",")}}`;
  }
  return JSON.stringify(value) ?? String(value);
}

function lexLess(a: readonly number[], b: readonly number[]): boolean {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i] < b[i];
  return a.length < b.length;
}

function check<C>(space: readonly (readonly C[])[], o: PostnasOptions<C>): readonly number[] {
  const L = space.length;
  if (o.strategy !== "greedy" && o.strategy !== "beam") {
    throw new Error(`postnas: strategy must be "greedy" or "beam", got ${JSON.stringify(o.strategy)}`);
  }
  if (o.beamWidth !== undefined && !(Number.isInteger(o.beamWidth) && o.beamWidth >= 1)) {
    throw new Error(`postnas: beamWidth must be a positive integer, got ${o.beamWidth}`);
  }
  if (!Array.isArray(o.baseline) || o.baseline.length !== L) {
    throw new Error(`postnas: baseline must have one entry per layer (${L}), got ${o.baseline?.length}`);
  }
  space.forEach((cands, i) => {
    if (!Array.isArray(cands) || cands.length === 0) throw new Error(`postnas: layer ${i} has no candidates`);
  });
  const order = o.order ?? [...Array(L).keys()];
  if (order.length !== L || [...order].sort((a, b) => a - b).some((v, i) => v !== i)) {
    throw new Error(`postnas: order must be a permutation of 0..${L - 1}, got ${JSON.stringify(order)}`);
  }
  return order;
}

/**
 * Decides each layer's candidate, layer by layer in `order`: every candidate is scored with the
 * decided layers fixed and the rest at `baseline`, and the best feasible configurations (one for
 * greedy, `beamWidth` for beam) are kept. Each distinct configuration is evaluated at most once;
 * ties go to the lower candidate indices. Inputs are never mutated.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { maxCount, postnas } from "../mod.ts";
 * type Kind = "mha" | "jet";
 * const space: Kind[][] = [["mha", "jet"], ["mha", "jet"]];
 * // Full attention lowers the loss more in layer 0 than in layer 1; the budget allows one.
 * const loss = (c: readonly Kind[]) => (c[0] === "mha" ? 0 : 2) + (c[1] === "mha" ? 0 : 1);
 * const { choice, score, trace } = await postnas(space, loss, {
 *   strategy: "greedy",
 *   baseline: ["jet", "jet"],
 *   feasible: maxCount((k: Kind) => k === "mha", 1),
 * });
 * assert.deepEqual([choice, score], [["mha", "jet"], 1]);
 * // Layer 0 is decided with layer 1 at the baseline, then layer 1; a repeated configuration is not re-scored.
 * assert.deepEqual(trace.map((v) => [v.config.join(" "), v.feasible, v.cached]), [
 *   ["mha jet", true, false],
 *   ["jet jet", true, false],
 *   ["mha mha", false, false],
 *   ["mha jet", true, true],
 * ]);
 * // evaluateMany gets each layer's new configurations at once, e.g. to score them concurrently: same result.
 * const many = (configs: readonly (readonly Kind[])[]) => Promise.all(configs.map(async (c) => loss(c)));
 * const options = { strategy: "greedy", baseline: ["jet", "jet"], feasible: maxCount((k: Kind) => k === "mha", 1) } as const;
 * const same = await postnas(space, loss, { ...options, evaluateMany: many });
 * assert.deepEqual([same.choice, same.score, same.trace], [choice, score, trace]);
 * ```
 */
export async function postnas<C>(
  space: readonly (readonly C[])[],
  evaluate: (config: readonly C[]) => number | Promise<number>,
  options: PostnasOptions<C>,
): Promise<PostnasResult<C>> {
  const order = check(space, options);
  const width = options.strategy === "greedy" ? 1 : options.beamWidth ?? 4;
  const feasible = options.feasible ?? (() => true);
  const memo = new Map<string, number>();
  const remember = (key: string, s: unknown, by: string): number => {
    if (typeof s !== "number" || Number.isNaN(s)) throw new Error(`postnas: ${by} returned ${s} for ${key}`);
    memo.set(key, s);
    return s;
  };
  const score = async (config: readonly C[]): Promise<[number, boolean]> => {
    const key = stableKey(config);
    const hit = memo.get(key);
    if (hit !== undefined) return [hit, true];
    return [remember(key, await evaluate(config), "evaluate"), false];
  };
  // With evaluateMany, a layer's new configurations are scored in one call before its visits.
  const scoreAll = async (configs: readonly (readonly C[])[]): Promise<Set<string>> => {
    const fresh = new Map<string, readonly C[]>();
    for (const config of configs) {
      const key = stableKey(config);
      if (!memo.has(key)) fresh.set(key, config);
    }
    if (options.evaluateMany === undefined || fresh.size === 0) return new Set();
    const scores = await options.evaluateMany([...fresh.values()]);
    if (!Array.isArray(scores) || scores.length !== fresh.size) {
      throw new Error(`postnas: evaluateMany returned ${scores?.length} scores for ${fresh.size} configurations`);
    }
    [...fresh.keys()].forEach((key, i) => remember(key, scores[i], "evaluateMany"));
    return new Set(fresh.keys());
  };

  const step = async (state: State<C>, layer: number): Promise<State<C>> => {
    const visits: Visit<C>[] = [];
    const next: Prefix<C>[] = [];
    const seen = new Set<string>();
    const tries: { part: Prefix<C>; candidate: number; config: readonly C[] }[] = [];
    for (const part of state.beam) {
      for (const [candidate, value] of space[layer].entries()) {
        const config = part.config.map((c, i) => (i === layer ? value : c));
        const key = stableKey(config);
        if (seen.has(key)) continue;
        seen.add(key);
        tries.push({ part, candidate, config });
      }
    }
    const fresh = await scoreAll(tries.map((t) => t.config));
    for (const { part, candidate, config } of tries) {
      const ok = feasible(config);
      const [s, hit] = await score(config);
      const cached = hit && !fresh.has(stableKey(config));
      const visit: Visit<C> = { layer, candidate, config, score: s, feasible: ok, cached };
      visits.push(visit);
      options.onVisit?.(visit);
      if (ok) next.push({ config, path: [...part.path, candidate], score: s });
    }
    if (next.length === 0) {
      throw new Error(
        `postnas: no feasible configuration at layer ${layer} (with undecided layers at the baseline); ` +
          "relax the budget or choose a baseline that satisfies it",
      );
    }
    const beam = next.sort((a, b) => (a.score !== b.score ? a.score - b.score : lexLess(a.path, b.path) ? -1 : 1))
      .slice(0, width);
    return { beam, trace: [...state.trace, ...visits] };
  };

  const start: State<C> = { beam: [{ config: [...options.baseline], path: [], score: NaN }], trace: [] };
  const final = await order.reduce<Promise<State<C>>>(
    async (acc, layer) => step(await acc, layer),
    Promise.resolve(start),
  );
  const best = final.beam[0];
  return { choice: best.config, score: best.score, trace: final.trace };
}
