// The Wasm backend's kernel worker, one script for its three kinds of threads: under Deno and Node
// it runs as a node:worker_threads worker; tools/build.ts bundles it as the browser's
// jetfold_worker.js, a module Web Worker. The first message says which kind it is and what to serve.

import { type MatmulSetup, serveMatmul } from "./threads.ts";
import { type LoopSetup, serveLoops } from "./loop_threads.ts";
import { type PoolSetup, servePool } from "./pool.ts";
import type { WorkerKind } from "./workers.ts";

type Setup =
  | ({ readonly kind: "matmul" } & MatmulSetup)
  | ({ readonly kind: "loops" } & LoopSetup)
  | ({ readonly kind: "pool" } & PoolSetup);

function serve(setup: Setup, ready: () => void): void {
  const kind: WorkerKind = setup.kind;
  if (kind === "matmul") {
    const s = setup as MatmulSetup;
    // A test's slow start: wait, then serve.
    if ((s.startDelayMs ?? 0) > 0) setTimeout(() => serveMatmul(s, ready), s.startDelayMs);
    else serveMatmul(s, ready);
  } else if (kind === "loops") serveLoops(setup as LoopSetup, ready);
  else servePool(setup as PoolSetup, ready);
}

const NODE_WORKERS = "node:worker_threads"; // through a variable: a browser bundle leaves it alone
// deno-lint-ignore no-explicit-any
const g = globalThis as any;
const node = g.Deno !== undefined || typeof g.process?.versions?.node === "string";
const port = node ? await import(NODE_WORKERS).then((m) => m.parentPort).catch(() => null) : null;
if (port) {
  port.once("message", (setup: Setup) => serve(setup, () => port.postMessage("ready")));
} else {
  const self = globalThis as unknown as Worker;
  self.addEventListener("message", (e: MessageEvent<Setup>) => serve(e.data, () => self.postMessage("ready")), {
    once: true,
  });
}
