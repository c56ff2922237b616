// The Wasm backend: the host interpreter with WebAssembly SIMD generated at run time for what
// dominates training: matmuls (operands read through views, packed in Wasm), fused elementwise
// loops (Wasm SIMD where their reads are simple, generated JavaScript otherwise), exp and tanh;
// the gated delta-rule scan and its reverse scan in Wasm SIMD (which can be split over threads,
// off by default); cumsum (f32, i32), gather and scatter-add in Wasm; sums, maxima, softmax and
// logsumexp in Wasm SIMD when large; the reference rules for the rest. Plans are cached by graph
// structure; values live in the interpreter's arena (core/cpu/arena.ts).

import type { Backend } from "../backend.ts";
import { Interpreter } from "../cpu/mod.ts";
import { sizeOf } from "../shape.ts";
import { fusedPlanner } from "./fuse.ts";
import { planEpilogue } from "./epilogue.ts";
import { WasmMatmul } from "./matmul.ts";
import type { StartFaults } from "./threads.ts";
import { reductionKernels } from "./reduce.ts";
import { WasmColumnSums } from "./reduce_simd.ts";
import { WasmRowSums } from "./reduce_rows.ts";
import { WasmMax } from "./reduce_max.ts";
import { softmaxKernels } from "./softmax.ts";
import { WasmSoftmax } from "./softmax_simd.ts";
import { VMath } from "./vmath.ts";
import { scanKernels, WasmScan } from "./scan.ts";
import { cumsumKernel } from "./cumsum.ts";
import { padRuns } from "./pad.ts";
import { indexKernels } from "./index.ts";
import { SimdLoops } from "./simd_loop.ts";
import { WasmHeap } from "./heap.ts";
import type { Node } from "../graph.ts";
import type { CpuArray, PrimDef } from "../prim.ts";

/** Elements of an exp or tanh from which it runs as a Wasm SIMD kernel rather than fused into a loop. */
export const VMATH_MIN = 4096;
import { PRIMS } from "../prims/mod.ts";

let backend: Interpreter | null = null;
let chosen: Interpreter | null = null;

/**
 * The Wasm backend (f32 only), its large matmuls on `navigator.hardwareConcurrency` threads where
 * shared memory and workers exist; null where the runtime has no WebAssembly SIMD. One instance is
 * shared by every caller (see `createWasm` for one of its own).
 */
export async function openWasm(): Promise<Backend | null> {
  if (chosen !== null) return chosen;
  if (backend !== null) return backend;
  const b = await createWasm();
  backend ??= b;
  return backend;
}

/** Options of `createWasm`. */
export interface WasmOptions {
  /** Threads of the matmuls and scans (default `navigator.hardwareConcurrency`); 1: this thread only. */
  readonly threads?: number;
  /** The least multiply-adds of one product that is split across threads (default THREADED_WORK). */
  readonly threadedWork?: number;
  /** The least output elements of a SIMD loop split across threads (default LOOP_THREADED_WORK). */
  readonly loopThreadedWork?: number;
  /** The least work (B H T K V) of a delta-rule scan split across threads (default SCAN_THREADED_WORK). */
  readonly scanThreadedWork?: number;
  /** Values in a pool of recycled arrays (default true); false allocates each anew. */
  readonly arena?: boolean;
  /**
   * Values and kernels' scratch in one shared Wasm memory, read and written in place (default true
   * where shared memory exists and the arena is on); false keeps values in host arrays, copied in
   * and out of the kernels' memories.
   */
  readonly heap?: boolean;
  /** @internal Slow or failing matmul workers, for tests of that path. */
  readonly faults?: StartFaults;
}

/**
 * @internal A Wasm backend of its own, not the shared one (for tests of thread counts): null where
 * the runtime has no WebAssembly SIMD. `matmul` tells how many threads it really got.
 */
export async function createWasm(
  opts: WasmOptions = {},
): Promise<
  | (Interpreter & {
    readonly matmul: WasmMatmul;
    readonly scan: WasmScan;
    readonly heap: WasmHeap | null;
    readonly loops: SimdLoops;
  })
  | null
> {
  let mm: WasmMatmul, vm: VMath, scan: WasmScan, heap: WasmHeap | null, loops: SimdLoops;
  try {
    const threads = opts.threads ?? globalThis.navigator?.hardwareConcurrency ?? 1;
    heap = opts.heap !== false && opts.arena !== false ? WasmHeap.create() : null;
    mm = await WasmMatmul.create({ threads, threadedWork: opts.threadedWork, faults: opts.faults, heap });
    vm = VMath.create();
    scan = await WasmScan.create({ threads, threadedWork: opts.scanThreadedWork, heap });
    loops = new SimdLoops(heap);
    if (threads > 1) await loops.startThreads(threads, opts.loopThreadedWork);
  } catch {
    return null; // no WebAssembly, or no SIMD
  }
  const b = new Interpreter("f32", {
    name: "wasm",
    plan: fusedPlanner({
      simd: loops,
      // Large exps and tanhs in loops that stay JavaScript (rows not a multiple of four lanes) are
      // worth a pass of their own: there they cost 5-20 ns an element, the Wasm kernel 1-4 ns.
      ownKernel: (n: Node) =>
        (n.op === "exp" || n.op === "tanh") && n.size >= VMATH_MIN && n.shape[n.ndim - 1] % 4 !== 0,
      matmul(a, la, b, lb, { batch, M, K, N }, bInput, o, addend, epi) {
        const epilogue = epi === undefined ? undefined : { key: epi.plan.key, spec: epi.plan.spec, args: epi.args };
        // A B operand that is an input of the realization (a weight) keeps its packed copy.
        return mm.run(a, b, o, [sizeOf(batch), M, K, N], { a: la, b: lb, batch }, {
          keepPackedB: bInput,
          addend,
          epilogue,
        });
      },
      epilogue: (root, fused, product) => planEpilogue(heap, root, fused, product),
    }),
    arena: opts.arena ?? true,
    heap,
    threads: mm.threads,
    capabilities: { maxKernelBuffers: Infinity, maxLoop: Infinity, maxBufferBytes: 2 ** 31, precisions: ["f32"] },
    kernels: {
      ...reductionKernels({ sum: PRIMS.sum.cpu, max: PRIMS.max.cpu }, {
        columns: new WasmColumnSums(),
        rows: new WasmRowSums(),
        max: new WasmMax(),
      }),
      ...softmaxKernels(new WasmSoftmax(loops, heap)),
      exp: unaryKernel("exp", vm),
      tanh: unaryKernel("tanh", vm),
      ...scanKernels(scan),
      cumsum: cumsumKernel(PRIMS.cumsum.cpu),
      pad: padRuns,
      ...indexKernels({ gather: PRIMS.gather.cpu, scatterAdd: PRIMS.scatterAdd.cpu }),
    },
  });
  return Object.assign(b, { matmul: mm, scan, heap, loops });
}

/**
 * @internal Makes `openWasm` (and so `setBackend("wasm")`) return `b` instead of the shared
 * backend, until called with null; call setBackend again after each switch.
 */
export function useWasm(b: Interpreter | null): void {
  chosen = b;
}

// An exp or tanh node on the Wasm SIMD kernel (the planner sends only large f32 ones here).
function unaryKernel(op: "exp" | "tanh", vm: VMath): PrimDef<"exp">["cpu"] {
  return ([a], _src, out, _p, ctx) => {
    const o = ctx.alloc("f32", sizeOf(out.shape)) as Float32Array;
    vm.run(op, a, o);
    return o as CpuArray;
  };
}
