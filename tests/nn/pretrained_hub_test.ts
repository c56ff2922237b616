// loadPretrained with a Hub repo id, against the fake hub on 127.0.0.1: download, cache, shards, progress, errors.

import assert from "node:assert/strict";
import { type HubProgress, loadPretrained, readAll, treeLeaves } from "../../mod.ts";
import { type FakeHub, startFakeHub } from "../hub/fake_hub.ts";

const FIXTURES = decodeURIComponent(new URL("./fixtures/pretrained/", import.meta.url).pathname);

async function filesOf(name: string): Promise<Record<string, Uint8Array>> {
  const files: Record<string, Uint8Array> = {};
  for await (const e of Deno.readDir(`${FIXTURES}${name}`)) {
    if (e.name !== "reference.json") files[e.name] = await Deno.readFile(`${FIXTURES}${name}/${e.name}`);
  }
  return files;
}

async function withHub(name: string, fn: (hub: FakeHub, cacheDir: string) => Promise<void>): Promise<void> {
  const hub = await startFakeHub(await filesOf(name));
  const cacheDir = await Deno.makeTempDir();
  try {
    await fn(hub, cacheDir);
  } finally {
    await hub.close();
    await Deno.remove(cacheDir, { recursive: true });
  }
}

async function bits(tree: unknown): Promise<string[]> {
  return (await readAll(treeLeaves(tree))).map((d) => String(new Uint8Array(d.buffer, d.byteOffset, d.byteLength)));
}

Deno.test("a Hub repo id downloads the model and its tokenizer into the cache, then loads offline from it", async () => {
  await withHub("qwen2", async (hub, cacheDir) => {
    const local = await loadPretrained(`${FIXTURES}qwen2`);
    const seen: HubProgress[] = [];
    const got = await loadPretrained("org/tiny", {
      hub: { cacheDir, endpoint: hub.endpoint, onProgress: (p) => seen.push(p) },
    });
    assert.deepEqual(got.config, local.config);
    assert.deepEqual(await bits(got.params), await bits(local.params));
    assert.equal(got.tokenizer!.vocabSize, 31);
    assert.deepEqual(got.tokenizer!.encode("hello"), local.tokenizer!.encode("hello"));
    // Every file the repo has that the model needs, and the progress of each up to its size.
    const fetched = hub.log.filter((l) => l.startsWith("GET")).map((l) => l.split("/").at(-1)).sort();
    assert.deepEqual(fetched, ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]);
    const weights = seen.filter((p) => p.file === "model.safetensors").at(-1)!;
    assert.equal(weights.loaded, hub.files.get("model.safetensors")!.length);
    // Offline, from the cache alone: the server is asked nothing more.
    const asked = hub.log.length;
    const again = await loadPretrained("org/tiny", { hub: { cacheDir, offline: true } });
    assert.deepEqual(await bits(again.params), await bits(local.params));
    assert.equal(hub.log.length, asked);
    // At the commit, too.
    const pinned = await loadPretrained(`org/tiny@${hub.commit}`, { hub: { cacheDir, offline: true } });
    assert.deepEqual(pinned.config, local.config);
  });
});

Deno.test("a sharded repo fetches the shards its index names, and a broken transfer resumes", async () => {
  await withHub("llama", async (hub, cacheDir) => {
    hub.breakAfter(200); // config.json, the first file, breaks off after 200 bytes
    const got = await loadPretrained("org/tiny", { hub: { cacheDir, endpoint: hub.endpoint } });
    const local = await loadPretrained(`${FIXTURES}llama`);
    assert.deepEqual(await bits(got.params), await bits(local.params));
    assert.equal(got.tokenizer, undefined); // the llama fixture has no tokenizer files
    assert.ok(hub.log.some((l) => /config.json bytes=200-$/.test(l)), hub.log.join("\n"));
  });
});

Deno.test("a repo the hub lacks, offline with an empty cache, or a name that is neither is one sentence", async () => {
  await withHub("qwen2", async (hub, cacheDir) => {
    await assert.rejects(
      loadPretrained("org/nothing", { hub: { cacheDir, endpoint: hub.endpoint } }),
      /^NotFound: loadPretrained: there is no directory org\/nothing, and as a Hub repo id: the Hub has no repo/,
    );
    await assert.rejects(
      loadPretrained("org/tiny", { hub: { cacheDir, offline: true } }),
      /as a Hub repo id: config.json of org\/tiny@main is not in the cache .* offline mode forbids/,
    );
    await assert.rejects(
      loadPretrained("no/such/dir", { hub: { cacheDir, offline: true } }),
      /loadPretrained: no\/such\/dir is neither a directory nor a Hub repo id/,
    );
  });
});
