// Serves the demo page (web/) and the browser bundle (dist/) on 127.0.0.1, cross-origin isolated.

import { BUNDLE, bundle } from "./build.ts";

const ROOT = new URL("../", import.meta.url);

const TYPES: Readonly<Record<string, string>> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
  json: "application/json",
  png: "image/png",
  svg: "image/svg+xml",
  safetensors: "application/octet-stream",
};

// Cross-origin isolation (SharedArrayBuffer, precise timers) needs these on every response.
const ISOLATED = {
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-embedder-policy": "require-corp",
  "cross-origin-resource-policy": "same-origin",
  "cache-control": "no-cache",
};

/** URL path prefixes (ending in "/") and the directories served under them. */
export type Mounts = Readonly<Record<string, URL>>;

/** The file a request path names under `mounts`, or null (outside them, or a dot segment). */
function fileFor(mounts: Mounts, path: string): URL | null {
  const segments = path.split("/");
  if (segments.some((s) => s.startsWith("."))) return null;
  const prefix = Object.keys(mounts).filter((p) => path.startsWith(p)).sort((a, b) => b.length - a.length)[0];
  if (prefix === undefined) return null;
  const rest = path.slice(prefix.length);
  return new URL(rest === "" || rest.endsWith("/") ? `${rest}index.html` : rest, mounts[prefix]);
}

/**
 * Serves the files under `mounts` read-only from 127.0.0.1 (port 0: any free one), with the
 * headers of a cross-origin isolated page; "/" redirects to `home`.
 */
export function serveFiles(
  mounts: Mounts,
  opts: { port?: number; home?: string; onListen?: (addr: Deno.NetAddr) => void } = {},
): Deno.HttpServer<Deno.NetAddr> {
  const home = opts.home ?? "/web/";
  return Deno.serve(
    { hostname: "127.0.0.1", port: opts.port ?? 0, onListen: opts.onListen ?? (() => {}) },
    async (req) => {
      if (req.method !== "GET" && req.method !== "HEAD") return new Response("read-only", { status: 405 });
      const path = decodeURIComponent(new URL(req.url).pathname);
      if (path === "/") return new Response(null, { status: 302, headers: { location: home } });
      const file = fileFor(mounts, path);
      if (file === null) return new Response("not found", { status: 404, headers: ISOLATED });
      try {
        const body = await Deno.readFile(file);
        const type = TYPES[path.endsWith("/") ? "html" : path.slice(path.lastIndexOf(".") + 1)] ?? "text/plain";
        return new Response(req.method === "HEAD" ? null : body, { headers: { ...ISOLATED, "content-type": type } });
      } catch {
        return new Response("not found", { status: 404, headers: ISOLATED });
      }
    },
  );
}

/** What `deno task serve` serves: the page, the bundle, and the docs' images. */
export const SITE: Mounts = {
  "/web/": new URL("web/", ROOT),
  "/dist/": new URL("dist/", ROOT),
  "/docs/": new URL("docs/", ROOT),
};

if (import.meta.main) {
  const at = Deno.args.indexOf("--port");
  const port = at >= 0 ? Number(Deno.args[at + 1]) : 8000;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`--port must be 0..65535, got ${Deno.args[at + 1]}`);
  }
  await bundle("mod.ts", BUNDLE);
  serveFiles(SITE, {
    port,
    onListen: (a) =>
      console.log(`jetfold's demo page: http://127.0.0.1:${a.port}/web/ (rebuilt ${BUNDLE}; Ctrl-C stops)`),
  });
}
