// Matmul variants chosen per adapter by measurement: the first product of a size class on a device
// times the candidate variants (the built-in register tile first, then the other register tiles and
// the workgroup-memory tiles) within a budget, keeps the fastest, and remembers it per adapter (in a
// file under Deno when permitted, in IndexedDB in a browser, else for the session: tune_store.ts).

import { leafNode, Node } from "../graph.ts";
import type { Gpu } from "./device.ts";
import type { KernelFeatures } from "./emit.ts";
import { type KernelPlan, planKernels } from "./plan.ts";
import { type ChoiceStore, choiceStore, envFlag } from "./tune_store.ts";
import { builtInVariant, type MatmulVariant, stagedBytes, variantName, variantNamed, VARIANTS } from "./variants.ts";

// Products smaller than this keep the built-in tile: launch and loop overheads dominate them, and
// measuring every small shape would slow first runs (and tests) for nothing.
const MIN_WORK = 2 ** 21;
// A candidate replaces the built-in tile only when it takes at most this fraction of its time, so
// noise on a busy machine does not pick a slower one.
const MARGIN = 0.9;
// Products above this many multiply-adds are screened on a product with sides capped at PROXY_SIDE
// first; the SHORTLIST fastest candidates of the screen are then timed at full size.
const PROXY_WORK = 2 ** 27;
const PROXY_SIDE = 256;
const SHORTLIST = 2;

/** How the tuner runs. */
export interface TuneOptions {
  /**
   * Measure at all (default true; `JETFOLD_TUNE=0` turns it off where env access is granted, and
   * so does `globalThis.JETFOLD_TUNE = "0"` in a browser).
   */
  readonly enabled?: boolean;
  /** Milliseconds one size class may spend compiling and timing candidates (default 1500). */
  readonly budgetMs?: number;
  /**
   * Where choices are kept across runs; null keeps them in memory only. Default: a file under the
   * user's cache under Deno, IndexedDB in a browser.
   */
  readonly cacheFile?: string | null;
}

/** A size class: each of batch, M, N and K rounded up to a power of two. */
export function sizeClass(Z: number, M: number, N: number, K: number): string {
  const p = (n: number) => 2 ** Math.ceil(Math.log2(Math.max(n, 1)));
  return `${p(Z)}x${p(M)}x${p(N)}x${p(K)}`;
}

/** The variants one device measured fastest, by size class; measures new classes on request. */
export class MatmulTuner {
  readonly enabled: boolean;
  readonly budgetMs: number;
  /** Where the choices are kept across sessions. */
  readonly store: ChoiceStore;
  /** Identifies the adapter in the cache file. */
  readonly adapterKey: string;
  /** Size classes measured by this tuner (not read from the cache): for tests. */
  measured = 0;
  /** Candidate runs the device reported an error for (their times are not trusted): for tests. */
  rejected = 0;
  /** Bumped whenever a choice is added: plans built before it are rebuilt. */
  version = 0;
  readonly #gpu: Gpu;
  readonly #choices = new Map<string, MatmulVariant>();
  #loading: Promise<void> | null = null;
  #loaded = false;

  constructor(gpu: Gpu, opts: TuneOptions = {}) {
    this.#gpu = gpu;
    this.enabled = opts.enabled ?? envFlag("JETFOLD_TUNE") !== "0";
    this.budgetMs = opts.budgetMs ?? 1500;
    this.store = choiceStore(opts.cacheFile);
    this.adapterKey = `${gpu.description}|${gpu.maxWorkgroupSize}|${gpu.maxStorageBuffers}|${gpu.timestamps}`;
  }

  /** The measured variant for a product of this size, or undefined (use the built-in choice). */
  readonly variant = (Z: number, M: number, N: number, K: number): MatmulVariant | undefined =>
    this.#choices.get(sizeClass(Z, M, N, K));

  /** The choice for a size class, for tests and reports. */
  choice(cls: string): MatmulVariant | undefined {
    return this.#choices.get(cls);
  }

  /** The variants this device can run for a product with M rows, the built-in one first. */
  candidates(Z: number, M: number, N: number): MatmulVariant[] {
    const builtIn = builtInVariant(Z, M, N), storage = this.#gpu.device.limits.maxComputeWorkgroupStorageSize;
    return [
      builtIn,
      ...VARIANTS.filter((v) =>
        variantName(v) !== variantName(builtIn) && v.rows <= M &&
        (v.kind === "register" || (v.wx * v.wy <= this.#gpu.maxWorkgroupSize && stagedBytes(v) <= storage))
      ),
    ];
  }

  /** The matmul products among `kernels` that are worth measuring and not measured yet. */
  untuned(kernels: readonly KernelPlan[]): (readonly [number, number, number, number])[] {
    if (!this.enabled || !this.#loaded) return [];
    const seen = new Set<string>(), out: (readonly [number, number, number, number])[] = [];
    for (const k of kernels) {
      const p = k.matmul;
      if (p === undefined || p[0] * p[1] * p[2] * p[3] < MIN_WORK) continue;
      const cls = sizeClass(...p);
      if (this.#choices.has(cls) || seen.has(cls)) continue;
      seen.add(cls);
      out.push(p);
    }
    return out;
  }

  /**
   * Times the candidate variants for each product and keeps the fastest per size class. A product
   * above PROXY_WORK first screens every candidate on a smaller product of the same shape of
   * thread (capped sides: a slow candidate on a software adapter would otherwise take seconds per
   * run), then times the built-in variant and the SHORTLIST fastest of the screen at full size.
   */
  async measure(products: readonly (readonly [number, number, number, number])[], features: KernelFeatures) {
    for (const p of products) {
      const [Z, M, N, K] = p;
      const candidates = this.candidates(Z, M, N), builtIn = candidates[0];
      const start = performance.now(), within = () => performance.now() - start <= this.budgetMs;
      let finalists = candidates;
      if (Z * M * N * K > PROXY_WORK) {
        const proxy = [
          Math.min(Z, 2),
          Math.min(M, PROXY_SIDE),
          Math.min(N, PROXY_SIDE),
          Math.min(K, PROXY_SIDE),
        ] as const;
        const screened: [MatmulVariant, number][] = [];
        for (const c of candidates) {
          if (c !== builtIn && !within()) break;
          screened.push([c, await this.#time(proxy, c, features)]);
        }
        const ranked = screened.filter(([c, ms]) => c !== builtIn && ms < Infinity).sort((x, y) => x[1] - y[1]);
        finalists = [builtIn, ...ranked.slice(0, SHORTLIST).map(([c]) => c)];
      }
      let best = builtIn, bestMs = Infinity, builtInMs = Infinity;
      for (const c of finalists) {
        if (c !== builtIn && !within()) break;
        const ms = await this.#time(p, c, features);
        if (c === builtIn) builtInMs = ms;
        if (ms < bestMs) [best, bestMs] = [c, ms];
      }
      if (bestMs > MARGIN * builtInMs) best = builtIn;
      this.#choices.set(sizeClass(Z, M, N, K), best);
      this.measured++;
    }
    this.version++;
    await this.store.write(
      this.adapterKey,
      Object.fromEntries([...this.#choices].map(([c, v]) => [c, variantName(v)])),
    );
  }

  // Milliseconds of one run of a plain matmul of this size with variant `t` (the least of a few
  // runs, by timestamp queries where the device has them, else by the wall over several dispatches).
  async #time(p: readonly [number, number, number, number], t: MatmulVariant, features: KernelFeatures) {
    const [Z, M, N, K] = p, device = this.#gpu.device;
    const lead = Z > 1 ? [Z] : [];
    const a = leafNode([...lead, M, K], "f32"), b = leafNode([...lead, K, N], "f32");
    const m = new Node("matmul", [...lead, M, N], "f32", [a, b], {});
    const [kernel] = planKernels([m], this.#gpu.maxStorageBuffers, undefined, { ...features, matmulVariant: () => t });
    // The measurement's own errors stay here: left uncaptured, they would fail the user's next
    // realization with a message about a kernel it never asked for.
    device.pushErrorScope("out-of-memory");
    device.pushErrorScope("internal");
    device.pushErrorScope("validation");
    const made: GPUBuffer[] = [];
    const buffer = (bytes: number, usage: number) => {
      const buf = device.createBuffer({ size: Math.max(16, Math.ceil(bytes / 16) * 16), usage });
      made.push(buf);
      return buf;
    };
    const measure = async (): Promise<number> => {
      const module = device.createShaderModule({ code: kernel.wgsl, label: `tuning ${kernel.label}` });
      const pipeline = await device.createComputePipelineAsync({
        layout: "auto",
        compute: { module, entryPoint: "main" },
      });
      const bufs = new Map<Node, GPUBuffer>([[a, buffer(4 * a.size, 0x80)], [b, buffer(4 * b.size, 0x80)]]);
      const out = buffer(4 * m.size, 0x80);
      const entries: GPUBindGroupEntry[] = kernel.inputs.map((x, j) => ({
        binding: j + 1,
        resource: { buffer: bufs.get(x)! },
      }));
      entries.push({ binding: kernel.inputs.length + 1, resource: { buffer: out } });
      if (kernel.uniforms.length > 0) {
        const words = new Uint32Array(Math.ceil(kernel.uniforms.length / 4) * 4);
        words.set(kernel.uniforms);
        const uniform = buffer(words.byteLength, 0x40 | 0x8);
        device.queue.writeBuffer(uniform, 0, words);
        entries.push({ binding: 0, resource: { buffer: uniform } });
      }
      const group = device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries });
      const groups = Math.ceil(kernel.threads / kernel.workgroupSize);
      const x = Math.min(groups, this.#gpu.maxWorkgroupsPerDimension), y = Math.ceil(groups / x);
      const run = (reps: number, set: GPUQuerySet | null) => {
        const encoder = device.createCommandEncoder();
        for (let i = 0; i < reps; i++) {
          const writes = set
            ? { querySet: set, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 }
            : undefined;
          const pass = encoder.beginComputePass(writes ? { timestampWrites: writes } : {});
          pass.setPipeline(pipeline);
          pass.setBindGroup(0, group);
          pass.dispatchWorkgroups(x, y);
          pass.end();
        }
        return encoder;
      };
      const t0 = performance.now();
      device.queue.submit([run(1, null).finish()]); // warm up
      await device.queue.onSubmittedWorkDone();
      const once = performance.now() - t0;
      const reps = Math.max(1, Math.min(3, Math.floor(this.budgetMs / 8 / Math.max(once, 1e-3))));
      if (!this.#gpu.timestamps) {
        const t1 = performance.now();
        device.queue.submit([run(reps, null).finish()]);
        await device.queue.onSubmittedWorkDone();
        return (performance.now() - t1) / reps;
      }
      const set = device.createQuerySet({ type: "timestamp", count: 2 * reps });
      const resolved = buffer(16 * reps, 0x200 | 0x4), staging = buffer(16 * reps, 0x1 | 0x8);
      const encoder = run(reps, set);
      encoder.resolveQuerySet(set, 0, 2 * reps, resolved, 0);
      encoder.copyBufferToBuffer(resolved, 0, staging, 0, 16 * reps);
      device.queue.submit([encoder.finish()]);
      await staging.mapAsync(1 /* READ */);
      const ticks = new BigUint64Array(staging.getMappedRange().slice(0));
      staging.unmap();
      set.destroy();
      let least = Infinity;
      for (let i = 0; i < reps; i++) least = Math.min(least, Number(ticks[2 * i + 1] - ticks[2 * i]) / 1e6);
      return least;
    };
    // A candidate this device cannot run (or reports an error for) is simply not chosen.
    const ms = await measure().catch(() => Infinity);
    for (const buf of made) buf.destroy();
    const errors = await Promise.all([0, 1, 2].map(() => device.popErrorScope().catch(() => null)));
    if (errors.every((e) => e === null)) return ms;
    this.rejected++;
    return Infinity;
  }

  /** True once the stored choices were read (`load`): until then `untuned` reports nothing. */
  get loaded(): boolean {
    return this.#loaded;
  }

  /** Reads this adapter's stored choices, once (later calls return the same promise). */
  load(): Promise<void> {
    return this.#loading ??= this.store.read(this.adapterKey).then((stored) => {
      for (const [cls, name] of Object.entries(stored)) {
        // (Names of variants this version does not have, or older entries, are measured again.)
        const v = typeof name === "string" ? variantNamed(name) : undefined;
        if (v !== undefined && !this.#choices.has(cls)) this.#choices.set(cls, v);
      }
      if (Object.keys(stored).length > 0) this.version++;
      this.#loaded = true;
    });
  }
}
