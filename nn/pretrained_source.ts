// Where a pretrained model's files are: a local directory, or a Hub repo id fetched through the Hugging Face cache.

import { hubFile, type HubOptions, isRepoId } from "../hub/hub.ts";
import { basename, dirname, join } from "../hub/paths.ts";
import { loadTokenizer } from "../text/load.ts";
import type { Tokenizer } from "../text/tokenizer.ts";

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

const exists = (path: string) => Deno.stat(path).then(() => true, () => false);

// Tokenizer files that a repo may have; each is optional, tokenizer.json being the usual one.
const TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt"];

/** Whether `source` would be read as a Hub repo id: only `org/name[@revision]` counts, as for loadTokenizer. */
export function isModelRepoId(source: string): boolean {
  return isRepoId(source) && source.split("@")[0].includes("/");
}

/**
 * The local directory of a model: `source` itself when it is a directory, else the snapshot folder of the Hub repo
 * `org/name[@revision]`, with config.json, the weights (one file, or the index and every shard it names) and the
 * tokenizer files the repo has, each found in the cache or downloaded into it (see `hubFile`); with
 * `weights: false`, config.json and the tokenizer files only.
 */
export async function modelDirectory(
  source: string,
  hub: HubOptions,
  where: string,
  opts: { readonly weights?: boolean } = {},
): Promise<string> {
  if (await isDirectory(source)) return source;
  if (!isModelRepoId(source)) {
    throw new Deno.errors.NotFound(
      `${where}: ${source} is neither a directory nor a Hub repo id (org/name[@revision])`,
    );
  }
  const named = `${where}: there is no directory ${source}, and as a Hub repo id`;
  const fail = (e: unknown): never => {
    const message = `${named}: ${(e as Error).message}`;
    if (e instanceof Deno.errors.NotFound) throw new Deno.errors.NotFound(message, { cause: e });
    if (e instanceof Deno.errors.PermissionDenied) throw new Deno.errors.PermissionDenied(message, { cause: e });
    throw new Error(message, { cause: e });
  };
  const config = await hubFile(source, "config.json", hub).catch(fail);
  // Every later file comes from the commit config.json came from, even if the branch moves meanwhile.
  const dir = dirname(config), commit = basename(dir);
  const { revision: _, ...rest } = hub;
  const pinned = { ...rest, revision: commit }, repo = source.split("@")[0];
  const optional = (file: string) =>
    hubFile(repo, file, pinned).then(
      (path) => path,
      (e) => e instanceof Deno.errors.NotFound ? undefined : fail(e),
    );
  const index = opts.weights === false ? undefined : await optional("model.safetensors.index.json");
  if (opts.weights === false) { /* config.json and the tokenizer only */ }
  else if (index !== undefined) {
    let map: unknown;
    try {
      map = JSON.parse(await Deno.readTextFile(index)).weight_map;
    } catch (e) {
      throw new Error(`${where}: ${source}'s model.safetensors.index.json is not JSON (${(e as Error).message})`);
    }
    if (typeof map !== "object" || map === null) {
      throw new Error(`${where}: ${source}'s model.safetensors.index.json has no weight_map object`);
    }
    for (const shard of [...new Set(Object.values(map).map(String))].sort()) {
      await hubFile(repo, shard, pinned).catch(fail);
    }
  } else await hubFile(repo, "model.safetensors", pinned).catch(fail);
  for (const file of TOKENIZER_FILES) await optional(file);
  return dir;
}

/** The tokenizer of a model directory, where it has tokenizer files (none: undefined); a broken one is an error. */
export async function directoryTokenizer(dir: string, where: string): Promise<Tokenizer | undefined> {
  const has = await exists(join(dir, "tokenizer.json")) ||
    (await exists(join(dir, "vocab.json")) && await exists(join(dir, "merges.txt")));
  if (!has) return undefined;
  try {
    return await loadTokenizer(dir);
  } catch (e) {
    throw new Error(`${where}: the tokenizer in ${dir}: ${(e as Error).message}`, { cause: e });
  }
}
