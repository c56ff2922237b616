// The Wasm backend's threads in a page: in a cross-origin isolated page the bundle starts its
// workers from jetfold_worker.js beside it, the page's main thread (which may not block in
// Atomics.wait) spins for the shares its workers hold, and the bits equal one thread's.

import { createWasm } from "../../core/wasm/mod.ts";
import { normal, randomKey } from "../../mod.ts";
import { on, train } from "../core/wasm/backend_helpers.ts";

/** What checkWasmThreads saw. */
export interface WasmThreads {
  readonly threads: number;
  readonly split: { readonly matmuls: number; readonly loops: number; readonly scans: number };
  readonly workerShares: { readonly matmuls: number; readonly loops: number; readonly scans: number };
}

/**
 * Three training steps on one thread and on `navigator.hardwareConcurrency` threads (every product,
 * loop and scan split, however small) give the same losses and parameters, bit for bit; then large
 * products and loops run until the workers have computed shares of both (they wake within
 * microseconds, so the calling thread cannot take every share of those). Throws on a difference.
 */
export async function checkWasmThreads(): Promise<WasmThreads> {
  const n = navigator.hardwareConcurrency;
  const one = (await createWasm({ threads: 1 }))!;
  const many = (await createWasm({ threads: n, threadedWork: 1, loopThreadedWork: 1, scanThreadedWork: 0 }))!;
  try {
    if (many.threads < 2) throw new Error(`asked for ${n} threads, got ${many.threads}`);
    const a = await on(one, () => train(3));
    const b = await on(many, () => train(3));
    const bits = (r: typeof a) => JSON.stringify([r.losses, r.params.map((p) => Array.from(p))]);
    if (bits(a) !== bits(b)) throw new Error(`${n} threads' training differs from one thread's`);
    await on(many, async () => {
      const x = normal(randomKey(1), [256, 256]);
      for (let i = 0; i < 50 && (many.matmul.workerShares === 0 || many.loops.threaded.workerShares === 0); i++) {
        const y = x.matmul(x).add(x).mul(x);
        await y.data();
        y.dispose();
      }
      x.dispose();
    });
    return {
      threads: many.threads,
      split: { matmuls: many.matmul.threadedCalls, loops: many.loops.threaded.calls, scans: many.scan.threadedCalls },
      workerShares: {
        matmuls: many.matmul.workerShares,
        loops: many.loops.threaded.workerShares,
        scans: many.scan.workerShares,
      },
    };
  } finally {
    for (const b of [one, many]) {
      b.matmul.close();
      b.scan.close();
      b.loops.close();
    }
  }
}
