// A SIMD loop worker (loop_threads.ts): runs shares of loops over the shared heap each time the
// calling thread bumps the generation word, compiling each loop's module from the bytes the
// calling thread left in memory the first time it meets it.

import { claimLoopShares, LOOP, type RowsFn } from "./loop_threads.ts";

/** What the calling thread sends once. */
interface LoopSetup {
  readonly memory: WebAssembly.Memory;
  readonly ctrl: SharedArrayBuffer;
  readonly count: number;
}

function serve(setup: LoopSetup, ready: () => void): void {
  const ctrl = new Int32Array(setup.ctrl), loops = new Map<number, RowsFn>();
  const loop = (id: number): RowsFn => {
    let fn = loops.get(id);
    if (fn === undefined) {
      // A copy: a module is not compiled from shared memory.
      const bytes = new Uint8Array(setup.memory.buffer, ctrl[LOOP.at], ctrl[LOOP.len]).slice();
      const e = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { mem: setup.memory } }).exports;
      loops.set(id, fn = e.loop as RowsFn);
    }
    return fn;
  };
  ready();
  let gen = 0;
  for (;;) {
    Atomics.wait(ctrl, LOOP.gen, gen);
    gen = Atomics.load(ctrl, LOOP.gen);
    if (gen < 0) return;
    claimLoopShares(loop, ctrl, setup.count, true);
  }
}

const port = await import("node:worker_threads").then((m) => m.parentPort).catch(() => null);
if (port) port.once("message", (setup: LoopSetup) => serve(setup, () => port.postMessage("ready")));
