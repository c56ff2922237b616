// Reduction and scan variants on this WebGPU adapter: each variant's time (the tuner's own timing:
// the least of a few runs) on a few typical shapes, and the variant the tuner keeps.
// Usage: deno run -A bench/kernel_variants.ts
// (bench/kernel_variants_browser.ts imports the cases and the forcing below, for SwiftShader.)

import { leafNode, Node } from "../core/graph.ts";
import { requestGpu } from "../core/webgpu/device.ts";
import type { KernelFeatures } from "../core/webgpu/emit.ts";
import { planKernels } from "../core/webgpu/plan.ts";
import { timeKernel } from "../core/webgpu/tune_time.ts";
import { KernelTuner } from "../core/webgpu/tune_kernels.ts";
import {
  reduceName,
  type ReduceVariant,
  scanName,
  type ScanVariant,
  type Tunable,
  tunableClass,
} from "../core/webgpu/kernel_variants.ts";
import { PRIMS } from "../core/prims/mod.ts";

const node = (op: string, src: Node[], params: object = {}) => {
  // deno-lint-ignore no-explicit-any
  const aval = (PRIMS as any)[op].shape(src, params);
  return new Node(op as "sum", aval.shape, aval.dtype, src, params as never);
};
const f = (...shape: number[]) => leafNode(shape, "f32");

/**
 * Shapes a training step of the nn/ models meets: bias gradients (a sum over the batch), losses
 * over a vocabulary, attention rows, a long sum; the scan of a small delta-rule layer (forward and
 * reverse), and a forward scan with the key size of a large model's layer.
 */
export const CASES: [string, Tunable, Node][] = [
  [
    "bias grad sum [4096,256] axis 0",
    { kind: "reduce", op: "sum outer", nOut: 256, nr: 4096 },
    node("sum", [f(4096, 256)], { axes: [0] }),
  ],
  [
    "row sums [1024,1024]",
    { kind: "reduce", op: "sum", nOut: 1024, nr: 1024 },
    node("sum", [f(1024, 1024)], { axes: [1] }),
  ],
  [
    "logsumexp [384,32768]",
    { kind: "reduce", op: "logsumexp", nOut: 384, nr: 32768 },
    node("logsumexp", [f(384, 32768)]),
  ],
  ["softmax [8192,128]", { kind: "reduce", op: "softmax", nOut: 8192, nr: 128 }, node("softmax", [f(8192, 128)])],
  ["sum [4,2^20]", { kind: "reduce", op: "sum", nOut: 4, nr: 2 ** 20 }, node("sum", [f(4, 2 ** 20)], { axes: [1] })],
  [
    "deltaScan B2 H4 T128 K32 V32",
    { kind: "scan", op: "deltaScan", dims: [2, 4, 128, 32, 32] },
    node("deltaScan", [f(2, 4, 128, 32), f(2, 4, 128, 32), f(2, 4, 128), f(2, 4, 128), f(2, 4, 32, 32)]),
  ],
  [
    "deltaScanGrad B2 H4 T128 K32 V32",
    { kind: "scan", op: "deltaScanGrad", dims: [2, 4, 128, 32, 32] },
    node("deltaScanGrad", [
      f(2, 4, 128, 32, 32),
      f(2, 4, 128, 32),
      f(2, 4, 128, 32),
      f(2, 4, 128),
      f(2, 4, 128),
      f(2, 4, 32, 32),
      f(2, 4, 128, 32, 32),
    ]),
  ],
  [
    "deltaScan B1 H4 T128 K128 V64 (a large state column)",
    { kind: "scan", op: "deltaScan", dims: [1, 4, 128, 128, 64] },
    node("deltaScan", [f(1, 4, 128, 128), f(1, 4, 128, 64), f(1, 4, 128), f(1, 4, 128), f(1, 4, 128, 64)]),
  ],
];

/** Kernel features that force variant `v` on every kernel of `u`'s kind. */
export function forcing(u: Tunable, v: ReduceVariant | ScanVariant, subgroups: boolean): KernelFeatures {
  return u.kind === "reduce"
    ? { ownTrig: false, subgroups, reduceVariant: () => v as ReduceVariant }
    : { ownTrig: false, scanVariant: () => v as ScanVariant };
}

/** A variant's name, as the tuner stores it. */
export function variantLabel(u: Tunable, v: ReduceVariant | ScanVariant): string {
  return u.kind === "reduce" ? reduceName(v as ReduceVariant) : scanName(v as ScanVariant);
}

if (import.meta.main) {
  const gpu = await requestGpu();
  if (gpu === null) throw new Error("no WebGPU adapter");
  const tuner = new KernelTuner(gpu, 1500);
  console.log(`${gpu.description} (subgroups: ${gpu.subgroups}, timestamps: ${gpu.timestamps})\n`);
  for (const [label, u, n] of CASES) {
    const cells: string[] = [];
    for (const v of tuner.candidates(u, gpu.subgroups)) {
      const [k] = planKernels([n], gpu.maxStorageBuffers, undefined, forcing(u, v, gpu.subgroups));
      const runs = [];
      for (let i = 0; i < 3; i++) runs.push(await timeKernel(gpu, k, 1500) ?? Infinity);
      cells.push(`${variantLabel(u, v)} ${Math.min(...runs).toFixed(2)} ms`);
    }
    await tuner.measure(u, { ownTrig: false, subgroups: gpu.subgroups });
    console.log(`${label}: tuner keeps ${tuner.choice(tunableClass(u))}\n  ${cells.join(" | ")}`);
  }
}
