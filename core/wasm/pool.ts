// Threads for Wasm kernels other than the matmul (the delta-rule scans): workers instantiate the
// same module over the same shared memory, and a call runs one exported function once per share,
// each share with its own arguments, written by the caller in the control block. Shares are fixed
// by the caller (the thread count of the pool), claimed from a counter (workers.ts's protocol)
// as the matmul's are: the calling thread takes every share no worker has claimed, so a late or dead
// worker never leaves a share undone, and a result does not depend on who computed which share.

import { instantiate } from "./asm.ts";
import { callShares, type NodeWorker, serveShares, SHARES, spawnWorkers, stopShares } from "./workers.ts";

/** Words of the control block: generation (negative: stop), next share, shares done, by workers, function, then arguments. */
export const POOL = { ...SHARES, fn: 4, args: 5 } as const;

/** The most arguments of one share. */
export const POOL_ARGS = 20;

type Fn = (...args: number[]) => void;

// Runs share i of the current call: `fns[fn]` on its arguments (read after the claim, see
// workers.ts's claimShares).
function poolShare(fns: readonly Fn[], ctrl: Int32Array, i: number): void {
  const at = POOL.args + i * POOL_ARGS;
  fns[ctrl[POOL.fn]](...ctrl.subarray(at + 1, at + 1 + ctrl[at]));
}

/** Workers running `names` of one module over one shared memory; `call` splits one call into shares. */
export class KernelPool {
  /** Threads, this one included: the shares of every call. */
  readonly count: number;
  readonly #ctrl: Int32Array;
  readonly #fns: readonly Fn[];
  readonly #workers: readonly NodeWorker[];

  private constructor(count: number, ctrl: Int32Array, fns: readonly Fn[], workers: readonly NodeWorker[]) {
    this.count = count;
    this.#ctrl = ctrl;
    this.#fns = fns;
    this.#workers = workers;
  }

  /** Starts `count - 1` workers (see spawnWorkers), or null where there are none. */
  static async start(
    bytes: Uint8Array<ArrayBuffer>,
    memory: WebAssembly.Memory,
    names: readonly string[],
    count: number,
  ): Promise<KernelPool | null> {
    if (count < 2 || typeof SharedArrayBuffer === "undefined") return null;
    const ctrl = new SharedArrayBuffer(4 * (POOL.args + count * POOL_ARGS)), words = new Int32Array(ctrl);
    words[POOL.next] = count; // no call is running: every share counts as claimed
    const setup: PoolSetup = { bytes, memory, ctrl, names, count };
    const workers = await spawnWorkers("pool", count, () => setup, 10_000);
    if (workers === null) return null;
    const e = instantiate(bytes, memory);
    return new KernelPool(count, words, names.map((n) => e[n] as Fn), workers);
  }

  /** Shares of the calls so far that workers ran. */
  get workerShares(): number {
    return Atomics.load(this.#ctrl, POOL.byWorkers);
  }

  /** Runs function `fn` (an index into the pool's names) once per share, share i on `shares[i]`. */
  call(fn: number, shares: readonly (readonly number[])[]): void {
    const c = this.#ctrl;
    if (shares.length !== this.count) throw new Error(`pool: ${shares.length} shares for ${this.count} threads`);
    // Arguments first, then the counters, then the generation: a claim sees this call's arguments.
    c[POOL.fn] = fn;
    shares.forEach((args, i) => {
      const at = POOL.args + i * POOL_ARGS;
      c[at] = args.length;
      c.set(args, at + 1);
    });
    callShares(c, this.count, (i) => poolShare(this.#fns, c, i), () => {
      throw new Error("pool: closed");
    });
  }

  /** Stops the workers; the pool takes no more calls. */
  close(): void {
    stopShares(this.#ctrl, this.#workers);
  }
}

/** What a pool worker is sent once. */
export interface PoolSetup {
  readonly bytes: Uint8Array<ArrayBuffer>;
  readonly memory: WebAssembly.Memory;
  readonly ctrl: SharedArrayBuffer;
  readonly names: readonly string[];
  readonly count: number;
}

/**
 * A pool worker's life (worker.ts): the module's functions on the shared memory, running shares of
 * a call each time the calling thread bumps the generation word, until it turns negative.
 */
export function servePool(setup: PoolSetup, ready: () => void): void {
  const e = instantiate(setup.bytes, setup.memory);
  const fns = setup.names.map((n) => e[n] as Fn);
  const ctrl = new Int32Array(setup.ctrl);
  ready();
  serveShares(ctrl, setup.count, (i) => poolShare(fns, ctrl, i));
}
