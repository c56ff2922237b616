// Builds dist/jetfold.js: mod.ts as one ES module for browsers, with the same exports.

const ROOT = new URL("../", import.meta.url);

/** The browser bundle's path, relative to the repository root. */
export const BUNDLE = "dist/jetfold.js";

/**
 * Bundles `entry` (a path relative to the repository root) and everything it imports, npm packages
 * included, into the single ES module `out`, for browsers (Deno's bundler, esbuild underneath).
 */
export async function bundle(entry: string, out: string | URL, opts: { minify?: boolean } = {}): Promise<void> {
  const args = ["bundle", "--quiet", "--platform", "browser", "--output", out instanceof URL ? out.pathname : out];
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
  console.log(`wrote ${BUNDLE} (${(size / 1024).toFixed(0)} KiB): import it from a page, see README.md`);
}
