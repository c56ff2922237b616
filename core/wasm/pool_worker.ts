// A kernel pool worker (pool.ts): the module's functions on the shared memory, running shares of a
// call each time the calling thread bumps the generation word.

import { claimPoolShares, POOL } from "./pool.ts";

/** What the calling thread sends once. */
interface PoolSetup {
  readonly bytes: Uint8Array<ArrayBuffer>;
  readonly memory: WebAssembly.Memory;
  readonly ctrl: SharedArrayBuffer;
  readonly names: readonly string[];
  readonly count: number;
}

function serve(setup: PoolSetup, ready: () => void): void {
  const e = new WebAssembly.Instance(new WebAssembly.Module(setup.bytes), { env: { mem: setup.memory } }).exports;
  const fns = setup.names.map((n) => e[n] as (...args: number[]) => void);
  const ctrl = new Int32Array(setup.ctrl);
  ready();
  let gen = 0;
  for (;;) {
    Atomics.wait(ctrl, POOL.gen, gen);
    gen = Atomics.load(ctrl, POOL.gen);
    if (gen < 0) return;
    claimPoolShares(fns, ctrl, setup.count, true);
  }
}

const port = await import("node:worker_threads").then((m) => m.parentPort).catch(() => null);
if (port) port.once("message", (setup: PoolSetup) => serve(setup, () => port.postMessage("ready")));
