// Takes docs/page.png: the demo page after a whole run, in headless Chromium with WebGPU.
// deno run -A tools/screenshot.ts [page options, e.g. seed=1 pretrain=100] (-A: playwright-core needs it)

import { BUNDLE, bundle } from "./build.ts";
import { serveFiles, SITE } from "./serve.ts";
import { CHROMIUM, CHROMIUM_FLAGS } from "./chromium.ts";

const OUT = new URL("../docs/page.png", import.meta.url);

await bundle("mod.ts", BUNDLE);
const server = serveFiles(SITE);
const { chromium } = await import("playwright-core");
const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: [...CHROMIUM_FLAGS],
});
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  const query = [...Deno.args, "autorun"].join("&");
  await page.goto(`http://127.0.0.1:${server.addr.port}/web/?${query}`);
  await page.waitForFunction("['done', 'error'].includes(document.body.dataset.state)", null, {
    timeout: 20 * 60_000,
    polling: 1000,
  });
  await Deno.mkdir(new URL(".", OUT), { recursive: true });
  await page.screenshot({ path: OUT.pathname, fullPage: true });
  const { size } = await Deno.stat(OUT);
  console.log(`wrote ${OUT.pathname} (${(size / 1024).toFixed(0)} KiB)`);
} finally {
  await browser.close();
  await server.shutdown();
}
