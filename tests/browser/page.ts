// The browser suite's page: the checks it runs inside Chromium, bundled with the library's sources
// and exposed as `globalThis.jetfoldChecks` for tests/browser/browser_test.ts to call.

import {
  grad,
  normal,
  ops,
  randomKey,
  saveSafetensors,
  setBackend,
  type Tensor,
  tensor,
  treeLeaves,
} from "../../mod.ts";
import { requestGpu } from "../../core/webgpu/device.ts";
import { checkCompileError, checkValidationError, INFINITE_CONSTANT } from "../core/webgpu/error_checks.ts";
import { checkSpecTable, onBoth, type SpecTableRuns } from "../core/webgpu/spec_checks.ts";
import type { CorpusKernel } from "../core/webgpu/corpus.ts";
import { assertClose } from "../numeric.ts";
import { checkTuning } from "./tuning_checks.ts";
import { checkReduceVariants, checkScanVariants } from "../core/webgpu/variant_checks.ts";
import { checkWasmThreads } from "./wasm_checks.ts";

/**
 * The subgroup reduction variants, which SwiftShader can run and llvmpipe cannot, and the scan's
 * split variants, whose barriers in loops Tint checks for uniformity as Naga does not (Deno's tests
 * run every variant they can; compiling them all here cost 10 s).
 */
async function checkVariants(): Promise<string[]> {
  const reductions = await checkReduceVariants(true, (v) => v.subgroup);
  return [...reductions, ...await checkScanVariants((v) => v.split > 1)];
}

/** The WebGPU device's limits that shape the kernels, and its adapter's name. */
async function limits(): Promise<{ adapter: string; maxStorageBuffers: number; maxBindingSize: number }> {
  const gpu = await requestGpu();
  if (gpu === null) throw new Error("no WebGPU adapter in this browser");
  return { adapter: gpu.description, maxStorageBuffers: gpu.maxStorageBuffers, maxBindingSize: gpu.maxBindingSize };
}

/**
 * Compiles every kernel with the browser's WGSL compiler, and builds the pipelines of those that
 * bind at least `pipelinesFrom` storage buffers (where the binding limit bites). Returns the failures.
 */
async function compileKernels(kernels: readonly CorpusKernel[], pipelinesFrom: number): Promise<string[]> {
  const device = (await requestGpu())!.device;
  const failures: string[] = [];
  await Promise.all(kernels.map(async (k) => {
    device.pushErrorScope("validation");
    const module = device.createShaderModule({ code: k.wgsl, label: k.label });
    const scoped = device.popErrorScope();
    const errors = (await module.getCompilationInfo()).messages.filter((m) => m.type === "error");
    const error = await scoped;
    if (errors.length > 0 || error !== null) {
      const m = errors[0];
      failures.push(`${k.label}: ${m ? `line ${m.lineNum}:${m.linePos}: ${m.message}` : error!.message}`);
      return;
    }
    if ((k.wgsl.match(/var<storage/g)?.length ?? 0) < pipelinesFrom) return;
    try {
      await device.createComputePipelineAsync({
        label: k.label,
        layout: "auto",
        compute: { module, entryPoint: "main" },
      });
    } catch (e) {
      failures.push(`${k.label}: pipeline: ${(e as Error).message}`);
    }
  }));
  return failures;
}

/** README's gradient (and its second derivative) on WebGPU, and an MLP's gradients against the CPU. */
async function checkGradients(): Promise<void> {
  await setBackend("webgpu");
  const f = (x: Tensor) => x.pow(3).sum();
  assertClose(await grad(f)(tensor([1, 2, 3])).data(), [3, 12, 27]);
  assertClose(await grad((x: Tensor) => grad(f)(x).sum())(tensor([1, 2, 3])).data(), [6, 12, 18]);
  const [k1, k2, k3] = [11, 12, 13].map(randomKey);
  const p = { emb: normal(k1, [10, 6]), w: normal(k2, [6, 5], { std: 0.5 }), b: normal(k3, [5]) };
  const ids = tensor([[1, 3, 3, 9], [0, 2, 9, 4]], { dtype: "i32" });
  const targets = tensor([[0, 1, 2, 3], [4, 0, 1, 2]], { dtype: "i32" });
  const loss = (q: typeof p) => ops.crossEntropy(ops.silu(q.emb.gather(ids).matmul(q.w).add(q.b)), targets);
  const { gpu, cpu } = await onBoth(() => [loss(p), ...treeLeaves(grad(loss)(p))]);
  gpu.forEach((g, i) => assertClose(g, cpu[i], { rtol: 1e-3, atol: 1e-5, msg: `output ${i}` }));
}

/** What a file function says in a browser. */
async function fileError(): Promise<string> {
  try {
    await saveSafetensors("model.safetensors", { w: tensor([1]) });
  } catch (e) {
    return (e as Error).message;
  }
  return "saveSafetensors did not fail";
}

const checks = {
  limits,
  compileKernels,
  checkGradients,
  fileError,
  checkSpecTable: (o: SpecTableRuns) => checkSpecTable(o),
  checkCompileError: () => checkCompileError(INFINITE_CONSTANT, "bitcast<f32>(0x7f800000u)"),
  checkValidationError,
  checkTuning,
  checkVariants,
  checkWasmThreads,
};

/** The checks, as the test calls them through `page.evaluate`. */
export type Checks = typeof checks;

(globalThis as { jetfoldChecks?: Checks }).jetfoldChecks = checks;
