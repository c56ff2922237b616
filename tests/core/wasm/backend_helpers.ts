// Helpers of the Wasm backend tests: running on a backend of one's own, and a small training run.

import {
  adamw,
  makeTrainStep,
  randint,
  randomKey,
  readAll,
  resetStats,
  setBackend,
  stats,
  type Tensor,
  treeLeaves,
} from "../../../mod.ts";
import { block, initModel, lossFn, modelConfig, type ModelParams } from "../../../nn/mod.ts";
import { useWasm } from "../../../core/wasm/mod.ts";
import type { Interpreter } from "../../../core/cpu/mod.ts";
import type { Aval, CpuContext } from "../../../core/prim.ts";

/** Runs `fn` on backend `b` (selected through setBackend("wasm")), then restores the shared one. */
export async function on<R>(b: Interpreter, fn: () => Promise<R>): Promise<R> {
  useWasm(b);
  await setBackend("wasm");
  try {
    return await fn();
  } finally {
    useWasm(null);
    await setBackend("wasm");
  }
}

/**
 * Realizes `make()` on the shared Wasm backend twice (the second time counting the modules it
 * compiles), then on the reference: the outputs of both and the repeat's compiled modules.
 */
export async function wasmAndReference(make: () => Tensor[]) {
  await setBackend("wasm");
  await readAll(make());
  resetStats();
  const got = await readAll(make());
  const compiled = stats().shaderModules;
  await setBackend("cpu");
  const want = await readAll(make());
  return { got, want, compiled };
}

/** Realizes `make()` on the shared Wasm backend, then on the reference: the outputs of both. */
export async function onBoth(make: () => Tensor[]): Promise<{ wasm: ArrayLike<number>[]; cpu: ArrayLike<number>[] }> {
  await setBackend("wasm");
  const wasm = await readAll(make());
  await setBackend("cpu");
  const cpu = await readAll(make());
  return { wasm, cpu };
}

/** A context for calling a kernel directly: fresh f32 arrays. */
export const kernelCtx = { alloc: (_d: string, n: number) => new Float32Array(n) } as unknown as CpuContext;

/** An f32 abstract value of `shape`. */
export const f32Aval = (...shape: number[]): Aval => ({ shape, dtype: "f32" }) as Aval;

/** Deterministic values in [lo, hi) from a seed (xorshift). */
export function seededValues(seed: number, n: number, lo: number, hi: number): Float32Array {
  let s = seed >>> 0 || 1;
  return Float32Array.from({ length: n }, () => {
    s ^= s << 13, s ^= s >>> 17, s ^= s << 5;
    return lo + ((s >>> 0) / 2 ** 32) * (hi - lo);
  });
}

/** A two-block model (attention, then a JetBlock) and a batch, trained with AdamW. */
export const CFG = modelConfig({ vocab: 32, width: 16, heads: 2, ffnHidden: 32, blocks: [block("mha"), block("jet")] });

/** `steps` training steps from seed 0; returns each step's loss bits, the final params' bits and the arena's bytes after each step. */
export async function train(steps: number, memory?: () => { bytesInUse: number; bytesPooled: number }) {
  const opt = adamw({ lr: 1e-2 });
  const step = makeTrainStep((p: ModelParams, b: { inputs: Tensor; targets: Tensor }) => lossFn(p, b, CFG), opt);
  const params = initModel(randomKey(0), CFG);
  let state = { params, opt: opt.init(params), step: 0 };
  const tokens = randint(randomKey(1), [2, 13], { maxval: CFG.vocab });
  const batch = { inputs: tokens.slice([0, 0], [2, 12]), targets: tokens.slice([0, 1], [2, 13]) };
  const losses: number[] = [], bytes: { bytesInUse: number; bytesPooled: number }[] = [];
  for (let i = 0; i < steps; i++) {
    const [next, loss] = await step(state, batch);
    state = next;
    losses.push(await loss.item());
    loss.dispose();
    if (memory) bytes.push({ ...memory() });
  }
  const finals = await Promise.all(treeLeaves(state.params).map((t) => t.data()));
  return { losses, params: finals, bytes };
}
