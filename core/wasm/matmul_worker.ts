// A matmul worker: the same kernel on the same shared memory, computing its share of C's panels
// each time the main thread bumps the generation word of the control block.

import type { Kernel } from "./matmul.ts";
import { CTRL, share } from "./threads.ts";

/** What the main thread sends once. */
export interface WorkerSetup {
  readonly bytes: Uint8Array<ArrayBuffer>;
  readonly memory: WebAssembly.Memory;
  readonly ctrl: SharedArrayBuffer;
  readonly index: number;
  readonly count: number;
}

/** Runs shares of matmuls until the generation word turns negative; `ready` is called once it can. */
export function serve(setup: WorkerSetup, ready: () => void): void {
  const module = new WebAssembly.Module(setup.bytes);
  const run = new WebAssembly.Instance(module, { env: { mem: setup.memory } }).exports.matmul as Kernel;
  const ctrl = new Int32Array(setup.ctrl);
  ready();
  let gen = 0;
  for (;;) {
    Atomics.wait(ctrl, CTRL.gen, gen);
    gen = Atomics.load(ctrl, CTRL.gen);
    if (gen < 0) return;
    share(run, ctrl, setup.index, setup.count);
    Atomics.add(ctrl, CTRL.done, 1);
    Atomics.notify(ctrl, CTRL.done);
  }
}

// Under node:worker_threads (Deno) the setup arrives on parentPort; in a browser, on self.
const port = await import("node:worker_threads").then((m) => m.parentPort).catch(() => null);
if (port) port.once("message", (setup: WorkerSetup) => serve(setup, () => port.postMessage("ready")));
else {
  const self = globalThis as unknown as Worker;
  self.onmessage = (e: MessageEvent<WorkerSetup>) => serve(e.data, () => self.postMessage("ready"));
}
