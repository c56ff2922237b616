// Talks to a Hugging Face hub: asks a resolve URL for a file's commit and ETag, and downloads it resumably.

/** How far a download has come; `total` is unknown when the server sends no length. */
export interface HubProgress {
  /** The file inside the repo, e.g. "model.safetensors". */
  readonly file: string;
  /** Bytes of the file on disk so far, a resumed transfer's earlier bytes included. */
  readonly loaded: number;
  /** The file's size in bytes, where the server says it. */
  readonly total?: number;
}

/** What a resolve URL says of a file without sending it. */
export interface RemoteFile {
  /** The commit the revision resolved to (X-Repo-Commit). */
  readonly commit: string;
  /** The blob's name in the cache: the ETag (for LFS files the SHA-256 of the content), unquoted. */
  readonly etag: string;
  readonly size?: number;
  /** Where the bytes come from: the resolve URL itself, or where it redirects (a CDN, for LFS files). */
  readonly url: string;
}

/** Names the file and the fetch for every error. */
export interface Request {
  readonly repo: string;
  readonly revision: string;
  readonly file: string;
  readonly headers: Readonly<Record<string, string>>;
  /** The hub's base URL; only requests to its host carry the token. */
  readonly endpoint: string;
  readonly signal?: AbortSignal;
}

/** Refuses, in one sentence, to open a connection the program has no permission for (never prompts). */
export async function checkNetPermission(url: URL, what: string): Promise<void> {
  const host = url.port === "" ? url.hostname : `${url.hostname}:${url.port}`;
  const { state } = await Deno.permissions.query({ name: "net", host });
  if (state !== "granted") {
    throw new Deno.errors.NotCapable(
      `${what} needs network access to ${host}, which this program does not have: run it with --allow-net=${host}, ` +
        `or put the file in the Hugging Face cache first`,
    );
  }
}

function statusError(res: Response, url: string, req: Request): Error {
  const code = res.headers.get("x-error-code");
  const where = `${url} answered ${res.status}`;
  if (res.status === 401 || res.status === 403) {
    return new Deno.errors.PermissionDenied(
      `${req.repo} is private or gated, or the token is not allowed to read it (${where}): pass a token that is`,
    );
  }
  if (res.status === 404 && code === "RepoNotFound") {
    return new Deno.errors.NotFound(`the Hub has no repo ${req.repo}, or it is private (${where})`);
  }
  if (res.status === 404 && code === "RevisionNotFound") {
    return new Deno.errors.NotFound(`${req.repo} has no revision ${req.revision} (${where})`);
  }
  if (res.status === 404) {
    return new Deno.errors.NotFound(`${req.repo} has no file ${req.file} at revision ${req.revision} (${where})`);
  }
  return new Error(`fetching ${req.file} of ${req.repo} failed: ${where} ${res.statusText}`);
}

function unquote(etag: string): string {
  return etag.replace(/^W\//, "").replace(/^"|"$/g, "");
}

/**
 * Asks a resolve URL (HEAD, redirects not followed) for the file's commit, ETag and size. A redirect that carries
 * the metadata (an LFS file on a CDN) gives the download URL; one that does not (a renamed repo) is followed.
 */
export async function headFile(url: string, req: Request): Promise<RemoteFile> {
  for (let hops = 0; hops < 5; hops++) {
    const res = await fetch(url, { method: "HEAD", redirect: "manual", headers: req.headers, signal: req.signal });
    await res.body?.cancel();
    const commit = res.headers.get("x-repo-commit");
    const location = res.headers.get("location");
    if (res.status >= 300 && res.status < 400 && location !== null && commit === null) {
      url = new URL(location, url).href;
      continue;
    }
    if (!(res.ok || (res.status >= 300 && res.status < 400))) throw statusError(res, url, req);
    const etag = res.headers.get("x-linked-etag") ?? res.headers.get("etag");
    if (commit === null || etag === null) {
      throw new Error(
        `${url} sent no ${commit === null ? "X-Repo-Commit" : "ETag"} header: is the endpoint a Hugging Face hub?`,
      );
    }
    const size = Number(res.headers.get("x-linked-size") ?? res.headers.get("content-length") ?? NaN);
    return {
      commit,
      etag: unquote(etag),
      size: Number.isFinite(size) ? size : undefined,
      url: location === null ? url : new URL(location, url).href,
    };
  }
  throw new Error(`${url} redirected more than 5 times`);
}

async function sizeOf(path: string): Promise<number> {
  try {
    return (await Deno.stat(path)).size;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return 0;
    throw e;
  }
}

/** Options for {@linkcode downloadBlob}. */
export interface DownloadOptions {
  readonly onProgress?: (progress: HubProgress) => void;
  /** How many times a broken transfer is resumed before the error is thrown. */
  readonly retries: number;
}

/**
 * Downloads `remote` into `dest`, through `dest + ".incomplete"`: a partial file left by a broken transfer (in this
 * call or an earlier one) is continued with a Range request, and only a complete file is renamed into place.
 */
export async function downloadBlob(
  remote: RemoteFile,
  dest: string,
  req: Request,
  options: DownloadOptions,
): Promise<void> {
  const partial = `${dest}.incomplete`;
  for (let attempt = 0;; attempt++) {
    let have = await sizeOf(partial);
    if (remote.size !== undefined && have > remote.size) have = 0;
    let total = remote.size;
    try {
      const headers: Record<string, string> = { ...req.headers };
      // The token is for the hub, not for a CDN it redirects to (whose signed URL needs none).
      if (new URL(remote.url).host !== new URL(req.endpoint).host) delete headers.Authorization;
      if (have > 0) headers.Range = `bytes=${have}-`;
      const res = await fetch(remote.url, { headers, signal: req.signal });
      if (res.status === 416 && have > 0 && have === remote.size) {
        await res.body?.cancel();
      } else {
        if (!res.ok) {
          await res.body?.cancel();
          throw statusError(res, remote.url, req);
        }
        const resumed = res.status === 206;
        if (!resumed) have = 0; // the server ignored the Range header and sends it all
        const length = Number(res.headers.get("content-length") ?? NaN);
        total ??= Number.isFinite(length) ? have + length : undefined;
        const out = await Deno.open(partial, { write: true, create: true, append: resumed, truncate: !resumed });
        try {
          options.onProgress?.({ file: req.file, loaded: have, total });
          for await (const chunk of res.body ?? []) {
            for (let done = 0; done < chunk.length;) done += await out.write(chunk.subarray(done));
            have += chunk.length;
            options.onProgress?.({ file: req.file, loaded: have, total });
          }
        } finally {
          out.close();
        }
        if (total !== undefined && have !== total) {
          throw new Error(`the transfer ended after ${have} of ${total} bytes`);
        }
      }
      await Deno.rename(partial, dest);
      return;
    } catch (e) {
      const final = e instanceof Deno.errors.NotFound || e instanceof Deno.errors.PermissionDenied ||
        req.signal?.aborted || attempt >= options.retries;
      if (!final) continue;
      if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.PermissionDenied) throw e;
      throw new Error(
        `downloading ${req.file} of ${req.repo} from ${remote.url} broke off after ${have} of ${total ?? "?"} bytes ` +
          `(${(e as Error).message}); ${partial} keeps them and the next call resumes from there`,
        { cause: e },
      );
    }
  }
}
