// The browser suite's driver, run by tests/browser/browser_test.ts in a process of its own (with
// all permissions: playwright-core reads /proc/sys at import, which Deno grants only with -A).
// Headless Chromium (Debian's, with WebGPU on SwiftShader) loads the bundle and runs the checks of
// tests/browser/page.ts and the demo page (web/), in one browser launch. Each check's outcome is
// one JSON line on stdout: {"step", "ok", "ms", "error"?}; a browser that cannot start, {"fatal"}.

import type { Browser, Page } from "playwright-core";
import * as jetfold from "../../mod.ts";
import { BUNDLE, bundle } from "../../tools/build.ts";
import { serveFiles } from "../../tools/serve.ts";
import { kernelCorpus } from "../core/webgpu/corpus.ts";
import { TOL } from "../core/webgpu/spec_checks.ts";
import { assertClose } from "../numeric.ts";
import type { Checks } from "./page.ts";
// The demo page's pipeline, run here on the CPU backend to compare with the page's numbers.
import { runDemo } from "../../web/demo.js";
import { CHROMIUM, CHROMIUM_FLAGS } from "../../tools/chromium.ts";

const ROOT = new URL("../../", import.meta.url);
// The demo page's quick run: every phase, a few steps each.
const QUICK = { seed: 3, pretrain: 4, supernet: 3, tune: 2 };
const TIMEOUT = 240_000;
// What the Wasm backend's line on the demo page says of its threads (one per core; Chromium's
// hardwareConcurrency is Deno's).
const ON_THREADS = navigator.hardwareConcurrency > 1 ? `on ${navigator.hardwareConcurrency} threads` : "on one thread";

// What the functions evaluated in the page use of its DOM (Deno's types have none).
declare const document: {
  body: { dataset: Record<string, string | undefined> };
  querySelector(selector: string): { textContent: string | null } | null;
  querySelectorAll(selector: string): { length: number };
  getElementById(id: string): { textContent: string | null } | null;
};

type Window = { jetfoldChecks: Checks; jetfoldDemo?: { state: string; error: string | null; result: DemoResult } };
type DemoResult = Awaited<ReturnType<typeof runDemo>>;

// Serves the fresh bundle as /dist/jetfold.js, the checks page under /checks/, and web/ as is.
async function site(dir: string): Promise<Deno.HttpServer<Deno.NetAddr>> {
  await Deno.mkdir(`${dir}/dist`);
  await Deno.mkdir(`${dir}/checks`);
  await Promise.all([
    bundle("mod.ts", `${dir}/${BUNDLE}`),
    bundle("tests/browser/page.ts", `${dir}/checks/page.js`),
  ]);
  const html =
    '<!doctype html><meta charset="utf-8"><title>checks</title><script type="module" src="page.js"></script>';
  await Deno.writeTextFile(`${dir}/checks/index.html`, html);
  const dirUrl = (p: string) => new URL(`file://${dir}/${p}/`);
  return serveFiles({ "/web/": new URL("web/", ROOT), "/dist/": dirUrl("dist"), "/checks/": dirUrl("checks") });
}

async function launch(): Promise<Browser> {
  try {
    const { chromium } = await import("playwright-core");
    return await chromium.launch({
      executablePath: CHROMIUM,
      args: [...CHROMIUM_FLAGS],
      headless: true,
      timeout: 60_000,
    });
  } catch (e) {
    throw new Error(`${CHROMIUM} does not start: ${(e as Error).message}`, { cause: e });
  }
}

// A page that collects its uncaught errors and console errors, so a step can say none happened.
async function open(browser: Browser, url: string, init?: () => void): Promise<[Page, string[]]> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(`uncaught: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().includes("favicon") && !/404 \(Not Found\)/.test(m.text())) {
      errors.push(`console: ${m.text()}`);
    }
  });
  if (init) await page.addInitScript(init);
  await page.goto(url);
  return [page, errors];
}

function expectEqual(actual: unknown, expected: unknown, what: string): void {
  const [a, e] = [JSON.stringify(actual), JSON.stringify(expected)];
  if (a !== e) throw new Error(`${what}: got ${a.slice(0, 400)}, expected ${e.slice(0, 400)}`);
}

// Clicks through the demo page with the quick settings on `backend` and returns the run's numbers.
async function clickThrough(page: Page, backend: string, says: string): Promise<DemoResult> {
  const ready = () => !["loading", "running"].includes(document.body.dataset.state ?? "loading");
  await page.waitForFunction(ready, null, { timeout: 60_000 });
  await page.selectOption("#backend", backend);
  for (const [name, v] of Object.entries(QUICK)) await page.fill(`#${name}`, String(v));
  await page.click("#run");
  await page.waitForFunction(() => ["done", "error"].includes(document.body.dataset.state ?? ""), null, {
    timeout: TIMEOUT,
    polling: 250,
  });
  const demo = await page.evaluate(() => (globalThis as unknown as Window).jetfoldDemo!);
  if (demo.state !== "done") throw new Error(`the demo page failed on ${backend}: ${demo.error}`);
  const drawn = await page.evaluate(() => {
    const d = (globalThis as unknown as { jetfoldDemo: { chart: { points: number }; heatmap: { filled: number } } })
      .jetfoldDemo;
    return {
      points: d.chart.points,
      cells: d.heatmap.filled,
      chosen: document.querySelectorAll("#heatmap td.chosen").length,
      sample: document.querySelector("#sample .generated")?.textContent ?? "",
      summary: document.querySelectorAll("#summary dt").length,
      backendLine: document.getElementById("backend-line")!.textContent!,
    };
  });
  const steps = QUICK.pretrain + QUICK.supernet + QUICK.tune;
  expectEqual(
    [drawn.points, drawn.cells, drawn.chosen, drawn.sample.length > 0, drawn.summary],
    [steps, 9, 3, true, 7],
    `the demo page on ${backend}: loss points, heatmap cells, chosen cells, a sample, summary rows`,
  );
  if (!drawn.backendLine.includes(says)) throw new Error(`the page says: ${drawn.backendLine}`);
  return demo.result;
}

const comparable = (r: DemoResult) => ({ ...r, seconds: 0, backend: null });

/** Runs `fn` as the check `name` and reports its outcome as one line; never throws. */
async function step(name: string, fn: () => Promise<void>): Promise<void> {
  const t0 = performance.now();
  let error: string | undefined;
  try {
    await fn();
  } catch (e) {
    error = e instanceof Error ? (e.stack ?? e.message) : String(e);
  }
  const ms = Math.round(performance.now() - t0);
  console.log(JSON.stringify({ step: name, ok: error === undefined, ms, error }));
}

async function main(): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "jetfold_browser_" });
  const server = await site(dir);
  const base = `http://127.0.0.1:${server.addr.port}`;
  let browser: Browser | null = null;
  try {
    try {
      browser = await launch();
    } catch (e) {
      console.log(JSON.stringify({ fatal: (e as Error).message }));
      return;
    }
    // Deno's runs of the demo, to compare with the pages', go on while the browser runs its pages
    // (the driver waits on the browser most of the time). One after the other: they share the
    // process's backend choice.
    const cpuRun = runDemo({ ...QUICK, backend: "cpu" });
    const denoRuns = { cpu: cpuRun, wasm: cpuRun.then(() => runDemo({ ...QUICK, backend: "wasm" })) };
    for (const run of [denoRuns.cpu, denoRuns.wasm]) run.catch(() => {}); // reported by the steps that await them
    // The demo pages run at once, each in a page of its own, beside the checks page: the CPU run
    // keeps one renderer busy, the WebGPU run mostly the GPU process compiling shaders. One after
    // the other they took 100 s of the suite's 135.
    const tuneOff = () => {
      // The tuner is off on the WebGPU page: timing its candidates on SwiftShader took a quarter
      // of the page's WebGPU run, and its choice never changes a result (its own check tests it).
      (globalThis as { JETFOLD_TUNE?: string }).JETFOLD_TUNE = "0";
    };
    const demoRun = async (backend: string, says: string, init?: () => void) => {
      const [demo, demoErrors] = await open(browser!, `${base}/web/`, init);
      const result = await clickThrough(demo, backend, says);
      expectEqual(demoErrors, [], `errors on the demo page (${backend})`);
      await demo.close();
      return result;
    };
    const pageCpu = demoRun("cpu", "CPU backend (chosen above)");
    pageCpu.catch(() => {}); // reported by the step that awaits it
    const demos = Promise.all([
      step(
        "the demo page trains, searches and samples: on the CPU with Deno's numbers, on WebGPU within f32 tolerances",
        async () => {
          const gpu = await demoRun("webgpu", "Running on WebGPU: google swiftshader", tuneOff);
          const cpu = await pageCpu;
          expectEqual(comparable(cpu), comparable(await denoRuns.cpu), "the page's CPU run against Deno's");
          // Within the spec table's f32 tolerances even after training (measured: 1e-7 relative).
          for (const phase of ["pretrain", "supernet", "tune"] as const) {
            assertClose(gpu.losses[phase], cpu.losses[phase], { ...TOL, msg: `${phase} losses` });
          }
          assertClose(gpu.visits.map((v) => v.score), cpu.visits.map((v) => v.score), { ...TOL, msg: "scores" });
          expectEqual([gpu.choice, gpu.sample.ids], [cpu.choice, cpu.sample.ids], "the choice and the sample");
        },
      ),
      step(
        "the demo page on the Wasm backend (on the page's threads) gives Deno's Wasm numbers, bit for bit",
        async () => {
          const page = await demoRun("wasm", `Wasm SIMD backend (chosen above), ${ON_THREADS}`);
          expectEqual(comparable(page), comparable(await denoRuns.wasm), "the page's Wasm run against Deno's");
        },
      ),
      step("without WebGPU the demo page says so, runs on the Wasm backend, and stops when asked", async () => {
        const [demo, demoErrors] = await open(browser!, `${base}/web/?pretrain=5000`, () => {
          Object.defineProperty(Object.getPrototypeOf(navigator), "gpu", { get: () => undefined });
        });
        await demo.waitForFunction(() => document.body.dataset.state === "idle", null, { timeout: 60_000 });
        const adapter = await demo.textContent("#adapter");
        if (!adapter?.includes("no WebGPU")) throw new Error(`the page says: ${adapter}`);
        await demo.click("#run");
        const firstLoss = () =>
          (globalThis as unknown as { jetfoldDemo?: { chart: { points: number } } })
            .jetfoldDemo?.chart.points! > 0;
        // Polled on a timer, not on animation frames, which a page busy training may not draw; and 5,000
        // pretraining steps (ended by Stop) leave the run going long after its first loss.
        await demo.waitForFunction(firstLoss, null, { timeout: 60_000, polling: 100 });
        const line = await demo.textContent("#backend-line");
        if (!line?.includes("Wasm SIMD backend (no WebGPU adapter found")) throw new Error(`it says: ${line}`);
        // A run that already ended (done or failed) cannot be stopped: say how it ended instead of timing out.
        const ended = await demo.evaluate(() => {
          const api = (globalThis as unknown as { jetfoldDemo?: { state: string; error: string | null } }).jetfoldDemo;
          return api?.state === "running" ? null : `${api?.state}: ${api?.error}`;
        });
        if (ended !== null) throw new Error(`the run ended before Stop was clicked (${ended})`);
        await demo.click("#stop");
        await demo.waitForFunction(() => document.body.dataset.state === "stopped", null, { timeout: 60_000 });
        expectEqual(demoErrors, [], "errors on the demo page");
        await demo.close();
      }),
    ]);

    const [page, errors] = await open(browser, `${base}/checks/`);
    await page.waitForFunction(() => "jetfoldChecks" in globalThis, null, { timeout: 60_000 });
    const call = <K extends keyof Checks>(name: K, ...args: Parameters<Checks[K]>) =>
      page.evaluate(([n, a]) => {
        const checks = (globalThis as unknown as Window).jetfoldChecks as unknown as Record<
          string,
          (...xs: unknown[]) => unknown
        >;
        return checks[n](...a);
      }, [name as string, args as unknown[]] as const) as Promise<Awaited<ReturnType<Checks[K]>>>;

    await step(
      "the bundle has mod.ts's exports, the served page is cross-origin isolated, file functions say what to use",
      async () => {
        const names = await page.evaluate(async (url) => Object.keys(await import(url)).sort(), `${base}/${BUNDLE}`);
        expectEqual(names, Object.keys(jetfold).sort(), "the bundle's exports");
        expectEqual(
          await page.evaluate(() => (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated),
          true,
          "crossOriginIsolated (COOP/COEP)",
        );
        const message = await call("fileError");
        if (!message.includes("no file system here") || !message.includes("encodeSafetensors")) {
          throw new Error(`saveSafetensors in a browser says: ${message}`);
        }
      },
    );

    await step("every kernel the spec table, the models and PostNAS need compiles with Tint", async () => {
      const limits = await call("limits");
      expectEqual([limits.adapter, limits.maxStorageBuffers], ["google swiftshader", 10], "the adapter");
      const kernels = await kernelCorpus(limits);
      const failures = await call("compileKernels", kernels, limits.maxStorageBuffers - 2);
      if (failures.length > 0) {
        throw new Error(
          `${failures.length} of ${kernels.length} kernels fail:\n  ${failures.slice(0, 8).join("\n  ")}`,
        );
      }
    });

    await step("the primitive spec table on WebGPU matches the CPU reference", async () => {
      // As many cases as tests/core/webgpu/prims_test.ts runs under Deno.
      const checked = await call("checkSpecTable", { runs: 12, gradRuns: 6, seed: 20260 });
      if (checked < 100) throw new Error(`only ${checked} cases ran`);
    });

    await step("gradients on WebGPU match closed forms and the CPU reference", () => call("checkGradients"));

    await step(
      "the matmul tuner measures a size class once, keeps its choice in IndexedDB, falls back to memory, can be off",
      async () => void await call("checkTuning"),
    );

    await step(
      "the subgroup reduction variants (sums, maxima, logsumexp, softmax, long rows) and split scans match float64",
      async () => {
        const ran: string[] = await call("checkVariants");
        const subgroups = ran.filter((n) => n.startsWith("subgroup")),
          splits = ran.filter((n) => n.startsWith("split"));
        if (subgroups.length < 2 || splits.length < 3) throw new Error(`the variants that ran: ${ran}`);
      },
    );

    await step(
      "the Wasm backend runs on the page's threads (workers from jetfold_worker.js), with one thread's bits",
      async () => {
        const r = await call("checkWasmThreads");
        const cores = await page.evaluate(() => navigator.hardwareConcurrency);
        expectEqual(r.threads, cores, "threads");
        if (!(r.split.matmuls > 0 && r.split.loops > 0 && r.split.scans > 0)) {
          throw new Error(`split: ${JSON.stringify(r)}`);
        }
        if (!(r.workerShares.matmuls > 0 && r.workerShares.loops > 0)) {
          throw new Error(`the workers computed nothing: ${JSON.stringify(r)}`);
        }
      },
    );

    await step("a shader Tint rejects, and a rejected submit, fail with their root cause", async () => {
      const compile = await call("checkCompileError");
      if (!compile.includes("google swiftshader")) throw new Error(`the compile error does not name the adapter`);
      await call("checkValidationError");
    });
    await step("the checks page logs no errors", () => Promise.resolve(expectEqual(errors, [], "errors")));
    await page.close();
    await demos;
  } finally {
    await browser?.close();
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) {
  await main();
}
