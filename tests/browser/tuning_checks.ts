// The browser suite's tuner check (run inside Chromium by tests/browser/page.ts): the matmul tuner
// measures a size class once with a small budget, keeps its choice in IndexedDB for the next
// session on the adapter, falls back to memory without IndexedDB, and turns off by a global.

import { normal, randomKey, realize, setBackend, type Tensor } from "../../mod.ts";
import { leafNode } from "../../core/graph.ts";
import { requestGpu } from "../../core/webgpu/device.ts";
import { WebGpuRunner } from "../../core/webgpu/run.ts";
import { sizeClass } from "../../core/webgpu/tune.ts";
import { choiceStore, type IdbFactory, indexedDb, indexedDbStore } from "../../core/webgpu/tune_store.ts";
import { variantName, VARIANTS } from "../../core/webgpu/variants.ts";
import { assertClose } from "../numeric.ts";

const DB = "jetfold-webgpu"; // the default store's database

// Realizes `make()`'s tensors on `runner` (their inputs host values) and returns them.
async function on(runner: WebGpuRunner, make: () => Tensor[]): Promise<Float32Array[]> {
  const nodes = make().map((t) => t.node);
  const leaves = nodes.map((n) => leafNode(n.shape, n.dtype));
  return (await runner.realize(nodes, leaves, leaves)) as Float32Array[];
}

function expect(ok: boolean, what: () => string): void {
  if (!ok) throw new Error(what());
}

// Deletes the default store's database; blocked (by a connection left open), it fails rather than waits.
const deleted = () =>
  new Promise<void>((resolve, reject) => {
    const req = indexedDb()!.deleteDatabase(DB) as ReturnType<IdbFactory["deleteDatabase"]> & {
      onblocked?: () => void;
    };
    req.onsuccess = () => resolve();
    req.onerror = () => reject(req.error);
    req.onblocked = () => reject(new Error(`deleting IndexedDB ${DB} is blocked: a connection was left open`));
  });

/** Returns the variant the tuner chose (its name), after checking the IndexedDB round trip. */
export async function checkTuning(): Promise<string> {
  const gpu = (await requestGpu())!;
  await setBackend("cpu");
  const a = normal(randomKey(4), [128, 192]), b = normal(randomKey(5), [192, 128]);
  await realize([a, b]);
  const reference = await a.matmul(b).data();
  const cls = sizeClass(1, 128, 128, 192);
  await deleted();
  try {
    const first = new WebGpuRunner(gpu, { tuning: { budgetMs: 300 } });
    expect(first.tuner.store.kind === "indexeddb", () => `the default store is ${first.tuner.store.kind}`);
    const [out] = await on(first, () => [a.matmul(b)]);
    assertClose(out, reference, { rtol: 1e-4, atol: 1e-5, msg: "the tuned matmul" });
    await on(first, () => [a.matmul(b).mul(2)]); // the same size class: nothing more to measure
    expect(first.tuner.measured === 1, () => `measured ${first.tuner.measured} size classes, not 1`);
    const chosen = first.tuner.choice(cls)!;
    expect(VARIANTS.includes(chosen), () => `chose ${JSON.stringify(chosen)}`);
    const stored = await indexedDbStore().read(first.tuner.adapterKey);
    expect(stored[cls] === variantName(chosen), () => `IndexedDB holds ${JSON.stringify(stored)}`);

    // A later session on this adapter reads the choice instead of measuring.
    const second = new WebGpuRunner(gpu);
    const [again] = await on(second, () => [a.matmul(b)]);
    assertClose(again, reference, { rtol: 1e-4, atol: 1e-5, msg: "the matmul of the second session" });
    expect(
      second.tuner.measured === 0 && second.tuner.choice(cls) === chosen,
      () => `the second session measured ${second.tuner.measured}, chose ${variantName(second.tuner.choice(cls)!)}`,
    );

    // Without IndexedDB: memory. Off by the global flag: nothing measured.
    // (A global's attributes may be its own properties: put back exactly what was there.)
    const own = Object.getOwnPropertyDescriptor(globalThis, "indexedDB");
    Object.defineProperty(globalThis, "indexedDB", { value: undefined, configurable: true });
    try {
      expect(choiceStore(undefined).kind === "memory", () => `without IndexedDB: ${choiceStore(undefined).kind}`);
    } finally {
      if (own) Object.defineProperty(globalThis, "indexedDB", own);
      else delete (globalThis as { indexedDB?: unknown }).indexedDB;
    }
    expect(indexedDb() !== undefined, () => "indexedDB was not restored");
    (globalThis as { JETFOLD_TUNE?: string }).JETFOLD_TUNE = "0";
    try {
      const off = new WebGpuRunner(gpu, { tuning: { cacheFile: null } });
      const [plain] = await on(off, () => [a.matmul(b).add(1)]);
      assertClose(plain, Float32Array.from(reference, (x) => x + 1), { rtol: 1e-4, atol: 1e-5, msg: "untuned" });
      expect(!off.tuner.enabled && off.tuner.measured === 0, () => 'JETFOLD_TUNE = "0" did not turn the tuner off');
    } finally {
      delete (globalThis as { JETFOLD_TUNE?: string }).JETFOLD_TUNE;
    }
    return variantName(chosen);
  } finally {
    await deleted();
  }
}
