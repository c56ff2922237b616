// The WGSL that workloads need on a given adapter, without running any of it there: the workloads
// run on the CPU backend, and every realization is also planned for the adapter's limits. Both
// shader compilers compile the result (Naga in tests/core/webgpu/corpus_test.ts, Tint in the
// browser suite). No Deno APIs here: the browser suite's page imports it too.

import fc from "fast-check";
import {
  adamw,
  block,
  type BlockSpec,
  evaluateModel,
  generate,
  initModel,
  initSupernet,
  lossFn,
  makeTrainStep,
  modelConfig,
  type ModelParams,
  pathObjective,
  randomKey,
  readAll,
  setBackend,
  supernetTrainer,
  type ToyBatch,
  toyBatch,
  warmupCosine,
} from "../../../mod.ts";
import { observeRealizations } from "../../../core/backend.ts";
import { lower } from "../../../core/webgpu/lower.ts";
import { planKernels } from "../../../core/webgpu/plan.ts";
import { capabilitiesOf } from "../../../core/webgpu/run.ts";
import { PRIM_NAMES, PRIM_SPECS, toTensor } from "../prim_specs.ts";
import { primGradients } from "./spec_checks.ts";

/** One distinct kernel: what it computes and its WGSL. */
export interface CorpusKernel {
  readonly label: string;
  readonly wgsl: string;
}

/** The adapter limits that shape the WGSL. */
export interface CorpusLimits {
  readonly maxStorageBuffers: number;
  readonly maxBindingSize: number;
}

/**
 * Runs `workload` on the CPU backend and returns the distinct kernels WebGPU would compile for it,
 * on a device with the device's own sin and cos and on one without.
 */
export async function collectKernels(limits: CorpusLimits, workload: () => Promise<void>): Promise<CorpusKernel[]> {
  const caps = capabilitiesOf(limits);
  const kernels = new Map<string, string>();
  const stop = observeRealizations((targets) => {
    const graph = lower(targets, caps);
    // With the device's sin and cos, and with jetfold's own (for adapters whose builtins are coarse).
    for (const ownTrig of [false, true]) {
      for (const k of planKernels(graph, limits.maxStorageBuffers, undefined, { ownTrig })) {
        if (k.threads > 0 && !kernels.has(k.wgsl)) kernels.set(k.wgsl, k.label);
      }
    }
  });
  try {
    await setBackend("cpu");
    await workload();
  } finally {
    stop();
  }
  return [...kernels].map(([wgsl, label]) => ({ label, wgsl }));
}

/** Every primitive on `runs` random cases of the spec table, and its gradients on `runs / 2`. */
export async function specTableWorkload(runs: number, seed = 1): Promise<void> {
  for (const name of PRIM_NAMES) {
    const spec = PRIM_SPECS[name];
    for (const c of fc.sample(spec.cases, { numRuns: runs, seed })) await readAll([c.build(...c.inputs.map(toTensor))]);
    if (spec.differentiable.length === 0) continue;
    for (const c of fc.sample(spec.gradCases, { numRuns: Math.ceil(runs / 2), seed })) {
      await readAll(primGradients(name, c));
    }
  }
}

/** A model and its data, as the demo and the tests use them. */
export interface ModelCase {
  readonly width: number;
  readonly heads: number;
  readonly kvHeads?: number;
  readonly blocks: readonly BlockSpec[];
  readonly seqLen: number;
  readonly batch: number;
}

/** The CLI demo's chosen model, the web page's, and a small one of every block variant. */
export const MODEL_CASES: readonly ModelCase[] = [
  {
    width: 64,
    heads: 4,
    blocks: [block("mha"), block("swa", { window: 16 }), block("jet"), block("jet")],
    ...b(48, 8),
  },
  { width: 32, heads: 2, kvHeads: 1, blocks: [block("mha"), block("swa", { window: 8 }), block("jet")], ...b(32, 8) },
  {
    width: 16,
    heads: 2,
    kvHeads: 1,
    blocks: [block("linear", { conv: true, ffn: "gated" }), block("jet", { conv: true }), block("swa", { window: 4 })],
    ...b(32, 2),
  },
];

function b(seqLen: number, batch: number) {
  return { seqLen, batch };
}

/** Two AdamW steps (the first one with the initialization), an evaluation, greedy and sampled generation. */
export async function modelWorkload(m: ModelCase): Promise<void> {
  const cfg = modelConfig({
    vocab: 256,
    width: m.width,
    heads: m.heads,
    ...(m.kvHeads === undefined ? {} : { kvHeads: m.kvHeads }),
    blocks: [...m.blocks],
  });
  const opt = adamw({ lr: warmupCosine({ peak: 3e-3, warmupSteps: 2, totalSteps: 10 }), clipNorm: 1 });
  const step = makeTrainStep((p: ModelParams, batch: ToyBatch) => lossFn(p, batch, cfg), opt);
  const params = initModel(randomKey(0), cfg);
  let state = { params, opt: opt.init(params), step: 0 };
  for (let i = 0; i < 2; i++) [state] = await step(state, toyBatch(randomKey(i + 1), m));
  await evaluateModel(state.params, cfg, [toyBatch(randomKey(99), m)]);
  await generate(state.params, cfg, [1, 2, 3], { maxNewTokens: 3 });
  await generate(state.params, cfg, [1, 2, 3], { maxNewTokens: 2, temperature: 0.8, topK: 3, key: randomKey(5) });
}

/** Two supernet steps on random paths over mha | swa | jet, and the PostNAS objective of two paths. */
export async function supernetWorkload(): Promise<void> {
  const cfg = modelConfig({ vocab: 256, width: 32, heads: 2, blocks: [block("mha"), block("mha")] });
  const space = cfg.blocks.map(() => [block("mha"), block("swa", { window: 8 }), block("jet")]);
  const trainer = supernetTrainer({ lr: 3e-3, clipNorm: 1 });
  let sn = initSupernet(randomKey(0), cfg, space);
  let opt = trainer.init(sn);
  for (let i = 0; i < 2; i++) {
    const batch = toyBatch(randomKey(i + 1), { batch: 4, seqLen: 32 });
    ({ supernet: sn, opt } = await trainer.step(sn, opt, { ...batch, key: randomKey(100 + i) }));
  }
  const score = pathObjective(sn, [toyBatch(randomKey(9), { batch: 4, seqLen: 32 })], { accuracy: 1 });
  await score([space[0][0], space[1][2]]);
  await score([space[0][2], space[1][1]]);
}

/** The kernels of all the workloads above, planned for `limits`. */
export function kernelCorpus(
  limits: CorpusLimits,
  o: { specRuns: number } = { specRuns: 24 },
): Promise<CorpusKernel[]> {
  return collectKernels(limits, async () => {
    await specTableWorkload(o.specRuns);
    for (const m of MODEL_CASES) await modelWorkload(m);
    await supernetWorkload();
  });
}
