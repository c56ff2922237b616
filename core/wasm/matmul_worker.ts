// A matmul worker: the same kernel on the same shared memory, claiming shares of C's panels each
// time the main thread bumps the generation word of the control block.

import type { Kernel } from "./matmul_kernel.ts";
import { claimShares, CTRL, type StartFaults } from "./threads.ts";

/** What the main thread sends once. */
export interface WorkerSetup extends StartFaults {
  readonly bytes: Uint8Array<ArrayBuffer>;
  readonly memory: WebAssembly.Memory;
  readonly ctrl: SharedArrayBuffer;
  readonly index: number;
  readonly count: number;
}

/** Runs shares of matmuls until the generation word turns negative; `ready` is called once it can. */
export function serve(setup: WorkerSetup, ready: () => void): void {
  if (setup.fail) throw new Error(`matmul worker ${setup.index}: told to fail`);
  const module = new WebAssembly.Module(setup.bytes);
  const run = new WebAssembly.Instance(module, { env: { mem: setup.memory } }).exports.matmul as Kernel;
  const ctrl = new Int32Array(setup.ctrl);
  ready();
  let gen = 0;
  for (;;) {
    Atomics.wait(ctrl, CTRL.gen, gen);
    gen = Atomics.load(ctrl, CTRL.gen);
    if (gen < 0) return;
    claimShares(run, ctrl, setup.count, true);
  }
}

// Waits `ms` milliseconds (a test's slow start), then runs `fn`.
function later(ms: number | undefined, fn: () => void): void {
  if (ms === undefined || ms <= 0) fn();
  else setTimeout(fn, ms);
}

// Under node:worker_threads (Deno) the setup arrives on parentPort; in a browser, on self.
const port = await import("node:worker_threads").then((m) => m.parentPort).catch(() => null);
if (port) {
  port.once("message", (setup: WorkerSetup) => {
    later(setup.startDelayMs, () => serve(setup, () => port.postMessage("ready")));
  });
} else {
  const self = globalThis as unknown as Worker;
  self.onmessage = (e: MessageEvent<WorkerSetup>) => {
    later(e.data.startDelayMs, () => serve(e.data, () => self.postMessage("ready")));
  };
}
