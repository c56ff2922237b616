// Shared test helpers: per-backend tests, closeness checks, finite differences in float64, error messages.

import { backendInfo, type BackendOptions, grad, setBackend, type Tensor, tensor } from "../mod.ts";
import { assertClose, randomValues } from "./numeric.ts";

export { assertClose, randomValues } from "./numeric.ts";

// Semantics are tested on the CPU reference; other backends are chosen per test, explicitly.
await setBackend("cpu");

// Asked of navigator.gpu directly rather than by opening the backend's device: some core tests
// simulate a machine without WebGPU and need this process's device module untouched.
async function adapterExists(): Promise<boolean> {
  try {
    return (await navigator.gpu?.requestAdapter()) != null;
  } catch {
    return false;
  }
}

/** True when a WebGPU adapter exists here (Mesa's software adapter counts). */
export const HAS_ADAPTER: boolean = await adapterExists();

/** A backend a test can run on. */
export type TestBackend = "cpu" | "webgpu" | "wasm";

/** Switches this test process to the float64 CPU reference (finite differences need it). */
export function useF64(): void {
  setBackend("cpu", { precision: "f64" });
}

/**
 * Runs `fn` with `backend` selected, then selects again the backend (and precision) that was in
 * use before, also when `fn` throws or `backend` fails to start, so one test's choice never leaks
 * into the next.
 */
export async function withBackend<T>(
  backend: TestBackend,
  fn: () => Promise<T>,
  opts: BackendOptions = {},
): Promise<T> {
  const before = await backendInfo();
  try {
    // Inside the try: a backend that fails to start leaves its rejection as the current backend.
    await setBackend(backend, opts);
    return await fn();
  } finally {
    await setBackend(before.name, { precision: before.precision });
  }
}

/** Runs `fn` on the float64 CPU reference, then returns to the backend in use before. */
export function inF64(fn: () => Promise<void>): Promise<void> {
  return withBackend("cpu", fn, { precision: "f64" });
}

// JETFOLD_REQUIRE_GPU=1 (set by .ci/run once it installed the software adapter): none is a failure.
const GPU_REQUIRED = Deno.env.get("JETFOLD_REQUIRE_GPU") === "1";

/**
 * Registers `fn` once per backend, as `name [cpu]`, `name [webgpu]` and `name [wasm]`: the CPU
 * and wasm always, WebGPU where an adapter exists (listed as ignored, by name, where none does,
 * unless JETFOLD_REQUIRE_GPU is 1). Each copy runs with its backend selected in f32, and gets its
 * name to pick shapes or tolerances; the backend in use before is restored afterwards even when the test fails. An
 * adapter whose device fails to open fails the WebGPU copy rather than hiding it.
 */
export function forEachBackend(name: string, fn: (backend: TestBackend) => Promise<void>): void {
  for (const backend of ["cpu", "webgpu", "wasm"] as const) {
    const gpu = backend === "webgpu";
    Deno.test({
      name: `${name} [${backend}]`,
      ignore: gpu && !HAS_ADAPTER && !GPU_REQUIRED,
      // The device, its pipelines and pooled buffers outlive a test by design.
      sanitizeResources: !gpu,
      sanitizeOps: !gpu,
      fn: () => withBackend(backend, () => fn(backend)),
    });
  }
}

/** Reads a tensor's values as numbers (float64 on the f64 CPU backend, which reads back in float64). */
export async function values(t: Tensor): Promise<number[]> {
  return Array.from(await t.data());
}

/**
 * Checks the vjp of `f` (scalar f32 output) at `xs` against central finite differences along a
 * random direction. Call `useF64()` first: in float64, `eps = 1e-5` gives ~1e-9 truncation error.
 */
export async function checkGradFD(
  f: (...xs: Tensor[]) => Tensor,
  xs: readonly Tensor[],
  opts: { seed?: number; eps?: number; atol?: number; rtol?: number; msg?: string } = {},
): Promise<void> {
  const { seed = 1, eps = 1e-5, atol = 1e-6, rtol = 1e-5, msg = "" } = opts;
  const dirs = xs.map((x, i) => tensor(randomValues(x.size, seed + 31 * i), { shape: x.shape }));
  const grads: Tensor[] = grad(f, { argnums: xs.map((_, i) => i) })(...xs);
  let analytic = 0;
  for (let i = 0; i < xs.length; i++) {
    const g = await values(grads[i]), d = await values(dirs[i]);
    for (let j = 0; j < g.length; j++) analytic += g[j] * d[j];
  }
  const shifted = (s: number) => f(...xs.map((x, i) => x.add(dirs[i].mul(s))));
  const [hi] = await values(shifted(eps));
  const [lo] = await values(shifted(-eps));
  const numeric = (hi - lo) / (2 * eps);
  assertClose([analytic], [numeric], { atol, rtol, msg: `${msg} directional derivative` });
}

/** Asserts that `fn` throws (or rejects with) an Error whose message contains every fragment. */
export async function assertThrowsMsg(fn: () => unknown, ...fragments: string[]): Promise<void> {
  let err: unknown;
  try {
    await fn();
  } catch (e) {
    err = e;
  }
  if (!(err instanceof Error)) throw new Error(`expected an Error containing ${JSON.stringify(fragments)}, got ${err}`);
  for (const f of fragments) {
    if (!err.message.includes(f)) {
      throw new Error(`error message ${JSON.stringify(err.message)} lacks ${JSON.stringify(f)}`);
    }
  }
}
