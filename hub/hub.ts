// Hub repo ids to local files: the Hugging Face cache first, else a resumable download into it from the endpoint.

import { dirname, join } from "./paths.ts";
import {
  blobPath,
  cachedCommit,
  cachedFile,
  checkFileName,
  isCommit,
  isRepoId,
  linkSnapshot,
  parseRepoId,
  repoFolder,
  type RepoRef,
  snapshotFiles,
  writeRef,
} from "./cache.ts";
import { checkNetPermission, downloadBlob, headFile, type HubProgress, type Request } from "./download.ts";

export { isRepoId, parseRepoId };
export type { HubProgress, RepoRef };

/** Options for {@linkcode hubFile} and {@linkcode hubSnapshot}; each defaults as huggingface_hub does. */
export interface HubOptions {
  /** Branch, tag or commit, when the repo id has no `@revision`. Default "main". */
  readonly revision?: string;
  /** The hub cache folder itself. Default `$HF_HUB_CACHE`, else `<home>/hub`. */
  readonly cacheDir?: string;
  /** Hugging Face's home folder. Default `$HF_HOME`, else `~/.cache/huggingface`. */
  readonly home?: string;
  /** The hub to download from. Default `$HF_ENDPOINT`, else https://huggingface.co. */
  readonly endpoint?: string;
  /** An access token for private or gated repos, sent as a Bearer token. */
  readonly token?: string;
  /** Never open a connection: files must be in the cache. Default true when `$HF_HUB_OFFLINE` is "1" or "true". */
  readonly offline?: boolean;
  /** Called as bytes arrive (and once at the start of each transfer). */
  readonly onProgress?: (progress: HubProgress) => void;
  /** How many times a broken transfer is resumed (with a Range request) within one call. Default 2. */
  readonly retries?: number;
  /** Aborts the requests. */
  readonly signal?: AbortSignal;
}

// Environment variables are read only where the program already has env permission, so nothing ever prompts.
function env(name: string): string | undefined {
  return Deno.permissions.querySync({ name: "env", variable: name }).state === "granted"
    ? Deno.env.get(name)
    : undefined;
}

function cacheDirOf(options: HubOptions): string {
  if (options.cacheDir !== undefined) return options.cacheDir;
  if (options.home !== undefined) return join(options.home, "hub");
  const hubCache = env("HF_HUB_CACHE");
  if (hubCache) return hubCache;
  const hfHome = env("HF_HOME");
  if (hfHome) return join(hfHome, "hub");
  const home = env("HOME") ?? env("USERPROFILE");
  if (home === undefined) {
    throw new Error("no Hugging Face cache folder: pass options.cacheDir, or allow reading HF_HOME or HOME");
  }
  return join(home, ".cache", "huggingface", "hub");
}

function offlineOf(options: HubOptions): boolean {
  return options.offline ?? ["1", "true", "yes", "on"].includes((env("HF_HUB_OFFLINE") ?? "").toLowerCase());
}

function endpointOf(options: HubOptions): string {
  return (options.endpoint ?? env("HF_ENDPOINT") ?? "https://huggingface.co").replace(/\/+$/, "");
}

function requestOf(ref: RepoRef, file: string, options: HubOptions): Request {
  // Sizes and Range offsets count the bytes as stored, so ask for them uncompressed (as huggingface_hub does).
  const headers: Record<string, string> = { "Accept-Encoding": "identity" };
  if (options.token !== undefined) headers.Authorization = `Bearer ${options.token}`;
  return {
    repo: ref.repo,
    revision: ref.revision,
    file,
    headers,
    endpoint: endpointOf(options),
    signal: options.signal,
  };
}

const encodePath = (path: string) => path.split("/").map(encodeURIComponent).join("/");

/**
 * The local path of one file of a Hub repo: `repo` is `org/name` or `org/name@revision` (branch, tag or commit).
 * A file already in the Hugging Face cache (`models--org--name/snapshots/<commit>/<file>`, the commit read from
 * `refs/<revision>`) is used without a connection. Otherwise it is downloaded from
 * `{endpoint}/{repo}/resolve/{revision}/{file}` into the cache's `blobs/` (through a `.incomplete` file that a
 * broken transfer leaves behind and the next try continues with a Range request), linked from its snapshot, and the
 * revision's ref recorded: the same layout Python's huggingface_hub reads and writes. Downloading needs net
 * permission for the endpoint's host; without it, or offline, the error says so in one sentence, as it does for a
 * bad repo id or a file the repo lacks.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { join } from "./paths.ts";
 * import { hubFile } from "../mod.ts";
 * // A cache as huggingface_hub leaves it, holding one file of org/tiny at main's commit.
 * const cacheDir = await Deno.makeTempDir(), commit = "a".repeat(40);
 * const folder = join(cacheDir, "models--org--tiny");
 * await Deno.mkdir(join(folder, "refs"), { recursive: true });
 * await Deno.writeTextFile(join(folder, "refs", "main"), commit);
 * await Deno.mkdir(join(folder, "snapshots", commit), { recursive: true });
 * await Deno.writeTextFile(join(folder, "snapshots", commit, "config.json"), "{}");
 * const path = await hubFile("org/tiny", "config.json", { cacheDir, offline: true });
 * assert.equal(await Deno.readTextFile(path), "{}");
 * await assert.rejects(hubFile("org/tiny", "vocab.json", { cacheDir, offline: true }), /not in the cache/);
 * await Deno.remove(cacheDir, { recursive: true });
 * ```
 */
export async function hubFile(repo: string, file: string, options: HubOptions = {}): Promise<string> {
  const ref = parseRepoId(repo, options.revision);
  checkFileName(file);
  const cacheDir = cacheDirOf(options);
  const known = await cachedCommit(cacheDir, ref);
  const cached = known === undefined ? undefined : await cachedFile(cacheDir, ref.repo, known, file);
  if (cached !== undefined) return cached;
  if (offlineOf(options)) {
    throw new Deno.errors.NotFound(
      `${file} of ${ref.repo}@${ref.revision} is not in the cache at ${repoFolder(cacheDir, ref.repo)}, ` +
        `and offline mode forbids downloading it`,
    );
  }
  const url = `${endpointOf(options)}/${ref.repo}/resolve/${encodeURIComponent(ref.revision)}/${encodePath(file)}`;
  await checkNetPermission(new URL(url), `downloading ${file} of ${ref.repo}`);
  const req = requestOf(ref, file, options);
  const remote = await headFile(url, req);
  const blob = blobPath(cacheDir, ref.repo, remote.etag);
  const have = await cachedFile(cacheDir, ref.repo, remote.commit, file);
  if (have === undefined) {
    await Deno.mkdir(join(repoFolder(cacheDir, ref.repo), "blobs"), { recursive: true });
    // huggingface_hub's lock file for the blob, so that two downloads of it (by either library) never interleave.
    const lockPath = join(cacheDir, ".locks", `models--${ref.repo.replaceAll("/", "--")}`, `${remote.etag}.lock`);
    await Deno.mkdir(dirname(lockPath), { recursive: true }); // join() keeps "..", and mkdir -p would make the lock a folder
    const lock = await Deno.open(lockPath, { create: true, write: true });
    try {
      await lock.lock(true);
      if (!(await Deno.stat(blob).then(() => true, () => false))) {
        await checkNetPermission(new URL(remote.url), `downloading ${file} of ${ref.repo}`);
        await downloadBlob(remote, blob, req, { onProgress: options.onProgress, retries: options.retries ?? 2 });
      }
    } finally {
      lock.close();
    }
  }
  await writeRef(cacheDir, ref, remote.commit);
  return have ?? await linkSnapshot(cacheDir, ref.repo, remote.commit, file, remote.etag);
}

/** Options for {@linkcode hubSnapshot}: which files, and {@linkcode HubOptions}. */
export interface HubSnapshotOptions extends HubOptions {
  /**
   * The files to fetch. Default: every file the repo lists at the revision (asked of `{endpoint}/api/models/...`), or
   * offline, every file the cache holds of that snapshot.
   */
  readonly files?: readonly string[];
}

async function listFiles(ref: RepoRef, options: HubOptions): Promise<string[]> {
  const url = `${endpointOf(options)}/api/models/${ref.repo}/revision/${encodeURIComponent(ref.revision)}`;
  await checkNetPermission(new URL(url), `listing the files of ${ref.repo}`);
  const res = await fetch(url, { headers: requestOf(ref, "", options).headers, signal: options.signal });
  if (!res.ok) {
    await res.body?.cancel();
    throw new Deno.errors.NotFound(`the Hub could not list ${ref.repo}@${ref.revision}: ${url} answered ${res.status}`);
  }
  const siblings = (await res.json()).siblings;
  if (!Array.isArray(siblings)) throw new Error(`${url} sent no "siblings" list: is the endpoint a Hugging Face hub?`);
  return siblings.map((s: { rfilename: string }) => s.rfilename);
}

/**
 * The local snapshot folder of a Hub repo at one commit, holding `options.files` (default: every file the repo
 * has), each found in the cache or downloaded as {@linkcode hubFile} does. The files all come from one commit: the
 * one the revision names when the first of them is fetched.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { join } from "./paths.ts";
 * import { hubSnapshot } from "../mod.ts";
 * const cacheDir = await Deno.makeTempDir(), commit = "b".repeat(40);
 * const snapshot = join(cacheDir, "models--org--tiny", "snapshots", commit);
 * await Deno.mkdir(snapshot, { recursive: true });
 * await Deno.writeTextFile(join(snapshot, "config.json"), "{}");
 * await Deno.writeTextFile(join(snapshot, "tokenizer.json"), "{}");
 * const dir = await hubSnapshot(`org/tiny@${commit}`, { cacheDir, files: ["config.json", "tokenizer.json"] });
 * assert.equal(dir, snapshot);
 * await Deno.remove(cacheDir, { recursive: true });
 * ```
 */
export async function hubSnapshot(repo: string, options: HubSnapshotOptions = {}): Promise<string> {
  const ref = parseRepoId(repo, options.revision);
  const known = offlineOf(options) ? await cachedCommit(cacheDirOf(options), ref) : undefined;
  const files = options.files ??
    (offlineOf(options)
      ? await snapshotFiles(cacheDirOf(options), ref.repo, known ?? "")
      : await listFiles(ref, options));
  if (files.length === 0) {
    const where = offlineOf(options)
      ? `the cache at ${repoFolder(cacheDirOf(options), ref.repo)} (offline)`
      : "the hub";
    throw new Deno.errors.NotFound(`hubSnapshot: ${where} has no files of ${ref.repo}@${ref.revision}`);
  }
  const { revision: _, ...rest } = options;
  await hubFile(ref.repo, files[0], { ...rest, revision: ref.revision });
  const commit = isCommit(ref.revision) ? ref.revision : (await cachedCommit(cacheDirOf(options), ref))!;
  for (const file of files.slice(1)) await hubFile(ref.repo, file, { ...rest, revision: commit });
  return join(repoFolder(cacheDirOf(options), ref.repo), "snapshots", commit);
}
