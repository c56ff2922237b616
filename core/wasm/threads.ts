// Matmul threads: workers that run the kernel over shared Wasm memory. A call is cut into one
// share per thread: a fixed contiguous range of C's 8-column panels, of A's 4-row strips, or of a
// batch's products, each computed whole by the thread that claims it (packing its own operand
// where the split says so), so results are the same bits whatever the thread count or whoever
// computes a share. Shares are claimed as workers.ts's protocol says: the calling thread takes
// every share no worker has claimed, so a worker that is late, slow to start or dead can delay
// nothing but a share it already holds, and never leaves C unwritten.

import { instantiateFrom } from "./asm.ts";
import { instantiateKernel, type Kernel, type KernelKit } from "./matmul_kernel.ts";
import { EPILOGUE_ARGS, PLAIN, type Store, storeTiles } from "./epilogue_kernel.ts";
import { callShares, serveShares, SHARES, spawnWorkers, stopShares } from "./workers.ts";

/**
 * Words of the control block: generation (negative: stop), next share to claim, shares finished,
 * shares computed by workers (a counter for tests), then the call's arguments: packed A, packed B,
 * C, strips, panels, K (a panel split, `split` 0); for a batch split (`split` 1), the byte offset of
 * its table of each product's A and B addresses, the products, how A and B are packed (0: rows and
 * panels, 1: from the transpose), M, N, the threads' packing space and its bytes a thread; for a
 * strip split (`split` 2), A as it lies, how it is packed and where packed A goes (`space`); for
 * a panel split that packs B's panels too (`split` 3), B as it lies (`table`) and how; the floats
 * between the rows the packers read of A (`aWidth`) and of B (`bWidth`); and
 * for every split how C is stored (see Store): the addend's bytes from C (`d`, 0 for none: see the
 * kernel), C's first row, and an epilogue's kernel (its id, 0 for none, its bytes' offset and length
 * in memory) with its arguments.
 */
export const CTRL = {
  ...SHARES,
  a: 4,
  b: 5,
  c: 6,
  strips: 7,
  panels: 8,
  k: 9,
  split: 10,
  table: 11,
  z: 12,
  aFrom: 13,
  bFrom: 14,
  m: 15,
  n: 16,
  space: 17,
  spaceEach: 18,
  d: 19,
  row0: 20,
  kernel: 21,
  kAt: 22,
  kLen: 23,
  nx: 24,
  aWidth: 25,
  bWidth: 26,
  x: 27,
} as const;

const WORDS = CTRL.x + EPILOGUE_ARGS;

// The call's store as ctrl describes it, its epilogue's function from `kernel`.
function storeOf(ctrl: Int32Array, kernel: (id: number) => Kernel): Store {
  const id = ctrl[CTRL.kernel], args = Array.from(ctrl.subarray(CTRL.x, CTRL.x + ctrl[CTRL.nx]));
  const epilogue = id === 0 ? null : { id, fn: kernel(id), bytes: [ctrl[CTRL.kAt], ctrl[CTRL.kLen]] as const };
  return { d: ctrl[CTRL.d], epilogue, args, row0: ctrl[CTRL.row0] };
}

/** How a call is cut into shares (the `split` word): see MatmulThreads' calls. */
const SPLIT = { panels: 0, batch: 1, strips: 2, panelsPackingB: 3 } as const;

/**
 * A batch split's arguments (see CTRL): products `z`, each M x K by K x N, C row-major at `c`; A's
 * and B's rows (or their transposes', `aFrom` / `bFrom` 1) `aWidth` and `bWidth` floats apart.
 */
export interface BatchCall {
  readonly table: number;
  readonly z: number;
  readonly aFrom: 0 | 1;
  readonly bFrom: 0 | 1;
  readonly aWidth: number;
  readonly bWidth: number;
  readonly m: number;
  readonly k: number;
  readonly n: number;
  readonly c: number;
  readonly space: number;
  readonly spaceEach: number;
}

/**
 * Computes share `index` (of `count`) of the call described in `ctrl`, an epilogue's kernel found by
 * `kernel(id)`.
 */
export function share(
  kit: KernelKit,
  ctrl: Int32Array,
  index: number,
  count: number,
  kernel: (id: number) => Kernel,
): void {
  const k = ctrl[CTRL.k];
  const split = ctrl[CTRL.split], tiles = storeTiles(kit, storeOf(ctrl, kernel), k);
  if (split === SPLIT.strips) {
    // A range of A's strips: packed by this thread (from A as it lies at `a`), then multiplied by
    // every panel of the packed B.
    const strips = ctrl[CTRL.strips], panels = ctrl[CTRL.panels], W = ctrl[CTRL.aWidth];
    const s0 = Math.floor((strips * index) / count), s1 = Math.floor((strips * (index + 1)) / count);
    if (s1 <= s0) return;
    const packed = ctrl[CTRL.space] + s0 * k * 16;
    if (ctrl[CTRL.aFrom] === 0) kit.pack.rows(ctrl[CTRL.a] + s0 * 16 * W, packed, k, s1 - s0, W);
    else kit.pack.cols(ctrl[CTRL.a] + s0 * 16, packed, k, s1 - s0, W);
    tiles(packed, ctrl[CTRL.b], ctrl[CTRL.c] + s0 * 128 * panels, s1 - s0, panels, panels, 4 * s0, 0);
    return;
  }
  if (split === SPLIT.panels || split === SPLIT.panelsPackingB) {
    const panels = ctrl[CTRL.panels];
    const p0 = Math.floor((panels * index) / count), p1 = Math.floor((panels * (index + 1)) / count);
    if (p1 > p0 && split === SPLIT.panelsPackingB) {
      // This thread's panels of B packed first, from B as it lies (its rows, or its transpose's).
      const dst = ctrl[CTRL.b] + p0 * k * 32, raw = ctrl[CTRL.table], W = ctrl[CTRL.bWidth];
      if (ctrl[CTRL.bFrom] === 0) kit.pack.panels(raw + p0 * 32, dst, k, p1 - p0, W);
      else kit.pack.rows8(raw + p0 * 32 * W, dst, k, p1 - p0, W);
    }
    if (p1 > p0) {
      tiles(
        ctrl[CTRL.a],
        ctrl[CTRL.b] + p0 * k * 32,
        ctrl[CTRL.c] + p0 * 32,
        ctrl[CTRL.strips],
        p1 - p0,
        panels,
        0,
        8 * p0,
      );
    }
    return;
  }
  const Z = ctrl[CTRL.z], z0 = Math.floor((Z * index) / count), z1 = Math.floor((Z * (index + 1)) / count);
  if (z1 <= z0) return;
  const M = ctrl[CTRL.m], N = ctrl[CTRL.n], strips = M / 4, panels = N / 8;
  const pa = ctrl[CTRL.space] + index * ctrl[CTRL.spaceEach], pb = pa + strips * k * 16;
  const table = new Int32Array(kit.memory.buffer, ctrl[CTRL.table], 2 * Z);
  const { pack } = kit, aw = ctrl[CTRL.aWidth], bw = ctrl[CTRL.bWidth];
  for (let z = z0; z < z1; z++) {
    const a = table[2 * z], b = table[2 * z + 1];
    if (ctrl[CTRL.aFrom] === 0) pack.rows(a, pa, k, strips, aw);
    else pack.cols(a, pa, k, strips, aw);
    if (ctrl[CTRL.bFrom] === 0) pack.panels(b, pb, k, panels, bw);
    else pack.rows8(b, pb, k, panels, bw);
    tiles(pa, pb, ctrl[CTRL.c] + 4 * z * M * N, strips, panels, panels, z * M, 0);
  }
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
  /** Calls so far by how they were split: by panels, by products, by strips, by panels packing B. */
  readonly splits = [0, 0, 0, 0];
  readonly #ctrl: Int32Array;
  readonly #stop: () => void;
  #fn: Kernel | null = null;

  private constructor(count: number, ctrl: Int32Array, stop: () => void) {
    this.count = count;
    this.#ctrl = ctrl;
    this.#stop = stop;
  }

  /**
   * Starts `count - 1` workers (see spawnWorkers), or returns null where workers or shared memory
   * are unavailable. It waits up to 10 s for them to be ready; workers that are not ready by then
   * join whenever they are (until then this thread computes their shares).
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
    return new MatmulThreads(count, words, () => stopShares(words, workers));
  }

  /** Shares of the calls so far that workers computed (the rest ran on this thread). */
  get workerShares(): number {
    return Atomics.load(this.#ctrl, CTRL.byWorkers);
  }

  /** One matmul split by C's panels: this thread and the workers claim its shares; returns once all are computed. */
  call(kit: KernelKit, args: readonly [number, number, number, number, number, number], store = PLAIN): void {
    const c = this.#ctrl;
    this.#store(store);
    // Arguments first, then the counters, then the generation: a claim sees this call's arguments.
    [c[CTRL.a], c[CTRL.b], c[CTRL.c], c[CTRL.strips], c[CTRL.panels], c[CTRL.k]] = args;
    c[CTRL.split] = SPLIT.panels;
    this.#go(kit);
  }

  /**
   * One matmul split by C's panels, each thread packing its panels of B from where it lies (`raw`:
   * B's rows, `bFrom` 0, or its transpose's, 1, `width` floats apart) into the packed B's place first.
   */
  callPanels(
    kit: KernelKit,
    args: readonly [number, number, number, number, number, number],
    [raw, bFrom, width]: readonly [number, 0 | 1, number],
    store = PLAIN,
  ): void {
    const w = this.#ctrl;
    this.#store(store);
    [w[CTRL.a], w[CTRL.b], w[CTRL.c], w[CTRL.strips], w[CTRL.panels], w[CTRL.k]] = args;
    [w[CTRL.table], w[CTRL.bFrom], w[CTRL.bWidth], w[CTRL.split]] = [raw, bFrom, width, SPLIT.panelsPackingB];
    this.#go(kit);
  }

  /**
   * One matmul split by A's strips: each thread packs its strips of A (rows at `a`, or read from
   * A's transpose: `aFrom` 1; `width` floats apart) into `packedA`, then multiplies them by the packed B.
   */
  callStrips(
    kit: KernelKit,
    [a, aFrom, width, packedA]: readonly [number, 0 | 1, number, number],
    [b, c, strips, panels, k]: readonly [number, number, number, number, number],
    store = PLAIN,
  ): void {
    const w = this.#ctrl;
    this.#store(store);
    [w[CTRL.a], w[CTRL.aFrom], w[CTRL.aWidth], w[CTRL.space], w[CTRL.b], w[CTRL.c]] = [a, aFrom, width, packedA, b, c];
    [w[CTRL.strips], w[CTRL.panels], w[CTRL.k], w[CTRL.split]] = [strips, panels, k, SPLIT.strips];
    this.#go(kit);
  }

  /** A batch of products split by products (see BatchCall); returns once all are computed. */
  callBatch(kit: KernelKit, b: BatchCall, store = PLAIN): void {
    const c = this.#ctrl;
    this.#store(store);
    [c[CTRL.table], c[CTRL.z], c[CTRL.aFrom], c[CTRL.bFrom], c[CTRL.m], c[CTRL.k], c[CTRL.n]] = [
      b.table,
      b.z,
      b.aFrom,
      b.bFrom,
      b.m,
      b.k,
      b.n,
    ];
    [c[CTRL.c], c[CTRL.space], c[CTRL.spaceEach], c[CTRL.split]] = [b.c, b.space, b.spaceEach, SPLIT.batch];
    [c[CTRL.aWidth], c[CTRL.bWidth]] = [b.aWidth, b.bWidth];
    this.#go(kit);
  }

  // The call's store into the control block (before its counters and generation, as every argument).
  #store(store: Store): void {
    const c = this.#ctrl, e = store.epilogue;
    if (store.args.length > EPILOGUE_ARGS) {
      throw new Error(`matmul threads: ${store.args.length} epilogue arguments, more than ${EPILOGUE_ARGS}`);
    }
    [c[CTRL.d], c[CTRL.row0], c[CTRL.kernel], c[CTRL.nx]] = [store.d, store.row0, e?.id ?? 0, store.args.length];
    if (e !== null) [c[CTRL.kAt], c[CTRL.kLen]] = e.bytes;
    c.set(store.args, CTRL.x);
    this.#fn = e?.fn ?? null;
  }

  #go(kit: KernelKit): void {
    const c = this.#ctrl, fn = this.#fn;
    this.calls++;
    this.splits[c[CTRL.split]]++;
    callShares(c, this.count, (i) => share(kit, c, i, this.count, () => fn!));
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
  const kit = instantiateKernel(setup.bytes, setup.memory);
  const ctrl = new Int32Array(setup.ctrl), epilogues = new Map<number, Kernel>();
  const kernel = (id: number): Kernel => {
    let fn = epilogues.get(id);
    if (fn === undefined) {
      epilogues.set(id, fn = instantiateFrom(setup.memory, ctrl[CTRL.kAt], ctrl[CTRL.kLen]).matmul as Kernel);
    }
    return fn;
  };
  ready();
  serveShares(ctrl, setup.count, (i) => share(kit, ctrl, i, setup.count, kernel));
}
