// The Wasm backend's kernel workers, for its three kinds of threads (the matmul's, threads.ts; the
// SIMD loops', loop_threads.ts; the kernel pool's, pool.ts): starting them (node:worker_threads
// under Deno and Node, module Web Workers in a cross-origin isolated page) and waiting for them.

const NODE_WORKERS = "node:worker_threads";

/** The browser bundle's worker script, written beside the bundle by tools/build.ts. */
export const WEB_WORKER = "jetfold_worker.js";

/** What is used of a worker (node:worker_threads' Worker, or a Web Worker made to look like one). */
export interface NodeWorker {
  postMessage(message: unknown): void;
  once(event: "message" | "error", listener: (value: unknown) => void): void;
  on(event: "error", listener: (value: unknown) => void): void;
  unref(): void;
  terminate(): void;
}

/** The kinds of kernel workers (worker.ts serves each). */
export type WorkerKind = "matmul" | "loops" | "pool";

/** A module Web Worker of the bundle's worker script, behind the node:worker_threads surface used here. */
function webWorker(url: URL): NodeWorker {
  const w = new Worker(url, { type: "module" });
  return {
    postMessage: (m) => w.postMessage(m),
    once: (event, listener) =>
      w.addEventListener(event, (e) => listener(event === "message" ? (e as MessageEvent).data : e), { once: true }),
    on: (event, listener) => w.addEventListener(event, listener),
    unref() {}, // a page's workers never keep anything alive
    terminate: () => w.terminate(),
  };
}

/**
 * Starts `count - 1` workers of kind `kind` (unreferenced, so they never keep the process alive),
 * sending worker i `{ kind, ...message(i) }`, and waits up to `timeoutMs` for each to answer once
 * (ready) or fail; late ones keep starting. Under Deno and Node they run core/wasm/worker.ts; in a
 * page, the bundle's worker script beside it (a page that is not cross-origin isolated has no
 * shared memory, so no workers). Null where there are no workers or no shared memory.
 */
export async function spawnWorkers(
  kind: WorkerKind,
  count: number,
  message: (index: number) => object,
  timeoutMs: number,
): Promise<NodeWorker[] | null> {
  if (count < 2 || typeof SharedArrayBuffer === "undefined") return null;
  // deno-lint-ignore no-explicit-any
  const g = globalThis as any;
  let make: () => NodeWorker;
  if (g.Deno !== undefined || typeof g.process?.versions?.node === "string") {
    let Worker: new (url: URL) => NodeWorker;
    try {
      // Named through a variable: bundlers for browsers (where workers are Web Workers) leave it alone.
      ({ Worker } = (await import(NODE_WORKERS)) as { Worker: new (url: URL) => NodeWorker });
    } catch {
      return null;
    }
    const url = new URL("./worker.ts", import.meta.url);
    make = () => new Worker(url);
  } else if (typeof g.Worker === "function") {
    // In the bundle, import.meta.url is the bundle's own URL.
    const url = new URL(`./${WEB_WORKER}`, import.meta.url);
    make = () => webWorker(url);
  } else {
    return null;
  }
  const workers: NodeWorker[] = [];
  const ready: Promise<unknown>[] = [];
  for (let i = 1; i < count; i++) {
    try {
      const w = make();
      // A worker that fails only stops helping; the listener keeps its error from being thrown here.
      ready.push(new Promise((ok) => (w.once("message", ok), w.on("error", ok))));
      w.postMessage({ kind, ...message(i) });
      w.unref();
      workers.push(w);
    } catch {
      break;
    }
  }
  if (workers.length === 0) return null;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise((ok) => (timer = setTimeout(ok, timeoutMs)));
  await Promise.race([Promise.all(ready), late]);
  clearTimeout(timer);
  return workers;
}

// Whether this thread may block in Atomics.wait: a page's main thread may not (it throws before it
// compares, so a wait for a value the word does not hold tells without blocking).
const CAN_BLOCK = (() => {
  try {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 1, 0);
    return true;
  } catch {
    return false;
  }
})();

/**
 * Returns once `ctrl[index]` reaches `target` (the calling thread waiting for the shares its workers
 * claimed): blocked in Atomics.wait where this thread may block, else spinning on the word, as a
 * page's main thread must (the wait is for shares already being computed, so it is short).
 */
export function waitUntil(ctrl: Int32Array, index: number, target: number): void {
  for (let d = Atomics.load(ctrl, index); d < target; d = Atomics.load(ctrl, index)) {
    if (CAN_BLOCK) Atomics.wait(ctrl, index, d);
  }
}

/**
 * The words every kernel threads' control block starts with (threads.ts, loop_threads.ts, pool.ts):
 * the generation (bumped for each call; negative: stopped), the next share to claim, the shares
 * done, and the shares workers did (a counter for tests). A call's arguments follow them.
 */
export const SHARES = { gen: 0, next: 1, done: 2, byWorkers: 3 } as const;

/**
 * Claims shares of the current call and runs `share(i)` on each until none is left; returns how
 * many it ran. A claim can only succeed once the caller has written the call's arguments and reset
 * the counter, and `share` reads them after its claim, so a thread that woke for an older
 * generation either gets nothing or a share of the current call with its arguments.
 */
export function claimShares(ctrl: Int32Array, count: number, worker: boolean, share: (i: number) => void): number {
  let n = 0;
  for (let i = Atomics.add(ctrl, SHARES.next, 1); i < count; i = Atomics.add(ctrl, SHARES.next, 1)) {
    share(i);
    n++;
    if (worker) Atomics.add(ctrl, SHARES.byWorkers, 1);
    Atomics.add(ctrl, SHARES.done, 1);
    Atomics.notify(ctrl, SHARES.done);
  }
  return n;
}

/**
 * The calling thread's side of one call of `count` shares, its arguments already written: resets
 * the counters, wakes the workers (a new generation), claims what no worker has, and returns once
 * the workers' shares are done. Where the workers were stopped it runs every share itself, after
 * calling `stopped` (which may throw instead).
 */
export function callShares(ctrl: Int32Array, count: number, share: (i: number) => void, stopped = () => {}): void {
  Atomics.store(ctrl, SHARES.done, 0);
  Atomics.store(ctrl, SHARES.next, 0);
  const gen = Atomics.load(ctrl, SHARES.gen);
  if (gen < 0) stopped();
  else {
    Atomics.store(ctrl, SHARES.gen, gen >= 2 ** 30 ? 1 : gen + 1);
    Atomics.notify(ctrl, SHARES.gen);
  }
  claimShares(ctrl, count, false, share);
  // Only shares that a worker has claimed (and so is computing) are waited for.
  waitUntil(ctrl, SHARES.done, count);
}

/** A worker's loop: sleeps until the generation changes, then claims shares; returns once stopped. */
export function serveShares(ctrl: Int32Array, count: number, share: (i: number) => void): void {
  let gen = 0;
  for (;;) {
    Atomics.wait(ctrl, SHARES.gen, gen);
    gen = Atomics.load(ctrl, SHARES.gen);
    if (gen < 0) return;
    claimShares(ctrl, count, true, share);
  }
}

/** Stops the workers serving `ctrl` (they return from serveShares) and terminates them. */
export function stopShares(ctrl: Int32Array, workers: readonly NodeWorker[]): void {
  Atomics.store(ctrl, SHARES.gen, -1);
  Atomics.notify(ctrl, SHARES.gen);
  for (const w of workers) w.terminate();
}
