// The Hugging Face cache's layout: models--org--name/{refs,blobs,snapshots}, as huggingface_hub writes and reads it.

import { dirname, join } from "./paths.ts";

/** A repo id split into its parts: `org/name@revision` -> `{ repo: "org/name", revision }`. */
export interface RepoRef {
  readonly repo: string;
  readonly revision: string;
}

// The hub's own rules, loosely: letters, digits, "-", "_", "."; no "--" or ".." (they would break the cache's names).
const NAME = /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?$/;

/** Whether `id` reads as a Hub repo id, `org/name` or `name`, optionally with `@revision`. */
export function isRepoId(id: string): boolean {
  const at = id.indexOf("@");
  const repo = at < 0 ? id : id.slice(0, at);
  const revision = at < 0 ? "main" : id.slice(at + 1);
  const parts = repo.split("/");
  return parts.length <= 2 && parts.every((p) => NAME.test(p) && !p.includes("--") && !p.includes("..")) &&
    /^[\w.\-/]+$/.test(revision) && !revision.split("/").includes("..");
}

/** Parses `org/name[@revision]`; the revision defaults to `options.revision`, then "main". */
export function parseRepoId(id: string, revision?: string): RepoRef {
  if (!isRepoId(id)) {
    throw new TypeError(
      `${JSON.stringify(id)} is not a Hugging Face repo id: expected org/name or org/name@revision ` +
        `(letters, digits, "-", "_" and ".")`,
    );
  }
  const at = id.indexOf("@");
  if (at >= 0 && revision !== undefined && revision !== id.slice(at + 1)) {
    throw new TypeError(`${id} names revision ${id.slice(at + 1)} but the options name ${revision}: give one`);
  }
  return at < 0 ? { repo: id, revision: revision ?? "main" } : { repo: id.slice(0, at), revision: id.slice(at + 1) };
}

/** True for a full commit hash, which names a snapshot directly (no refs/ lookup). */
export function isCommit(revision: string): boolean {
  return /^[0-9a-f]{40}$/.test(revision);
}

/** `<cache>/models--org--name`. */
export function repoFolder(cacheDir: string, repo: string): string {
  return join(cacheDir, `models--${repo.replaceAll("/", "--")}`);
}

/** Checks that a file name inside a repo stays inside it (no absolute paths, no ".."). */
export function checkFileName(file: string): void {
  const parts = file.split("/");
  if (file === "" || file.startsWith("/") || file.includes("\\") || parts.some((p) => p === "" || p === "..")) {
    throw new TypeError(
      `${JSON.stringify(file)} is not a file name inside a repo: expected a relative path like "config.json"`,
    );
  }
}

async function readText(path: string): Promise<string | undefined> {
  try {
    return (await Deno.readTextFile(path)).trim();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}

/** The commit a revision names in the cache: itself when it is a hash, else the content of `refs/<revision>`. */
export async function cachedCommit(cacheDir: string, ref: RepoRef): Promise<string | undefined> {
  if (isCommit(ref.revision)) return ref.revision;
  return await readText(join(repoFolder(cacheDir, ref.repo), "refs", ref.revision));
}

/** The snapshot path of `file` when the cache has it at `commit` (a dangling link counts as absent). */
export async function cachedFile(
  cacheDir: string,
  repo: string,
  commit: string,
  file: string,
): Promise<string | undefined> {
  const path = join(repoFolder(cacheDir, repo), "snapshots", commit, file);
  try {
    return (await Deno.stat(path)).isFile ? path : undefined;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}

/** Records `refs/<revision> = commit` (atomically, as another process may read it). */
export async function writeRef(cacheDir: string, ref: RepoRef, commit: string): Promise<void> {
  if (isCommit(ref.revision)) return;
  const path = join(repoFolder(cacheDir, ref.repo), "refs", ref.revision);
  await Deno.mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.${crypto.randomUUID()}.tmp`;
  await Deno.writeTextFile(tmp, commit);
  await Deno.rename(tmp, path);
}

/**
 * Makes `snapshots/<commit>/<file>` point at `blobs/<blob>`: a relative symlink as huggingface_hub makes, or a copy
 * where the file system refuses links. Made under a temporary name and renamed into place, so a concurrent reader
 * (or a second call linking the same file) sees the old entry or the new one, never a half-made one.
 */
export async function linkSnapshot(
  cacheDir: string,
  repo: string,
  commit: string,
  file: string,
  blob: string,
): Promise<string> {
  const folder = repoFolder(cacheDir, repo);
  const path = join(folder, "snapshots", commit, file), tmp = `${path}.${crypto.randomUUID()}.tmp`;
  await Deno.mkdir(dirname(path), { recursive: true });
  try {
    // From snapshots/<commit>/<dirs of file>/ up to the repo folder, then into blobs/.
    await Deno.symlink(`${"../".repeat(1 + file.split("/").length)}blobs/${blob}`, tmp);
  } catch {
    await Deno.copyFile(join(folder, "blobs", blob), tmp);
  }
  await Deno.rename(tmp, path);
  return path;
}

/** `blobs/<name>` for a blob (an ETag, quotes removed). */
export function blobPath(cacheDir: string, repo: string, blob: string): string {
  return join(repoFolder(cacheDir, repo), "blobs", blob);
}

/** Every file of a cached snapshot, as paths inside the repo ("nested/dir/x.bin"); empty when there is none. */
export async function snapshotFiles(cacheDir: string, repo: string, commit: string): Promise<string[]> {
  const root = join(repoFolder(cacheDir, repo), "snapshots", commit), out: string[] = [];
  const walk = async (dir: string, prefix: string) => {
    for await (const entry of Deno.readDir(join(root, dir))) {
      const name = prefix + entry.name;
      if (entry.isDirectory) await walk(join(dir, entry.name), `${name}/`);
      else out.push(name);
    }
  };
  try {
    await walk("", "");
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return out.sort();
}
