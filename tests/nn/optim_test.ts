// Tests of AdamW against a float64 reference, masks, clipping, schedules, state as a pytree, and errors.

import fc from "fast-check";
import {
  readAll,
  realize,
  resetStats,
  setBackend,
  stats,
  type Tensor,
  tensor,
  treeDispose,
  treeLeaves,
  valueAndGrad,
} from "../../mod.ts";
import { adamw, type AdamWState } from "../../nn/optim.ts";
import { clipByGlobalNorm, constantSchedule, globalNorm, type Schedule, warmupCosine } from "../../nn/schedule.ts";
import { assertClose, assertThrowsMsg, forEachBackend, inF64, randomValues, values } from "../helpers.ts";
import { gpuTest } from "../core/webgpu/gpu.ts";

interface Params {
  readonly head: { readonly w: Tensor; readonly b: Tensor };
  readonly layers: readonly { readonly ffn: { readonly w1: Tensor }; readonly norm: Tensor }[];
}
// The leaves in treePaths order, with their shapes for sizes (d, h, o).
const leafShapes = (d: number, h: number, o: number): [string, number[]][] => [
  ["head.b", [o]],
  ["head.w", [h, o]],
  ["layers.0.ffn.w1", [d, h]],
  ["layers.0.norm", [d]],
];

function makeParams(flat: readonly number[][], [d, h, o]: readonly number[]): Params {
  const s = leafShapes(d, h, o).map(([, shape], i) => tensor(flat[i], { shape }));
  return { head: { b: s[0], w: s[1] }, layers: [{ ffn: { w1: s[2] }, norm: s[3] }] };
}

// Rounded to f32, so that the reference sees exactly the values the tensors hold.
function randomFlat(sizes: readonly number[], seed: number): number[][] {
  return leafShapes(sizes[0], sizes[1], sizes[2]).map(([, s], i) =>
    randomValues(s.reduce((a, b) => a * b, 1), seed + 7 * i).map(Math.fround)
  );
}

interface RefOptions {
  lr: (step: number) => number;
  b1: number;
  b2: number;
  eps: number;
  wd: number;
}

/** AdamW as published (Loshchilov & Hutter, Algorithm 2, with the decay scaled by lr), in float64. */
function referenceAdamW(p0: readonly number[], grads: readonly number[][], o: RefOptions, decays: boolean): number[] {
  const p = [...p0], m = p.map(() => 0), v = p.map(() => 0);
  grads.forEach((g, s) => {
    const t = s + 1, lr = o.lr(s);
    for (let i = 0; i < p.length; i++) {
      m[i] = o.b1 * m[i] + (1 - o.b1) * g[i];
      v[i] = o.b2 * v[i] + (1 - o.b2) * g[i] * g[i];
      const mHat = m[i] / (1 - o.b1 ** t), vHat = v[i] / (1 - o.b2 ** t);
      p[i] = p[i] - lr * mHat / (Math.sqrt(vHat) + o.eps) - (decays ? lr * o.wd * p[i] : 0);
    }
  });
  return p;
}

/** Runs `steps` AdamW updates with the given grads per step; returns final params and state. */
async function runAdamW(
  opt: ReturnType<typeof adamw>,
  params: Params,
  gradsPerStep: readonly Params[],
): Promise<{ params: Params; state: AdamWState }> {
  let state = opt.init(params);
  for (const g of gradsPerStep) {
    ({ params, state } = opt.update(g, state, params));
    await realize([...treeLeaves(params), ...treeLeaves(state)]);
  }
  return { params, state };
}

interface Case extends RefOptions {
  readonly schedule?: Schedule;
  readonly clipNorm?: number;
  readonly frozen?: (path: string) => boolean;
  readonly gradScale?: number;
}

async function checkAgainstReference(
  sizes: number[],
  o: Case,
  seed: number,
  tol: { atol: number; rtol: number },
): Promise<void> {
  const steps = 4, shapes = leafShapes(sizes[0], sizes[1], sizes[2]);
  const frozen = shapes.map(([path]) => o.frozen?.(path) ?? false);
  const p0 = randomFlat(sizes, seed);
  const gs = Array.from({ length: steps }, (_, s) => randomFlat(sizes, seed + 1000 * (s + 1)))
    .map((g) => g.map((x) => x.map((v) => Math.fround(v * (o.gradScale ?? 1)))));
  const { clipNorm, frozen: isFrozen } = o;
  const mask = isFrozen && ((path: string) => !isFrozen(path));
  const opt = adamw({ lr: o.schedule ?? o.lr(0), b1: o.b1, b2: o.b2, eps: o.eps, weightDecay: o.wd, clipNorm, mask });
  const out = await runAdamW(opt, makeParams(p0, sizes), gs.map((g) => makeParams(g, sizes)));
  // The reference clips each step's grads by the global norm of the trained leaves only.
  const clipped = gs.map((g) => {
    const norm = Math.sqrt(g.filter((_, i) => !frozen[i]).flat().reduce((acc, x) => acc + x * x, 0));
    const scale = clipNorm !== undefined && norm > clipNorm ? clipNorm / norm : 1;
    return g.map((x) => x.map((v) => v * scale));
  });
  const got = treeLeaves(out.params);
  for (const [i, [path, shape]] of shapes.entries()) {
    // Default weightDecayMask: tensors with at least 2 axes decay; norms and biases do not.
    const want = frozen[i] ? p0[i] : referenceAdamW(p0[i], clipped.map((g) => g[i]), o, shape.length >= 2);
    // Compare the displacement, so the tolerance is relative to what the optimizer changed.
    const moved = (await values(got[i])).map((x, j) => x - p0[i][j]);
    assertClose(moved, want.map((x, j) => x - p0[i][j]), { ...tol, msg: `${path} (sizes ${sizes})` });
  }
  const [count] = await values(out.state.count);
  if (count !== steps) throw new Error(`count is ${count} after ${steps} steps`);
}

const arbSizes = fc.tuple(
  fc.integer({ min: 1, max: 4 }),
  fc.integer({ min: 1, max: 4 }),
  fc.integer({ min: 1, max: 3 }),
);
const arbHyper = fc.record({
  lr: fc.double({ min: 1e-4, max: 0.1, noNaN: true }),
  b1: fc.oneof(fc.constant(0), fc.double({ min: 0, max: 0.99, noNaN: true })),
  b2: fc.double({ min: 0.9, max: 0.9999, noNaN: true }),
  eps: fc.constantFrom(1e-8, 1e-6),
  wd: fc.double({ min: 0, max: 0.2, noNaN: true }),
});

forEachBackend(
  "four AdamW steps on random params and grads match a float64 reference (f32 backend)",
  async (backend) => {
    // f32 rounding of params (~6e-8) and of the step's factors (~1e-6 relative) bound the error on the
    // CPU; WGSL's division and sqrt may be off by a few ulps more, and the rest of the step with them.
    const tol = backend === "webgpu" ? { atol: 2e-6, rtol: 1e-4 } : { atol: 5e-7, rtol: 2e-5 };
    await fc.assert(
      fc.asyncProperty(arbSizes, arbHyper, fc.integer({ min: 1, max: 1e6 }), async (sizes, h, seed) => {
        await checkAgainstReference(sizes, { ...h, lr: () => h.lr }, seed, tol);
      }),
      { numRuns: 20 },
    );
  },
);

Deno.test("AdamW with a warmupCosine schedule matches the float64 reference closely on the f64 backend", async () => {
  await inF64(async () => {
    const sched = { peak: 0.05, warmupSteps: 2, totalSteps: 6, final: 0.01 };
    const lr = (s: number) =>
      s < 2 ? 0.05 * s / 2 : s >= 6 ? 0.01 : 0.01 + 0.04 * 0.5 * (1 + Math.cos(Math.PI * (s - 2) / 4));
    const o = { lr, b1: 0.9, b2: 0.999, eps: 1e-8, wd: 0.05, schedule: warmupCosine(sched) };
    // Only the f32 storage of the hyperparameters (~3e-8 relative) separates the two here.
    await checkAgainstReference([3, 4, 2], o, 11, { atol: 1e-10, rtol: 1e-6 });
  });
});

Deno.test("clipNorm clips the trained leaves' grads (frozen ones not counted) before the moments", async () => {
  await inF64(async () => {
    const o = { lr: () => 0.02, b1: 0.8, b2: 0.99, eps: 1e-8, wd: 0.01, clipNorm: 1, gradScale: 10 };
    // Frozen leaves get large grads too: counting them would shrink the trained leaves' steps.
    await checkAgainstReference([3, 4, 2], { ...o, frozen: (path) => path.startsWith("layers") }, 12, {
      atol: 1e-10,
      rtol: 1e-6,
    });
    await checkAgainstReference([2, 2, 3], o, 13, { atol: 1e-10, rtol: 1e-6 });
  });
});

Deno.test("weight decay is decoupled (p -= lr wd p whatever the grads) and follows weightDecayMask", async () => {
  await inF64(async () => {
    const p = makeParams(randomFlat([2, 3, 2], 5), [2, 3, 2]);
    const zeroGrads = makeParams(randomFlat([2, 3, 2], 6).map((x) => x.map(() => 0)), [2, 3, 2]);
    const bigGrads = makeParams(randomFlat([2, 3, 2], 7).map((x) => x.map((v) => 1e3 * v)), [2, 3, 2]);
    const [lr, wd] = [0.5, 0.1];
    const mask = (path: string) => path.startsWith("layers") || path === "head.b";
    for (const [grads, name] of [[zeroGrads, "zero"], [bigGrads, "large"]] as const) {
      const withWd = await runAdamW(adamw({ lr, weightDecay: wd, weightDecayMask: mask }), p, [grads]);
      const noWd = await runAdamW(adamw({ lr, weightDecay: 0 }), p, [grads]);
      const [a, b, p0] = [withWd.params, noWd.params, p].map(treeLeaves);
      for (const [i, [path]] of leafShapes(2, 3, 2).entries()) {
        const [av, bv, p0v] = [await values(a[i]), await values(b[i]), await values(p0[i])];
        // With equal grads the Adam parts are equal, so the difference is exactly the decay term.
        const decay = p0v.map((x) => (mask(path) ? lr * wd * x : 0));
        assertClose(bv.map((x, j) => x - av[j]), decay, { atol: 1e-12, rtol: 1e-6, msg: `${name} grads, ${path}` });
      }
    }
    // The default decays only tensors with at least two axes.
    const byDefault = await runAdamW(adamw({ lr, weightDecay: wd }), p, [zeroGrads]);
    const [pb, pw] = treeLeaves(byDefault.params), [b0, w0] = treeLeaves(p);
    assertClose(await values(pb), await values(b0), { atol: 0, rtol: 0, msg: "head.b (1 axis)" });
    assertClose(await values(pw), (await values(w0)).map((x) => x * (1 - lr * wd)), { rtol: 1e-12, msg: "head.w" });
  });
});

forEachBackend("frozen leaves come back as the same tensors, bit for bit, and keep no moments", async () => {
  const sizes = [3, 4, 2];
  const p = makeParams(randomFlat(sizes, 21), sizes);
  const before = await readAll(treeLeaves(p));
  const opt = adamw({ lr: 0.1, mask: (path) => !path.includes("ffn") && path !== "head.b", clipNorm: 0.5 });
  // Frozen leaves may have real grads (ffn), a null one, or none at all (head.b).
  const [g1, g2] = [22, 23].map((seed) => makeParams(randomFlat(sizes, seed), sizes));
  const grads = [{ ...g1, head: { w: g1.head.w, b: null } }, { ...g2, head: { w: g2.head.w } }];
  let params = p, state = opt.init(p);
  for (const g of grads) ({ params, state } = opt.update(g, state, params));
  const after = treeLeaves(params), now = await readAll(after);
  for (const [i, [path]] of leafShapes(3, 4, 2).entries()) {
    const frozen = path.includes("ffn") || path === "head.b";
    if (frozen !== (after[i] === treeLeaves(p)[i])) throw new Error(`${path}: identity ${!frozen} expected`);
    const same = now[i].every((x, j) => Object.is(x, before[i][j]));
    if (frozen !== same) throw new Error(`${path}: ${frozen ? "frozen leaf changed" : "trained leaf did not move"}`);
  }
  if (state.mu === null || (state.mu as unknown as Params).layers[0].ffn.w1 !== null) {
    throw new Error("a frozen leaf must have null moments");
  }
  if (treeLeaves(state).length !== 1 + 2 * 2) {
    throw new Error("state should hold count + 2 moments per trained leaf");
  }
  // Non-f32 leaves are never trained and need no grads.
  const withIds = { w: tensor([1, 2]), ids: tensor([3], { dtype: "i32" }) };
  const opt2 = adamw({ lr: 0.1 });
  const r = opt2.update({ w: tensor([1, 1]), ids: null }, opt2.init(withIds), withIds);
  if (r.params.ids !== withIds.ids) throw new Error("an i32 leaf must be returned unchanged");
});

forEachBackend("AdamW state is a pytree of tensors: count is an i32 scalar and treeDispose releases it", async () => {
  const p = makeParams(randomFlat([2, 2, 2], 31), [2, 2, 2]);
  const opt = adamw({ lr: 0.01 });
  const s0 = opt.init(p);
  const leaves = treeLeaves(s0);
  if (leaves.length !== 1 + 2 * 4) throw new Error(`init state has ${leaves.length} leaves`);
  if (s0.count.dtype !== "i32" || s0.count.ndim !== 0) throw new Error("count must be an i32 scalar");
  for (const m of treeLeaves(s0.mu)) assertClose(await values(m), new Array(m.size).fill(0), { atol: 0 });
  const { state } = await runAdamW(opt, p, [p, p, p]);
  const [count] = await values(state.count);
  if (count !== 3) throw new Error(`count ${count} after 3 updates`);
  treeDispose(state);
  if (!treeLeaves(state).every((t) => t.disposed)) throw new Error("treeDispose left a state leaf alive");
  treeDispose(s0);
});

/** Freezes records and arrays all the way down (tensors stay usable). */
function deepFreeze<T>(tree: T): T {
  if (tree !== null && typeof tree === "object" && !("dtype" in tree)) {
    for (const v of Object.values(tree)) deepFreeze(v);
    Object.freeze(tree);
  }
  return tree;
}

forEachBackend("update accepts deeply frozen params, grads and state and changes none of them", async () => {
  const sizes = [2, 3, 2];
  const p = deepFreeze(makeParams(randomFlat(sizes, 41), sizes));
  const g = deepFreeze(makeParams(randomFlat(sizes, 42), sizes));
  const opt = adamw({ lr: 0.1, clipNorm: 1 });
  const s = deepFreeze(opt.init(p));
  const snapshot = await readAll([...treeLeaves(p), ...treeLeaves(g), ...treeLeaves(s)]);
  const shape = JSON.stringify([p, g, s].map((t) => treeLeaves(t).map((x) => x.id)));
  const next = opt.update(g, s, p);
  await realize([...treeLeaves(next.params), ...treeLeaves(next.state)]);
  if (JSON.stringify([p, g, s].map((t) => treeLeaves(t).map((x) => x.id))) !== shape) {
    throw new Error("the inputs' leaves were replaced");
  }
  const again = await readAll([...treeLeaves(p), ...treeLeaves(g), ...treeLeaves(s)]);
  again.forEach((a, i) => assertClose(a, snapshot[i], { atol: 0, rtol: 0, msg: `input leaf ${i}` }));
  if (next.params === p || next.state === s || next.params.head === p.head) throw new Error("expected new records");
});

forEachBackend(
  "globalNorm is the root of the sum of squares; clipping caps it and leaves small grads as they are",
  async () => {
    await fc.assert(
      fc.asyncProperty(
        arbSizes,
        fc.integer({ min: 1, max: 1e6 }),
        fc.double({ min: 0.1, max: 5, noNaN: true }),
        async (sizes, seed, maxNorm) => {
          const flat = randomFlat(sizes, seed);
          const g = makeParams(flat, sizes);
          const want = Math.sqrt(flat.flat().reduce((a, x) => a + x * x, 0));
          const { grads, norm } = clipByGlobalNorm(g, maxNorm);
          const [n, n2] = await readAll([norm, globalNorm(g)]);
          assertClose([n[0], n2[0]], [want, want], { atol: 1e-6, rtol: 1e-5, msg: "norm" });
          const [clippedNorm] = await readAll([globalNorm(grads)]);
          if (!(clippedNorm[0] <= maxNorm * (1 + 1e-6))) throw new Error(`clipped norm ${clippedNorm[0]} > ${maxNorm}`);
          const got = await readAll(treeLeaves(grads));
          const scale = want <= maxNorm ? 1 : maxNorm / want;
          got.forEach((x, i) => {
            const tol = scale === 1 ? { atol: 0, rtol: 0 } : { atol: 1e-7, rtol: 1e-5 };
            assertClose(x, flat[i].map((v) => v * scale), { ...tol, msg: `leaf ${i} (norm ${want}, max ${maxNorm})` });
          });
        },
      ),
      { numRuns: 30 },
    );
    const [zero] = await readAll([clipByGlobalNorm({ w: tensor([0, 0]) }, 1).grads.w]);
    assertClose(zero, [0, 0], { atol: 0, msg: "zero grads stay zero (no 0/0)" });
  },
);

forEachBackend("warmupCosine has its closed-form values at steps 0, warmup, mid-decay, total and beyond", async () => {
  const [peak, w, total] = [2e-3, 10, 110];
  const s = warmupCosine({ peak, warmupSteps: w, totalSteps: total });
  const final = 0.1 * peak;
  const steps = [0, 5, 10, 35, 60, 85, 110, 111, 1000];
  const want = [
    0,
    peak / 2,
    peak,
    final + (peak - final) * (1 + Math.SQRT1_2) / 2,
    (peak + final) / 2,
    final + (peak - final) * (1 - Math.SQRT1_2) / 2,
    final,
    final,
    final,
  ];
  const got = await readAll([s(tensor(steps)), s(tensor(steps, { dtype: "i32" }))]);
  assertClose(got[0], want, { atol: 1e-9, rtol: 1e-5, msg: "f32 steps" });
  assertClose(got[1], want, { atol: 1e-9, rtol: 1e-5, msg: "i32 steps" });
  // The peak and the final value are exact, not cos(0) or cos(pi) rounded in f32.
  if (got[0][2] !== Math.fround(peak) || got[0][6] !== Math.fround(final)) throw new Error(`ends ${got[0]}`);
  const noWarmup = warmupCosine({ peak: 1, warmupSteps: 0, totalSteps: 4, final: 0 });
  assertClose((await readAll([noWarmup(tensor([0, 2, 4, 9]))]))[0], [1, 0.5, 0, 0], { atol: 1e-7 });
  assertClose((await readAll([constantSchedule(0.3)(tensor(7))]))[0], [0.3], { rtol: 1e-7 });
});

forEachBackend("AdamW fits a small linear regression: the loss falls by more than 100x in 150 steps", async () => {
  const [n, d] = [32, 3];
  const x = tensor(randomValues(n * d, 51), { shape: [n, d] });
  const y = x.matmul(tensor([[1.5], [-2], [0.5]])).add(0.7);
  const loss = (p: { w: Tensor; b: Tensor }) => x.matmul(p.w).add(p.b).sub(y).square().mean();
  const step = valueAndGrad(loss);
  const opt = adamw({ lr: warmupCosine({ peak: 0.1, warmupSteps: 10, totalSteps: 150 }), weightDecay: 0 });
  let params = { w: tensor(new Float32Array(d), { shape: [d, 1] }), b: tensor([0]) }, state = opt.init(params);
  const losses: Tensor[] = [];
  for (let i = 0; i < 150; i++) {
    const [l, g] = step(params);
    ({ params, state } = opt.update(g, state, params));
    losses.push(l);
    await realize([l, ...treeLeaves(params), ...treeLeaves(state)]);
  }
  const [first, last] = [(await values(losses[0]))[0], (await values(loss(params)))[0]];
  if (!(last < first / 100)) throw new Error(`loss went from ${first} to ${last}, not down 100x`);
});

Deno.test("bad options and mismatched trees throw errors naming the field and what is allowed", async () => {
  const p = { w: tensor([[1, 2]]), b: tensor([0]) };
  await assertThrowsMsg(() => adamw({ lr: -1 }), "adamw: lr", ">= 0", "-1");
  await assertThrowsMsg(() => adamw({ lr: NaN }), "lr", "schedule");
  await assertThrowsMsg(() => adamw({ lr: 0.1, b1: 1 }), "b1", "[0, 1)", "got 1");
  await assertThrowsMsg(() => adamw({ lr: 0.1, b1: -0.1 }), "b1", "[0, 1)");
  await assertThrowsMsg(() => adamw({ lr: 0.1, b2: 1.5 }), "b2", "[0, 1)");
  await assertThrowsMsg(() => adamw({ lr: 0.1, eps: -1 }), "eps", ">= 0");
  await assertThrowsMsg(() => adamw({ lr: 0.1, weightDecay: -0.1 }), "weightDecay", ">= 0");
  await assertThrowsMsg(() => adamw({ lr: 0.1, clipNorm: 0 }), "clipNorm", "> 0");
  await assertThrowsMsg(() => adamw({ lr: 0.1, mask: 3 as never }), "mask", "function (path, param) => boolean");
  await assertThrowsMsg(() => adamw({ lr: 0.1, weightDecayMask: "w" as never }), "weightDecayMask", "function");
  await assertThrowsMsg(() => adamw({ lr: 0.1, learningRate: 1 } as never), 'unknown option "learningRate"', "lr, b1");
  const badMask = adamw({ lr: 0.1, mask: (() => 1) as never });
  await assertThrowsMsg(() => badMask.init(p), "mask", "not a boolean");
  const opt = adamw({ lr: 0.1 }), s = opt.init(p);
  await assertThrowsMsg(() => opt.update({ w: tensor([[1, 2]]), b: tensor([0]), c: tensor(1) }, s, p), "grads", "c");
  await assertThrowsMsg(() => opt.update({ w: tensor([1, 2]), b: tensor([0]) }, s, p), 'grads at "w"', "[1,2]");
  await assertThrowsMsg(() => opt.update({ w: tensor([[1, 2]]) }, s, p), 'grads at "b" is missing', "trained");
  await assertThrowsMsg(() => opt.update([tensor(1)], s, p), "grads at the root", "keys b, w");
  await assertThrowsMsg(() => opt.update({ w: [tensor(1)], b: tensor([0]) }, s, p), 'grads at "w"', "tensor");
  await assertThrowsMsg(() => opt.update(p, { count: tensor(0) } as never, p), "count an i32 scalar");
  await assertThrowsMsg(() => opt.update(p, opt.init({ w: p.w }), p), 'state.mu at "b" is missing');
  await assertThrowsMsg(() => adamw({ lr: () => tensor([1, 2]) }).update(p, s, p), "f32 scalar");
  await assertThrowsMsg(
    () => warmupCosine({ peak: 1, warmupSteps: 10, totalSteps: 5 }),
    "totalSteps",
    ">= warmupSteps",
  );
  await assertThrowsMsg(() => warmupCosine({ peak: 1, warmupSteps: 1.5, totalSteps: 5 }), "warmupSteps", "integer");
  await assertThrowsMsg(() => warmupCosine({ peak: -1, warmupSteps: 1, totalSteps: 5 }), "peak", ">= 0");
  await assertThrowsMsg(() => clipByGlobalNorm(p, -1), "maxNorm", "> 0");
  await assertThrowsMsg(() => globalNorm({ ids: tensor([1], { dtype: "i32" }) }), 'leaf "ids"', "f32");
});

gpuTest("5 AdamW steps on WebGPU match the CPU, read nothing back and reuse compiled kernels", async () => {
  const sizes = [4, 8, 3];
  const p0 = randomFlat(sizes, 61), gs = [1, 2, 3, 4, 5].map((s) => randomFlat(sizes, 61 + 100 * s));
  const run = async (onGpu: boolean): Promise<Float32Array[]> => {
    const opt = adamw({ lr: warmupCosine({ peak: 0.05, warmupSteps: 2, totalSteps: 5 }), clipNorm: 1 });
    let params = makeParams(p0, sizes), state = opt.init(params);
    resetStats();
    let pipelinesAfterStep2 = 0;
    for (const [k, g] of gs.entries()) {
      ({ params, state } = opt.update(makeParams(g, sizes), state, params));
      await realize([...treeLeaves(params), ...treeLeaves(state)]);
      if (k === 1) pipelinesAfterStep2 = stats().pipelines;
    }
    const { readbacks, submits, pipelines } = stats();
    // On WebGPU each realize is one submit; on the CPU there are no submits at all.
    if (readbacks !== 0 || submits !== (onGpu ? 5 : 0)) throw new Error(`${readbacks} readbacks, ${submits} submits`);
    // From step 2 on every step has the same structure, so later steps reuse its compiled kernels.
    if (pipelines !== pipelinesAfterStep2) {
      throw new Error(`steps 3-5 created ${pipelines - pipelinesAfterStep2} pipelines`);
    }
    return (await readAll(treeLeaves(params))) as Float32Array[];
  };
  await setBackend("webgpu");
  try {
    const gpu = await run(true);
    await setBackend("cpu");
    const cpu = await run(false);
    // f32 on both; GPU exp/log/sqrt/cos may differ by a few ulps, moving params by ~lr * 1e-6.
    gpu.forEach((g, i) => assertClose(g, cpu[i], { atol: 1e-6, rtol: 1e-5, msg: `leaf ${i}` }));
  } finally {
    await setBackend("cpu");
  }
});
