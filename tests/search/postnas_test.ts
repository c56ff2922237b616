// postnas against brute force on random spaces and score tables, and its purity guarantees.

import fc from "fast-check";
import { maxCount, postnas, type PostnasOptions, stableKey } from "../../search/mod.ts";
import { assertThrowsMsg } from "../helpers.ts";

// A random objective with per-layer terms and pairwise interactions (so it is not additive).
interface Problem {
  space: number[][];
  unary: number[][];
  pair: number[][][][];
}

const problem = fc.integer({ min: 1, max: 4 }).chain((L) =>
  fc.array(fc.integer({ min: 1, max: 3 }), { minLength: L, maxLength: L }).chain((sizes) =>
    fc.record({
      space: fc.constant(sizes.map((n) => [...Array(n).keys()])),
      unary: fc.tuple(...sizes.map((n) => fc.array(fc.integer({ min: 0, max: 20 }), { minLength: n, maxLength: n }))),
      pair: fc.constant(
        sizes.map((n) => sizes.map((m) => Array.from({ length: n }, () => new Array<number>(m).fill(0)))),
      ),
      seed: fc.nat(10_000),
    }).map(({ space, unary, pair, seed }) => {
      let s = seed + 1;
      const rnd = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) % 13);
      for (const row of pair) for (const block of row) for (const r of block) r.forEach((_, j) => (r[j] = rnd()));
      return { space, unary: unary as number[][], pair };
    })
  )
);

function score(p: Problem, interact: boolean) {
  return (c: readonly number[]) => {
    let total = c.reduce((acc, v, l) => acc + p.unary[l][v], 0);
    if (interact) {
      for (let i = 0; i < c.length; i++) for (let j = i + 1; j < c.length; j++) total += p.pair[i][j][c[i]][c[j]];
    }
    return total;
  };
}

function budget(p: Problem, k: number) {
  const count = maxCount(([l, v]: readonly [number, number]) => v === 0 && p.space[l].length > 1, k);
  return (c: readonly number[]) => count(c.map((v, l) => [l, v] as const));
}

function allConfigs(space: number[][]): number[][] {
  return space.reduce<number[][]>((acc, cands) => acc.flatMap((pre) => cands.map((c) => [...pre, c])), [[]]);
}

Deno.test("beam search wide enough finds the brute-force optimum among feasible configurations", async () => {
  await fc.assert(
    fc.asyncProperty(problem, fc.integer({ min: 0, max: 2 }), async (p, k) => {
      // Budget: at most k layers with a choice use candidate 0; the baseline (the last candidate)
      // never does, so filling undecided layers with it never makes a prefix infeasible.
      const baseline = p.space.map((c) => c.length - 1);
      const feasible = budget(p, k);
      const f = score(p, true);
      const best = Math.min(...allConfigs(p.space).filter(feasible).map(f));
      const width = allConfigs(p.space).length;
      const r = await postnas(p.space, f, { strategy: "beam", beamWidth: width, baseline, feasible });
      if (r.score !== best || f(r.choice) !== best || !feasible(r.choice)) {
        throw new Error(`beam found ${r.score} (${r.choice}), brute force ${best}`);
      }
    }),
    { numRuns: 150 },
  );
});

Deno.test("greedy finds the optimum of an additive objective and never does worse than the baseline", async () => {
  await fc.assert(
    fc.asyncProperty(problem, fc.boolean(), async (p, interact) => {
      const baseline = p.space.map((c) => c.length - 1);
      const f = score(p, interact);
      const r = await postnas(p.space, f, { strategy: "greedy", baseline });
      if (r.score > f(baseline)) throw new Error(`greedy ${r.score} is worse than the baseline ${f(baseline)}`);
      if (!interact) {
        const best = Math.min(...allConfigs(p.space).map(f));
        if (r.score !== best) throw new Error(`greedy ${r.score} misses the additive optimum ${best}`);
      }
    }),
    { numRuns: 150 },
  );
});

Deno.test("every configuration is evaluated at most once and every result is feasible", async () => {
  await fc.assert(
    fc.asyncProperty(
      problem,
      fc.constantFrom<"greedy" | "beam">("greedy", "beam"),
      fc.integer({ min: 1, max: 3 }),
      async (p, strategy, beamWidth) => {
        const seen = new Map<string, number>();
        const f = score(p, true);
        const feasible = budget(p, 1);
        const r = await postnas(p.space, (c) => {
          const key = stableKey(c);
          seen.set(key, (seen.get(key) ?? 0) + 1);
          return f(c);
        }, { strategy, beamWidth, baseline: p.space.map((c) => c.length - 1), feasible });
        for (const [key, n] of seen) if (n > 1) throw new Error(`${key} was evaluated ${n} times`);
        if (!feasible(r.choice)) throw new Error(`infeasible result ${r.choice}`);
        const fresh = r.trace.filter((v) => !v.cached).length;
        if (fresh !== seen.size) throw new Error(`trace lists ${fresh} fresh evaluations, evaluate ran ${seen.size}`);
      },
    ),
    { numRuns: 100 },
  );
});

function deepFreeze<T>(v: T): T {
  if (v && typeof v === "object") {
    Object.values(v).forEach(deepFreeze);
    Object.freeze(v);
  }
  return v;
}

Deno.test("postnas is pure: frozen inputs are accepted and the same inputs give the same result and trace", async () => {
  const space = deepFreeze([[{ attn: "mha" }, { attn: "jet" }], [{ attn: "mha" }, { attn: "swa", window: 8 }, {
    attn: "jet",
  }], [{ attn: "jet" }]]);
  const cost: Record<string, number> = { mha: 3, swa: 1, jet: 2 };
  const f = (c: readonly { attn: string }[]) =>
    c.reduce((acc, b, i) => acc + cost[b.attn] * (i + 1), 0) + (c[0].attn === c[1].attn ? 5 : 0);
  const opts: PostnasOptions<{ attn: string }> = deepFreeze({
    strategy: "beam",
    beamWidth: 2,
    baseline: [space[0][1], space[1][2], space[2][0]],
    order: [2, 0, 1],
  });
  const a = await postnas(space, f, opts), b = await postnas(space, f, opts);
  if (stableKey(a) !== stableKey(b)) throw new Error("two runs differ");
  if (a.trace.length === 0 || a.trace[0].layer !== 2) {
    throw new Error("the trace should start at the first layer in order");
  }
});

Deno.test("ties go to the lower candidate index", async () => {
  const r = await postnas([["a", "b", "c"], ["x", "y"]], () => 1, { strategy: "greedy", baseline: ["c", "y"] });
  if (r.choice.join("") !== "ax") throw new Error(`tie-break chose ${r.choice}`);
});

Deno.test("bad options and infeasible spaces fail with clear errors", async () => {
  const space = [["a", "b"], ["a", "b"]];
  await assertThrowsMsg(
    () => postnas(space, () => 0, { strategy: "greedy", baseline: ["a"] }),
    "baseline must have one entry per layer (2)",
  );
  await assertThrowsMsg(
    () => postnas(space, () => 0, { strategy: "random" as never, baseline: ["a", "a"] }),
    'strategy must be "greedy" or "beam"',
  );
  await assertThrowsMsg(
    () => postnas(space, () => 0, { strategy: "beam", beamWidth: 0, baseline: ["a", "a"] }),
    "beamWidth must be a positive integer",
  );
  await assertThrowsMsg(
    () => postnas(space, () => 0, { strategy: "greedy", baseline: ["a", "a"], order: [0, 0] }),
    "order must be a permutation",
  );
  await assertThrowsMsg(
    () => postnas([["a"], []], () => 0, { strategy: "greedy", baseline: ["a", "a"] }),
    "layer 1 has no candidates",
  );
  await assertThrowsMsg(
    () => postnas(space, () => 0, { strategy: "beam", baseline: ["a", "a"], feasible: () => false }),
    "no feasible configuration at layer 0",
  );
  await assertThrowsMsg(
    () => postnas(space, () => NaN, { strategy: "greedy", baseline: ["a", "a"] }),
    "evaluate returned NaN",
  );
});

Deno.test("evaluateMany gives the same choice, score and trace as evaluate, one call per layer with new configurations", async () => {
  await fc.assert(
    fc.asyncProperty(
      problem,
      fc.constantFrom<"greedy" | "beam">("greedy", "beam"),
      fc.integer({ min: 1, max: 3 }),
      async (p, strategy, beamWidth) => {
        const f = score(p, true);
        const opts = { strategy, beamWidth, baseline: p.space.map((c) => c.length - 1), feasible: budget(p, 1) };
        const one = await postnas(p.space, f, opts);
        const calls: string[][] = [];
        const many = await postnas(p.space, () => {
          throw new Error("evaluate was called although evaluateMany was given");
        }, {
          ...opts,
          evaluateMany: (configs) => {
            calls.push(configs.map(stableKey));
            // Resolved out of order, as remote results arrive.
            return Promise.all(configs.map((c, i) => new Promise<number>((r) => setTimeout(() => r(f(c)), 3 - i % 3))));
          },
        });
        if (stableKey(many) !== stableKey(one)) {
          throw new Error(`results differ: ${stableKey(many)} vs ${stableKey(one)}`);
        }
        const fresh = one.trace.filter((v) => !v.cached).map((v) => stableKey(v.config));
        if (stableKey(calls.flat()) !== stableKey(fresh)) {
          throw new Error("evaluateMany did not get each new config once, in order");
        }
        const layers = new Set(one.trace.filter((v) => !v.cached).map((v) => v.layer));
        if (calls.length !== layers.size || calls.some((c) => c.length === 0)) {
          throw new Error(`${calls.length} calls for ${layers.size} layers with new configurations`);
        }
      },
    ),
    { numRuns: 60 },
  );
});

Deno.test("evaluateMany returning the wrong number of scores or NaN is an error naming it", async () => {
  const space = [["a", "b"], ["x", "y"]];
  await assertThrowsMsg(
    () =>
      postnas(space, () => 0, { strategy: "greedy", baseline: ["a", "x"], evaluateMany: () => Promise.resolve([1]) }),
    "evaluateMany returned 1 scores for 2 configurations",
  );
  await assertThrowsMsg(
    () =>
      postnas(space, () => 0, {
        strategy: "greedy",
        baseline: ["a", "x"],
        evaluateMany: (cs) => Promise.resolve(cs.map(() => NaN)),
      }),
    "evaluateMany returned NaN",
  );
});
