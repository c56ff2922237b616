// The Wasm SIMD matmul: operands packed into panels, a 4 x 8 register tile per step of the
// contraction (the generated code is in matmul_kernel.ts), batches, views, threads and the packed
// weight cache.

import { instantiateKernel, kernelBytes, type KernelKit, TILE_M, TILE_N } from "./matmul_kernel.ts";
import { MatmulThreads, type StartFaults } from "./threads.ts";
import { type Epilogue, EpilogueKernels, PLAIN, type Store, storeTiles } from "./epilogue_kernel.ts";
import { FEW_ROWS, FewRows, fewRowsBytes, inPlaceLayout } from "./few_rows.ts";
import { kernelMemory } from "./memory.ts";
import { Scratch, type WasmHeap } from "./heap.ts";
import { PackedCache } from "./packed_cache.ts";
import { Packer } from "./matmul_pack.ts";
import { batchCall, eachProduct, fewInHeap } from "./matmul_batch.ts";

/** The least work (multiply-adds of one product) that is split across threads. */
export const THREADED_WORK = 2 ** 22;

/** Bytes of packed weight panels kept at most by default (see WasmMatmul.create). */
export const PACKED_BUDGET = 2 ** 30;

/**
 * Where an operand's elements are: element (batch index..., row, column) at `c + sum index * strides`.
 * Row-major operands have `c = 0` and their shape's strides; views (transposes, slices) other ones.
 */
export interface Layout {
  readonly c: number;
  readonly strides: readonly number[];
}

// The row-major layout of matrices of `rows x cols`, one after another along one batch axis.
const rowMajor = (rows: number, cols: number): Layout => ({ c: 0, strides: [rows * cols, cols, 1] });

/**
 * Runs matmuls on the kernel: packs operands into its scratch per batch element. Over a heap, the
 * operands that lie in it are packed from where they are and C is written in place when it fits the
 * tiles; other operands are copied in first.
 */
export class WasmMatmul {
  readonly fma: boolean;
  readonly #scratch: Scratch;
  readonly #heap: WasmHeap | null;
  readonly #kit: KernelKit;
  readonly #threads: MatmulThreads | null;
  readonly #threadedWork: number;
  readonly #few: FewRows;
  readonly #pack: Packer;
  readonly #epilogues: EpilogueKernels | null;
  /** Products whose epilogue (WasmMatmul.run's `epilogue`) the kernel computed as it stored C. */
  epilogueCalls = 0;

  private constructor(
    fma: boolean,
    [scratch, heap]: [Scratch, WasmHeap | null],
    kit: KernelKit,
    threads: MatmulThreads | null,
    [threadedWork, budget]: readonly [number, number],
  ) {
    this.#threadedWork = threadedWork;
    this.#pack = new Packer(kit, heap, scratch, new PackedCache(budget));
    const shared = heap !== null || threads !== null;
    this.#few = new FewRows(fewRowsBytes(fma, shared), scratch.memory, (bytes) => scratch.floats(bytes));
    this.fma = fma;
    this.#scratch = scratch;
    this.#heap = heap;
    this.#epilogues = heap === null ? null : new EpilogueKernels(fma, heap);
    this.#kit = kit;
    this.#threads = threads;
  }

  /**
   * The kernel on `threads` threads (workers over shared memory where the runtime has them; a single
   * thread otherwise) for products of at least `threadedWork` multiply-adds. Relaxed-SIMD FMA is used
   * where the runtime validates it. Packed copies of weights are kept up to `packedBudget` bytes
   * (default PACKED_BUDGET); products of at most FEW_ROWS rows never make one. With `heap`, the
   * kernel runs on the heap's memory (see the class).
   */
  static async create(
    opts: {
      readonly threads?: number;
      readonly threadedWork?: number;
      readonly packedBudget?: number;
      readonly faults?: StartFaults;
      readonly heap?: WasmHeap | null;
    } = {},
  ): Promise<WasmMatmul> {
    const work = [opts.threadedWork ?? THREADED_WORK, opts.packedBudget ?? PACKED_BUDGET] as const;
    const fma = WebAssembly.validate(kernelBytes(true, false));
    const want = opts.threads ?? 1, heap = opts.heap ?? null;
    if (heap !== null || (want > 1 && typeof SharedArrayBuffer !== "undefined")) {
      const scratch = new Scratch(heap, () => kernelMemory({ initial: 1, maximum: 65536, shared: true }));
      const bytes = kernelBytes(fma, true);
      const threads = want > 1 ? await MatmulThreads.start(bytes, scratch.memory, want, opts.faults) : null;
      if (threads !== null || heap !== null) {
        return new WasmMatmul(fma, [scratch, heap], instantiateKernel(bytes, scratch.memory), threads, work);
      }
    }
    const scratch = new Scratch(null, () => kernelMemory());
    const bytes = kernelBytes(fma, false);
    return new WasmMatmul(fma, [scratch, null], instantiateKernel(bytes, scratch.memory), null, work);
  }

  /** Threads a call uses. */
  get threads(): number {
    return this.#threads?.count ?? 1;
  }

  /** Products split across the threads so far. */
  get threadedCalls(): number {
    return this.#threads?.calls ?? 0;
  }

  /** Products split so far by how: by C's panels, by a batch's products, by A's strips, by panels packing B. */
  get splits(): { readonly panels: number; readonly batch: number; readonly strips: number; readonly ownB: number } {
    const [panels, batch, strips, ownB] = this.#threads?.splits ?? [0, 0, 0, 0];
    return { panels, batch, strips, ownB };
  }

  /** Shares of split products that workers computed (the calling thread computed the rest). */
  get workerShares(): number {
    return this.#threads?.workerShares ?? 0;
  }

  /** Stops the worker threads, if any. */
  close(): void {
    this.#threads?.stop();
  }

  /** Bytes of packed weight panels kept now. */
  get packedBytes(): number {
    return this.#pack.keptBytes;
  }

  /** Operands packed by the host loops (views the Wasm packers cannot read, or strided ones outside the heap). */
  get hostPacks(): number {
    return this.#pack.hostPacks;
  }

  /**
   * `out[z] = a[z] @ b[z]` for `Z` matrices of `M x K` and `K x N`: row-major, or read through
   * `layouts` over a batch of shape `batch` (whose sizes multiply to Z); plus `opts.addend` (of
   * out's shape) where given: in the kernel's epilogue where out and the addend lie in the heap and
   * C is written in place, else added after. Either way each element is the product rounded to f32,
   * then the sum rounded, as a separate add would give. With `opts.epilogue` (and no addend), out
   * is its expression of the product where the kernel can compute it as it stores C (C written in
   * place in the heap, the reads' regions there: see Epilogue): then run returns true; otherwise
   * out is the product and run returns false.
   */
  run(
    a: ArrayLike<number>,
    b: ArrayLike<number>,
    out: Float32Array | Float64Array,
    dims: readonly number[],
    layouts?: { readonly a: Layout; readonly b: Layout; readonly batch: readonly number[] },
    opts: {
      readonly keepPackedB?: boolean;
      readonly addend?: ArrayLike<number>;
      readonly epilogue?: { readonly key: string; readonly spec: Epilogue; readonly args: readonly number[] };
    } = {},
  ): boolean {
    const addend = opts.addend, epi = opts.epilogue, heap = this.#heap;
    let store = PLAIN;
    const hc = heap !== null && out instanceof Float32Array ? heap.offsetOf(out) : -1;
    if (addend !== undefined && addend instanceof Float32Array && hc >= 0) {
      const hd = heap!.offsetOf(addend);
      if (hd >= 0) store = { ...PLAIN, d: hd - hc };
    } else if (addend === undefined && epi !== undefined && hc >= 0) {
      store = { d: 0, epilogue: this.#epilogues!.get(epi.key, epi.spec), args: epi.args, row0: 0 };
    }
    const stored = this.#product(a, b, out, dims, layouts, opts, store);
    if (addend !== undefined && !stored) {
      const n = dims[0] * dims[1] * dims[3];
      for (let i = 0; i < n; i++) out[i] += addend[i];
    }
    if (stored && store.epilogue !== null) this.epilogueCalls++;
    return stored && store.epilogue !== null;
  }

  /** Epilogue kernels compiled so far. */
  get epilogueKernels(): number {
    return this.#epilogues?.size ?? 0;
  }

  // The product into `out`, C stored as `store` says where the kernel writes C in place: true when
  // it did (otherwise out is the plain product).
  #product(
    a: ArrayLike<number>,
    b: ArrayLike<number>,
    out: Float32Array | Float64Array,
    dims: readonly number[],
    layouts: { readonly a: Layout; readonly b: Layout; readonly batch: readonly number[] } | undefined,
    opts: { readonly keepPackedB?: boolean },
    store: Store,
  ): boolean {
    const [Z, M, K, N] = dims;
    if (Z * M * N === 0) return true;
    if (K === 0) return void out.fill(0), false;
    const la = layouts?.a ?? rowMajor(M, K), lb = layouts?.b ?? rowMajor(K, N);
    const batch = layouts?.batch ?? [Z], nb = batch.length;
    const [ars, acs] = [la.strides[nb], la.strides[nb + 1]], [brs, bcs] = [lb.strides[nb], lb.strides[nb + 1]];
    // Few rows: B is read where it lies (packing it would cost more than the product saves, and a
    // kept packed copy would double a decoder's memory).
    const inPlace = M <= FEW_ROWS && b instanceof Float32Array ? inPlaceLayout(K, N, brs, bcs) : null;
    // One B for the whole batch (a weight applied to [B, T, D] activations) and A's rows evenly
    // spaced across it: one product of Z M rows, which packs B once (and keeps it, for a weight)
    // and splits by strips. Each output is the same sum in the same order, so the bits do not change.
    if (inPlace === null && Z > 1 && lb.strides.slice(0, nb).every((v) => v === 0)) {
      const even = la.strides.slice(0, nb).every((v, d) =>
        v === (d === nb - 1 ? M * ars : la.strides[d + 1] * batch[d + 1])
      );
      if (even) {
        const fold = { a: { c: la.c, strides: [0, ars, acs] }, b: { c: lb.c, strides: [0, brs, bcs] }, batch: [1] };
        return this.#product(a, b, out, [1, Z * M, K, N], fold, opts, store);
      }
    }
    if (inPlace === null && this.#batchSplit(a, b, out, dims, [la, lb], batch, store)) return store !== PLAIN;
    const heap = this.#heap;
    // Few-row products in the heap are computed where the operands lie: a batch of them always, one
    // product of up to four rows too (a decoded token's: B is read once either way, and copying it in
    // chunks cost more than the product); with more rows, B's chunks copied are read by each group.
    if (
      inPlace !== null && (Z > 1 || M <= TILE_M) && heap !== null &&
      fewInHeap(this.#few, heap, [a, b, out], dims, [la, lb], batch, inPlace)
    ) {
      return false;
    }
    const mkn = [M, K, N] as const, bAt = (bo: number) => ({ base: bo, rs: brs, cs: bcs });
    const packed = inPlace === null ? this.#packedProduct(a, b, out, mkn, [ars, acs, brs, bcs], store) : null;
    const product = packed !== null
      ? packed.run
      : (ao: number, bo: number, z: number) =>
        this.#few.run(a, [ao, ars, acs], b as Float32Array, bAt(bo), inPlace!, out, z * M * N, mkn);
    const keep = opts.keepPackedB === true && Z === 1;
    eachProduct(la, lb, batch, Z, (ao, bo, z) => product(ao, bo, z, keep));
    return packed?.added ?? false;
  }

  // A batch of products each too small to split by panels (attention's, one per head) split by
  // products across the threads (see batchCall); false where that does not apply (the products then
  // run one by one).
  #batchSplit(
    a: ArrayLike<number>,
    b: ArrayLike<number>,
    out: Float32Array | Float64Array,
    dims: readonly number[],
    layouts: readonly [Layout, Layout],
    batch: readonly number[],
    store: Store,
  ): boolean {
    const [Z, M, K, N] = dims, threads = this.#threads, heap = this.#heap, work = M * K * N;
    if (threads === null || heap === null || Z < 2 || work >= this.#threadedWork || Z * work < this.#threadedWork) {
      return false;
    }
    const call = batchCall(
      heap,
      threads.count,
      [a, b, out],
      dims,
      layouts,
      batch,
      (bytes) => this.#scratch.floats(bytes),
    );
    if (call === null) return false;
    threads.callBatch(this.#kit, call, store);
    return true;
  }

  // One batch element's product on packed operands, as a function of the operands' offsets; `added`
  // when the kernel stores C as `store` says (only where C is written in place).
  #packedProduct(
    a: ArrayLike<number>,
    b: ArrayLike<number>,
    out: Float32Array | Float64Array,
    [M, K, N]: readonly number[],
    [ars, acs, brs, bcs]: readonly number[],
    store: Store,
  ): { run: (ao: number, bo: number, z: number, keep: boolean) => void; added: boolean } {
    const strips = Math.ceil(M / TILE_M), panels = Math.ceil(N / TILE_N), Np = panels * TILE_N;
    const aLen = strips * K * TILE_M, bLen = panels * K * TILE_N, cLen = strips * TILE_M * Np;
    // After C: room for contiguous operands copied as they are, packed in Wasm (read a little past
    // their ends: rows up to the last strip's, columns up to the last panel's).
    const rawA = aLen + bLen + cLen, rawB = rawA + strips * TILE_M * K + 4;
    const mem = this.#scratch.floats(4 * (rawB + panels * TILE_N * K + TILE_N)), base = mem.byteOffset;
    const A = mem.subarray(0, aLen), B = mem.subarray(aLen, aLen + bLen), C = mem.subarray(aLen + bLen);
    const aF32 = a instanceof Float32Array ? a : null, bDims = { K, N, rs: brs, cs: bcs };
    // Operands in the heap are packed from where they lie when the packers' reads (whole strips of
    // A's rows) stay inside them; C is written in place when its rows fill whole tiles.
    const heapA = M % TILE_M === 0 && aF32 !== null ? this.#heap?.offsetOf(aF32) ?? -1 : -1;
    const heapC = M % TILE_M === 0 && N === Np && out instanceof Float32Array ? this.#heap?.offsetOf(out) ?? -1 : -1;
    const rawAt = (ao: number) => {
      if (heapA >= 0) return heapA + 4 * ao;
      mem.set(aF32!.subarray(ao, ao + M * K), rawA);
      return base + 4 * rawA;
    };
    // A's rows (or its transpose's) at any stride where A lies in the heap; copied, contiguous ones.
    const aRows = aF32 !== null && acs === 1 && (ars === K || heapA >= 0);
    const aCols = aF32 !== null && ars === 1 && !aRows && (acs === M || heapA >= 0);
    const aWidth = heapA >= 0 ? (aRows ? ars : acs) : aRows ? K : M;
    // Waking the workers costs tens of microseconds (more under load): on this 2-core machine two
    // threads broke even near 2^21 multiply-adds (128^3: 0.12 ms on one, 0.10 on two; 512 x 128 x 512:
    // 1.7 against 0.93 ms), so products from THREADED_WORK (2^22) on are shared.
    const threads = M * N * K >= this.#threadedWork ? this.#threads : null, st = heapC >= 0 ? store : PLAIN;
    const run = (ao: number, bo: number, z: number, keep: boolean) => {
      const c = heapC >= 0 ? heapC + 4 * z * M * N : base + 4 * (aLen + bLen);
      // This product's rows among the epilogue's (the batch's rows one after another).
      const dd = z === 0 ? st : { ...st, row0: st.row0 + z * M };
      // A larger B than A, not a weight's (whose packed panels are kept): each thread packs its panels.
      const ownB = threads !== null && !keep && panels > 1 && K * N > M * K
        ? this.#pack.rawB(b, bo, bDims, rawB)
        : null;
      if (ownB !== null) {
        if (aRows) this.#kit.pack.rows(rawAt(ao), base, K, strips, aWidth);
        else if (aCols) this.#kit.pack.cols(rawAt(ao), base, K, strips, aWidth);
        else this.#pack.hostA(A, a, ao, [M, K, ars, acs]);
        threads!.callPanels(
          this.#kit,
          [base, base + 4 * aLen, c, strips, panels, K],
          [ownB.at, ownB.from, ownB.width],
          dd,
        );
        if (heapC < 0) { for (let i = 0; i < M; i++) out.set(C.subarray(i * Np, i * Np + N), (z * M + i) * N); }
        return;
      }
      if (keep) this.#pack.keptB(B, b, bo, bDims, rawB);
      else this.#pack.b(B, b, bo, bDims, rawB);
      if (threads !== null && strips > 1 && (aRows || aCols)) {
        // Split by A's strips, each thread packing its own: packing A on this thread alone cost a
        // quarter of a 512 x 512 x 128 product on two.
        const at = [rawAt(ao), aRows ? 0 : 1, aWidth, base] as const;
        threads.callStrips(this.#kit, at, [base + 4 * aLen, c, strips, panels, K], dd);
      } else {
        if (aRows) this.#kit.pack.rows(rawAt(ao), base, K, strips, aWidth);
        else if (aCols) this.#kit.pack.cols(rawAt(ao), base, K, strips, aWidth);
        else this.#pack.hostA(A, a, ao, [M, K, ars, acs]);
        const args = [base, base + 4 * aLen, c, strips, panels, K] as const;
        if (threads !== null && panels > 1) threads.call(this.#kit, args, dd);
        else storeTiles(this.#kit, dd, K)(args[0], args[1], args[2], strips, panels, panels, 0, 0);
      }
      if (heapC < 0) { for (let i = 0; i < M; i++) out.set(C.subarray(i * Np, i * Np + N), (z * M + i) * N); }
    };
    return { run, added: st !== PLAIN };
  }
}
