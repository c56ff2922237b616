// The built-in kernel variants against the tuner's choices on Chromium's WebGPU adapter
// (SwiftShader, headless): bundles bench/kernel_variants_page.ts, serves it from 127.0.0.1 and
// prints the page's lines (matmul 256/512/1024 with GFLOP/s, row sums, logsumexp, the delta-rule scan).
// Usage: deno run -A bench/kernel_variants_browser.ts [rounds=5] [only=matmul|kernels]
// (-A: playwright-core reads /proc at import.) Uses the system's Chromium; downloads nothing.

import { bundle } from "../tools/build.ts";
import { serveFiles } from "../tools/serve.ts";
import { CHROMIUM, CHROMIUM_FLAGS } from "../tools/chromium.ts";

const TIMEOUT_MS = 20 * 60_000;

const dir = await Deno.makeTempDir({ prefix: "jetfold-kv-" });
await bundle("bench/kernel_variants_page.ts", `${dir}/page.js`);
await Deno.writeTextFile(
  `${dir}/index.html`,
  '<!doctype html><meta charset="utf-8"><title>kernel variants</title><script type="module" src="page.js"></script>',
);
const server = serveFiles({ "/kv/": new URL(`file://${dir}/`) }, { home: "/kv/" });
const { chromium } = await import("playwright-core");
const browser = await chromium.launch({ executablePath: CHROMIUM, args: [...CHROMIUM_FLAGS], headless: true });
try {
  const page = await browser.newPage();
  const finished = new Promise<boolean>((resolve) => {
    page.on("console", (m) => {
      const text = m.text();
      if (!text.startsWith("kv ")) return;
      const line = text.slice(3);
      if (line === "done") resolve(true);
      else if (line.startsWith("error")) {
        console.error(line);
        resolve(false);
      } else console.log(line);
    });
    page.on("pageerror", (e) => {
      console.error(`uncaught: ${e.message}`);
      resolve(false);
    });
  });
  await page.goto(`http://127.0.0.1:${server.addr.port}/kv/?${Deno.args.join("&")}`);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const ok = await Promise.race([
    finished,
    new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(false), TIMEOUT_MS)),
  ]);
  clearTimeout(timer);
  if (!ok) Deno.exitCode = 1;
} finally {
  await browser.close();
  await server.shutdown();
  await Deno.remove(dir, { recursive: true });
}
