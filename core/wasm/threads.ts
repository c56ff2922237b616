// Matmul threads: workers that run the kernel over shared Wasm memory, each on its own contiguous
// range of C's 8-column panels, so results are the same bits whatever the thread count.

import type { Kernel } from "./matmul.ts";

const NODE_WORKERS = "node:worker_threads";

// What is used of node:worker_threads' Worker.
interface NodeWorker {
  postMessage(message: unknown): void;
  once(event: "message" | "error", listener: (value: unknown) => void): void;
  unref(): void;
  terminate(): void;
}

/** Words of the control block: generation, finished workers, then the call's arguments. */
export const CTRL = { gen: 0, done: 1, a: 2, b: 3, c: 4, strips: 5, panels: 6, k: 7 } as const;

/** Computes thread `index`'s share (of `count`) of the call described in `ctrl`. */
export function share(run: Kernel, ctrl: Int32Array, index: number, count: number): void {
  const panels = ctrl[CTRL.panels], k = ctrl[CTRL.k];
  const p0 = Math.floor((panels * index) / count), p1 = Math.floor((panels * (index + 1)) / count);
  if (p1 > p0) {
    run(ctrl[CTRL.a], ctrl[CTRL.b] + p0 * k * 32, ctrl[CTRL.c] + p0 * 32, ctrl[CTRL.strips], p1 - p0, k, panels);
  }
}

/** Workers started for one shared memory; `call` runs one matmul across all of them and this thread. */
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
   * Starts `count - 1` workers (Deno: node:worker_threads, unreferenced so they never keep the process
   * alive), or returns null where workers or shared memory are unavailable.
   */
  static async start(
    bytes: Uint8Array<ArrayBuffer>,
    memory: WebAssembly.Memory,
    count: number,
  ): Promise<MatmulThreads | null> {
    if (count < 2 || typeof SharedArrayBuffer === "undefined") return null;
    // Workers come from node:worker_threads (Deno, Node); a browser would log the failed import of
    // it as an error, so there the matmuls run on one thread.
    // deno-lint-ignore no-explicit-any
    const g = globalThis as any;
    if (g.Deno === undefined && typeof g.process?.versions?.node !== "string") return null;
    try {
      const ctrl = new SharedArrayBuffer(4 * 8);
      // Named through a variable: bundlers for browsers (where workers come from elsewhere) leave it alone.
      const { Worker } = (await import(NODE_WORKERS)) as { Worker: new (url: URL) => NodeWorker };
      const url = new URL("./matmul_worker.ts", import.meta.url);
      const workers = Array.from({ length: count - 1 }, (_, i) => {
        const w = new Worker(url);
        w.postMessage({ bytes, memory, ctrl, index: i + 1, count });
        w.unref();
        return w;
      });
      // Each worker says when its kernel is instantiated; one that cannot start would hang every
      // call, so after 10 s without word the threads are not used.
      let timer: ReturnType<typeof setTimeout> | undefined;
      const ready = Promise.all(
        workers.map((w) => new Promise((ok, fail) => (w.once("message", ok), w.once("error", fail)))),
      );
      const late = new Promise((
        _,
        fail,
      ) => (timer = setTimeout(() => fail(new Error("workers did not start")), 10_000)));
      try {
        await Promise.race([ready, late]);
      } catch (e) {
        for (const w of workers) w.terminate();
        throw e;
      } finally {
        clearTimeout(timer);
      }
      const words = new Int32Array(ctrl);
      return new MatmulThreads(count, words, () => {
        Atomics.store(words, CTRL.gen, -1);
        Atomics.notify(words, CTRL.gen);
        for (const w of workers) w.terminate();
      });
    } catch {
      return null;
    }
  }

  /** One matmul: the workers take their shares while this thread computes the first. */
  call(run: Kernel, args: readonly [number, number, number, number, number, number]): void {
    const c = this.#ctrl;
    this.calls++;
    [c[CTRL.a], c[CTRL.b], c[CTRL.c], c[CTRL.strips], c[CTRL.panels], c[CTRL.k]] = args;
    Atomics.store(c, CTRL.done, 0);
    Atomics.add(c, CTRL.gen, 1);
    Atomics.notify(c, CTRL.gen);
    share(run, c, 0, this.count);
    for (let d = Atomics.load(c, CTRL.done); d < this.count - 1; d = Atomics.load(c, CTRL.done)) {
      Atomics.wait(c, CTRL.done, d);
    }
  }

  /** Stops the workers. */
  stop(): void {
    this.#stop();
  }
}
