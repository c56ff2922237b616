// Threads for the SIMD loops (simd_loop.ts): workers that run the same loops over the heap's
// memory, each call cut by rows into one share per thread. The loops are compiled at run time, so
// each module's bytes are kept in the heap, and a worker compiles a module the first time a share
// of it reaches it (its event loop is busy waiting for work, so the bytes cannot come by message).
// Shares are claimed from a counter (workers.ts's protocol, as the matmul's are): the calling thread takes
// every share no worker has claimed, so a late or dead worker never leaves rows undone, and since
// every output element is computed alone, the bits do not depend on who computed which rows.

import { instantiateFrom } from "./asm.ts";
import { callShares, serveShares, SHARES, spawnWorkers, stopShares } from "./workers.ts";

/**
 * Words of the control block: generation (negative: stop), next share, shares done, shares done by
 * workers, then the call: the module's id, its bytes' offset and length in memory, the rows, the
 * argument count and the arguments (out, then after the row range, the rest).
 */
export const LOOP = {
  ...SHARES,
  id: 4,
  at: 5,
  len: 6,
  rows: 7,
  nargs: 8,
  args: 9,
} as const;

/** The most arguments of a loop (out, vectors per row, regions and tile spans). */
export const LOOP_ARGS = 64;

/** A loop: rows [row0, row1) of an output whose row 0 is at `out`. */
export type RowsFn = (out: number, row0: number, row1: number, ...rest: number[]) => void;

// Runs share i (of `count`) of the current call: its range of the rows (see workers.ts's claimShares
// for why reading the call after the claim is safe).
function loopShare(loop: (id: number) => RowsFn, ctrl: Int32Array, i: number, count: number): void {
  const rows = ctrl[LOOP.rows], r0 = Math.floor((rows * i) / count), r1 = Math.floor((rows * (i + 1)) / count);
  if (r1 > r0) {
    const rest = ctrl.subarray(LOOP.args + 1, LOOP.args + ctrl[LOOP.nargs]);
    loop(ctrl[LOOP.id])(ctrl[LOOP.args], r0, r1, ...rest);
  }
}

/** Workers for the loops of one heap memory; `call` runs one loop across them and this thread. */
export class LoopThreads {
  /** Threads, this one included. */
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

  /** Starts `count - 1` workers over `memory` (see spawnWorkers), or null where there are none. */
  static async start(memory: WebAssembly.Memory, count: number): Promise<LoopThreads | null> {
    if (count < 2 || typeof SharedArrayBuffer === "undefined") return null;
    const ctrl = new SharedArrayBuffer(4 * (LOOP.args + LOOP_ARGS)), words = new Int32Array(ctrl);
    words[LOOP.next] = count; // no call is running: every share counts as claimed
    const setup: LoopSetup = { memory, ctrl, count };
    const workers = await spawnWorkers("loops", count, () => setup, 10_000);
    if (workers === null) return null;
    return new LoopThreads(count, words, () => stopShares(words, workers));
  }

  /** Shares of the calls so far that workers ran. */
  get workerShares(): number {
    return Atomics.load(this.#ctrl, LOOP.byWorkers);
  }

  /**
   * Runs loop `id` (this thread's instance `fn`; its bytes at `at`, `len` in memory) over `rows` rows,
   * with `args` = [out, ...the arguments after the row range].
   */
  call(id: number, fn: RowsFn, [at, len]: readonly [number, number], rows: number, args: readonly number[]): void {
    const c = this.#ctrl;
    if (args.length > LOOP_ARGS) throw new Error(`loop threads: ${args.length} arguments, more than ${LOOP_ARGS}`);
    this.calls++;
    // The call first, then the counters, then the generation: a claim sees this call.
    [c[LOOP.id], c[LOOP.at], c[LOOP.len], c[LOOP.rows], c[LOOP.nargs]] = [id, at, len, rows, args.length];
    c.set(args, LOOP.args);
    callShares(c, this.count, (i) => loopShare(() => fn, c, i, this.count), () => {
      throw new Error("loop threads: stopped");
    });
  }

  /** Stops the workers; later loops run on the calling thread alone. */
  stop(): void {
    this.#stop();
  }
}

/** What a loop worker is sent once. */
export interface LoopSetup {
  readonly memory: WebAssembly.Memory;
  readonly ctrl: SharedArrayBuffer;
  readonly count: number;
}

/**
 * A loop worker's life (worker.ts): runs shares of loops over the shared heap each time the calling
 * thread bumps the generation word, compiling each loop's module from the bytes the calling thread
 * left in memory the first time it meets it (its event loop is blocked, so no message could bring them).
 */
export function serveLoops(setup: LoopSetup, ready: () => void): void {
  const ctrl = new Int32Array(setup.ctrl), loops = new Map<number, RowsFn>();
  const loop = (id: number): RowsFn => {
    let fn = loops.get(id);
    if (fn === undefined) {
      loops.set(id, fn = instantiateFrom(setup.memory, ctrl[LOOP.at], ctrl[LOOP.len]).loop as RowsFn);
    }
    return fn;
  };
  ready();
  serveShares(ctrl, setup.count, (i) => loopShare(loop, ctrl, i, setup.count));
}
