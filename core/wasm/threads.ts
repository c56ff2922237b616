// Matmul threads: workers that run the kernel over shared Wasm memory. A call is cut into one
// share per thread (a fixed contiguous range of C's 8-column panels, so results are the same bits
// whatever the thread count or whoever computes a share); the threads claim shares from a counter,
// and the calling thread takes every share no worker has claimed, so a worker that is late, slow to
// start or dead can delay nothing but a share it already holds, and never leaves C unwritten.

import type { Kernel } from "./matmul_kernel.ts";
import { spawnWorkers, waitUntil } from "./workers.ts";

/**
 * Words of the control block: generation (negative: stop), next share to claim, shares finished,
 * shares computed by workers (a counter for tests), then the call's arguments.
 */
export const CTRL = { gen: 0, next: 1, done: 2, byWorkers: 3, a: 4, b: 5, c: 6, strips: 7, panels: 8, k: 9 } as const;
const WORDS = 10;

/** Computes share `index` (of `count`) of the call described in `ctrl`. */
export function share(run: Kernel, ctrl: Int32Array, index: number, count: number): void {
  const panels = ctrl[CTRL.panels], k = ctrl[CTRL.k];
  const p0 = Math.floor((panels * index) / count), p1 = Math.floor((panels * (index + 1)) / count);
  if (p1 > p0) {
    run(ctrl[CTRL.a], ctrl[CTRL.b] + p0 * k * 32, ctrl[CTRL.c] + p0 * 32, ctrl[CTRL.strips], p1 - p0, k, panels);
  }
}

/**
 * Claims and computes shares of the current call until none is left; returns how many it computed.
 * The arguments are read after a claim, and a claim can only succeed once the caller has written
 * the current call's arguments and reset the counter, so a thread that woke for an older
 * generation either gets nothing or a share of the current call with its arguments.
 */
export function claimShares(run: Kernel, ctrl: Int32Array, count: number, worker: boolean): number {
  let n = 0;
  for (let i = Atomics.add(ctrl, CTRL.next, 1); i < count; i = Atomics.add(ctrl, CTRL.next, 1)) {
    share(run, ctrl, i, count);
    n++;
    if (worker) Atomics.add(ctrl, CTRL.byWorkers, 1);
    Atomics.add(ctrl, CTRL.done, 1);
    Atomics.notify(ctrl, CTRL.done);
  }
  return n;
}

/** @internal Ways to start workers badly, for tests of the late-worker path. */
export interface StartFaults {
  /** Milliseconds each worker waits before it instantiates its kernel. */
  readonly startDelayMs?: number;
  /** Workers throw instead of serving. */
  readonly fail?: boolean;
  /** How long start waits for the workers to say they are ready (default 10 s). */
  readonly startTimeoutMs?: number;
}

/** Workers started for one shared memory; `call` runs one matmul across them and this thread. */
export class MatmulThreads {
  readonly count: number;
  /** Calls run across the threads so far. */
  calls = 0;
  readonly #ctrl: Int32Array;
  readonly #stop: () => void;

  private constructor(count: number, ctrl: Int32Array, stop: () => void) {
    this.count = count;
    this.#ctrl = ctrl;
    this.#stop = stop;
  }

  /**
   * Starts `count - 1` workers (see spawnWorkers), or returns null where workers or shared memory
   * are unavailable. It waits up to 10 s for
   * them to be ready; workers that are not ready by then join whenever they are (until then this
   * thread computes their shares).
   */
  static async start(
    bytes: Uint8Array<ArrayBuffer>,
    memory: WebAssembly.Memory,
    count: number,
    faults: StartFaults = {},
  ): Promise<MatmulThreads | null> {
    if (count < 2 || typeof SharedArrayBuffer === "undefined") return null;
    const ctrl = new SharedArrayBuffer(4 * WORDS), words = new Int32Array(ctrl);
    // No call is running: every share counts as claimed until the first call resets the counter.
    words[CTRL.next] = count;
    const message = (index: number): MatmulSetup => ({ bytes, memory, ctrl, index, count, ...faults });
    const workers = await spawnWorkers("matmul", count, message, faults.startTimeoutMs ?? 10_000);
    if (workers === null) return null;
    return new MatmulThreads(count, words, () => {
      Atomics.store(words, CTRL.gen, -1);
      Atomics.notify(words, CTRL.gen);
      for (const w of workers) w.terminate();
    });
  }

  /** Shares of the calls so far that workers computed (the rest ran on this thread). */
  get workerShares(): number {
    return Atomics.load(this.#ctrl, CTRL.byWorkers);
  }

  /** One matmul: this thread and the workers claim its shares; returns once all are computed. */
  call(run: Kernel, args: readonly [number, number, number, number, number, number]): void {
    const c = this.#ctrl;
    this.calls++;
    // Arguments first, then the counters, then the generation: a claim sees this call's arguments.
    [c[CTRL.a], c[CTRL.b], c[CTRL.c], c[CTRL.strips], c[CTRL.panels], c[CTRL.k]] = args;
    Atomics.store(c, CTRL.done, 0);
    Atomics.store(c, CTRL.next, 0);
    const gen = Atomics.load(c, CTRL.gen);
    if (gen >= 0) {
      Atomics.store(c, CTRL.gen, gen >= 2 ** 30 ? 1 : gen + 1);
      Atomics.notify(c, CTRL.gen);
    }
    claimShares(run, c, this.count, false);
    // Only shares that a worker has claimed (and so is computing) are waited for.
    waitUntil(c, CTRL.done, this.count);
  }

  /** Stops the workers (later calls run on this thread alone). */
  stop(): void {
    this.#stop();
  }
}

/** What a matmul worker is sent once. */
export interface MatmulSetup extends StartFaults {
  readonly bytes: Uint8Array<ArrayBuffer>;
  readonly memory: WebAssembly.Memory;
  readonly ctrl: SharedArrayBuffer;
  readonly index: number;
  readonly count: number;
}

/**
 * A matmul worker's life (worker.ts): the same kernel on the same shared memory, claiming shares
 * each time the calling thread bumps the generation word, until it turns negative; `ready` is
 * called once it can serve.
 */
export function serveMatmul(setup: MatmulSetup, ready: () => void): void {
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
