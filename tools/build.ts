// Builds dist/jetfold.js: mod.ts as one ES module for browsers, with the same exports, and beside
// it dist/jetfold_worker.js, the Wasm backend's threads.

import { WEB_WORKER } from "../core/wasm/workers.ts";

const ROOT = new URL("../", import.meta.url);

/** The browser bundle's path, relative to the repository root. */
export const BUNDLE = "dist/jetfold.js";

/**
 * Bundles `entry` (a path relative to the repository root) and everything it imports, npm packages
 * included, into the single ES module `out`, for browsers (Deno's bundler, esbuild underneath); and
 * the Wasm backend's worker script (core/wasm/worker.ts) into jetfold_worker.js beside it, where
 * the bundle looks for it when it starts threads.
 */
export async function bundle(entry: string, out: string | URL, opts: { minify?: boolean } = {}): Promise<void> {
  const path = out instanceof URL ? out.pathname : out;
  const worker = path.slice(0, path.lastIndexOf("/") + 1) + WEB_WORKER;
  await Promise.all([bundleOne(entry, path, opts), bundleOne("core/wasm/worker.ts", worker, opts)]);
}

async function bundleOne(entry: string, out: string, opts: { minify?: boolean }): Promise<void> {
  const args = ["bundle", "--quiet", "--platform", "browser", "--output", out];
  if (opts.minify) args.push("--minify");
  const done = await new Deno.Command(Deno.execPath(), {
    args: [...args, entry],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!done.success) {
    const why = new TextDecoder().decode(done.stderr).trim() || `exit status ${done.code}`;
    throw new Error(`bundling ${entry} failed: ${why}`);
  }
}

if (import.meta.main) {
  await bundle("mod.ts", BUNDLE);
  const { size } = await Deno.stat(new URL(BUNDLE, ROOT));
  console.log(
    `wrote ${BUNDLE} (${(size / 1024).toFixed(0)} KiB) and dist/${WEB_WORKER}: import the first from a page, ` +
      "serve both from one folder, see README.md",
  );
}
