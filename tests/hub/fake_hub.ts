// A Hugging Face hub on 127.0.0.1 for the tests: resolve URLs (LFS files redirect to a blob URL), Range requests,
// the model-info API, a gated repo, and transfers that break off after a given number of bytes.

/** A running fake hub. */
export interface FakeHub {
  readonly endpoint: string;
  readonly commit: string;
  /** Every request, as "METHOD /path [range]". */
  readonly log: string[];
  /** Files of org/tiny by name; those over 64 KiB are served as LFS files. */
  readonly files: ReadonlyMap<string, Uint8Array>;
  /** The next `count` downloads of a file's bytes stop after `bytes` bytes with an error. */
  breakAfter(bytes: number, count?: number): void;
  /** Whether Range headers are ignored (a server that always sends the whole file). */
  ignoreRange: boolean;
  /** Where LFS files redirect to: "" (this server, by a relative URL) or another server's base URL (a CDN). */
  lfsBase: string;
  close(): Promise<void>;
}

const TOKEN = "hf_test_token";

async function sha256(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Starts a fake hub serving `files` as the repo org/tiny (and as the gated org/gated, which wants a token). */
export async function startFakeHub(files: Record<string, Uint8Array>): Promise<FakeHub> {
  const commit = "0123456789abcdef0123456789abcdef01234567";
  const etags = new Map<string, string>();
  for (const [name, bytes] of Object.entries(files)) etags.set(name, await sha256(bytes));
  const byEtag = new Map([...etags].map(([name, etag]) => [etag, files[name]]));
  const log: string[] = [];
  let breakBytes = 0, breaks = 0;

  const body = (bytes: Uint8Array, req: Request, hub: FakeHub): Response => {
    const range = /^bytes=(\d+)-$/.exec(req.headers.get("range") ?? "");
    const start = range && !hub.ignoreRange ? Number(range[1]) : 0;
    if (start >= bytes.length && start > 0) return new Response(null, { status: 416 });
    const part = bytes.subarray(start);
    const headers: Record<string, string> = { "content-length": String(part.length) };
    if (start > 0) headers["content-range"] = `bytes ${start}-${bytes.length - 1}/${bytes.length}`;
    if (req.method === "HEAD") return new Response(null, { status: start > 0 ? 206 : 200, headers });
    let stream: BodyInit = part as Uint8Array<ArrayBuffer>;
    if (breaks > 0) {
      breaks--;
      const cut = breakBytes;
      let sent = false;
      stream = new ReadableStream({
        pull(controller) {
          if (sent) return controller.close(); // short of the Content-Length: the client sees a broken transfer
          controller.enqueue(part.slice(0, cut));
          sent = true;
        },
      });
    }
    return new Response(stream, { status: start > 0 ? 206 : 200, headers });
  };

  const handle = (req: Request, hub: FakeHub): Response => {
    const url = new URL(req.url);
    const range = req.headers.has("range") ? ` ${req.headers.get("range")}` : "";
    log.push(`${req.method} ${url.pathname}${range}${req.headers.has("authorization") ? " (with token)" : ""}`);
    const api = /^\/api\/models\/([^/]+\/[^/]+)\/revision\/([^/]+)$/.exec(url.pathname);
    if (api) {
      if (api[1] !== "org/tiny") return new Response("{}", { status: 404 });
      return Response.json({ sha: commit, siblings: Object.keys(files).map((rfilename) => ({ rfilename })) });
    }
    const lfs = /^\/lfs\/([0-9a-f]{64})$/.exec(url.pathname);
    if (lfs) return byEtag.has(lfs[1]) ? body(byEtag.get(lfs[1])!, req, hub) : new Response(null, { status: 404 });
    const m = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
    const error = (code: string) => new Response(null, { status: 404, headers: { "x-error-code": code } });
    if (!m) return new Response(null, { status: 404 });
    const [, repo, revision, file] = m.map(decodeURIComponent);
    if (repo === "org/gated" && req.headers.get("authorization") !== `Bearer ${TOKEN}`) {
      return new Response(null, { status: 401 });
    }
    if (repo !== "org/tiny" && repo !== "org/gated") return error("RepoNotFound");
    if (revision !== "main" && revision !== commit) return error("RevisionNotFound");
    const bytes = files[file];
    if (bytes === undefined) return error("EntryNotFound");
    const etag = etags.get(file)!;
    if (bytes.length > 65536) {
      const headers = {
        location: `${hub.lfsBase}/lfs/${etag}`,
        "x-repo-commit": commit,
        "x-linked-etag": `"${etag}"`,
        "x-linked-size": String(bytes.length),
      };
      return new Response(null, { status: 302, headers });
    }
    const res = body(bytes, req, hub);
    res.headers.set("x-repo-commit", commit);
    res.headers.set("etag", `"${etag}"`);
    return res;
  };

  const ready = Promise.withResolvers<number>();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: ({ port }) => ready.resolve(port) },
    (req) => handle(req, hub),
  );
  const port = await ready.promise;
  const hub: FakeHub = {
    endpoint: `http://127.0.0.1:${port}`,
    commit,
    log,
    files: new Map(Object.entries(files)),
    breakAfter(bytes, count = 1) {
      [breakBytes, breaks] = [bytes, count];
    },
    ignoreRange: false,
    lfsBase: "",
    close: () => server.shutdown(),
  };
  return hub;
}

export { TOKEN };
