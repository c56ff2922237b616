// hubFile and hubSnapshot against a fake hub on 127.0.0.1: the cache layout, resumed downloads, and their errors.

import assert from "node:assert/strict";
import { join } from "node:path";
import { hubFile, type HubProgress, hubSnapshot } from "../../mod.ts";
import { type FakeHub, startFakeHub, TOKEN } from "./fake_hub.ts";

function randomBytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0, x = seed; i < n; i++) out[i] = (x = (x * 1103515245 + 12345) >>> 0) >>> 24;
  return out;
}

const FILES = {
  "config.json": new TextEncoder().encode('{"vocab_size": 6}'),
  "tokenizer.json": new TextEncoder().encode('{"model": {"type": "BPE"}}'),
  "model.safetensors": randomBytes(300_000, 7), // over 64 KiB: served as an LFS file behind a redirect
  "nested/dir/weights.bin": randomBytes(1000, 9),
};

async function withHub(fn: (hub: FakeHub, cacheDir: string) => Promise<void>): Promise<void> {
  const hub = await startFakeHub(FILES);
  const cacheDir = await Deno.makeTempDir();
  try {
    await fn(hub, cacheDir);
  } finally {
    await hub.close();
    await Deno.remove(cacheDir, { recursive: true });
  }
}

Deno.test("hubFile downloads into huggingface_hub's cache layout, then answers from the cache alone", async () => {
  await withHub(async (hub, cacheDir) => {
    const path = await hubFile("org/tiny", "config.json", { cacheDir, endpoint: hub.endpoint });
    const folder = join(cacheDir, "models--org--tiny");
    assert.equal(path, join(folder, "snapshots", hub.commit, "config.json"));
    assert.deepEqual(await Deno.readFile(path), FILES["config.json"]);
    assert.equal(await Deno.readTextFile(join(folder, "refs", "main")), hub.commit);
    const link = await Deno.readLink(path);
    assert.match(link, /^\.\.\/\.\.\/blobs\/[0-9a-f]{64}$/);
    const requests = hub.log.length;
    assert.equal(await hubFile("org/tiny", "config.json", { cacheDir, endpoint: hub.endpoint }), path);
    assert.equal(await hubFile(`org/tiny@${hub.commit}`, "config.json", { cacheDir, offline: true }), path);
    assert.equal(hub.log.length, requests, "a cached file needs no request");
  });
});

Deno.test("hubFile follows an LFS file's redirect to its blob, reporting progress up to its size", async () => {
  await withHub(async (hub, cacheDir) => {
    const seen: HubProgress[] = [];
    const path = await hubFile("org/tiny", "model.safetensors", {
      cacheDir,
      endpoint: hub.endpoint,
      onProgress: (p) => seen.push(p),
    });
    assert.deepEqual(await Deno.readFile(path), FILES["model.safetensors"]);
    assert.ok(hub.log.some((l) => l.startsWith("GET /lfs/")), hub.log.join("\n"));
    assert.deepEqual(seen[0], { file: "model.safetensors", loaded: 0, total: 300_000 });
    assert.deepEqual(seen.at(-1), { file: "model.safetensors", loaded: 300_000, total: 300_000 });
    assert.ok(seen.every((p, i) => i === 0 || p.loaded >= seen[i - 1].loaded));
    const nested = await hubFile("org/tiny", "nested/dir/weights.bin", { cacheDir, endpoint: hub.endpoint });
    assert.deepEqual(await Deno.readFile(nested), FILES["nested/dir/weights.bin"]);
  });
});

Deno.test("a transfer that breaks off leaves a .incomplete file that the next call resumes with a Range request", async () => {
  await withHub(async (hub, cacheDir) => {
    const options = { cacheDir, endpoint: hub.endpoint, retries: 0 };
    hub.breakAfter(100_000);
    await assert.rejects(
      hubFile("org/tiny", "model.safetensors", options),
      /broke off after 100000 of 300000 bytes .*\.incomplete keeps them and the next call resumes/,
    );
    const blobs = join(cacheDir, "models--org--tiny", "blobs");
    const partial = [...Deno.readDirSync(blobs)].map((e) => e.name).filter((n) => n.endsWith(".incomplete"));
    assert.equal(partial.length, 1);
    assert.equal((await Deno.stat(join(blobs, partial[0]))).size, 100_000);
    const path = await hubFile("org/tiny", "model.safetensors", options);
    assert.deepEqual(await Deno.readFile(path), FILES["model.safetensors"]);
    assert.ok(
      hub.log.some((l) => l.endsWith("range bytes=100000-") || l.endsWith(" bytes=100000-")),
      hub.log.join("\n"),
    );
    assert.deepEqual([...Deno.readDirSync(blobs)].filter((e) => e.name.endsWith(".incomplete")), []);
  });
});

Deno.test("within one call a broken transfer is resumed, and a server that ignores Range is read from the start", async () => {
  await withHub(async (hub, cacheDir) => {
    hub.breakAfter(50_000, 2);
    const path = await hubFile("org/tiny", "model.safetensors", { cacheDir, endpoint: hub.endpoint, retries: 2 });
    assert.deepEqual(await Deno.readFile(path), FILES["model.safetensors"]);
    assert.equal(hub.log.filter((l) => l.endsWith("bytes=100000-")).length, 1, hub.log.join("\n"));
  });
  await withHub(async (hub, cacheDir) => {
    hub.breakAfter(50_000);
    hub.ignoreRange = true;
    const path = await hubFile("org/tiny", "model.safetensors", { cacheDir, endpoint: hub.endpoint });
    assert.deepEqual(await Deno.readFile(path), FILES["model.safetensors"]);
  });
});

Deno.test("two downloads of one file at once share a lock: one transfer, both get the file", async () => {
  await withHub(async (hub, cacheDir) => {
    const fetchIt = () => hubFile("org/tiny", "model.safetensors", { cacheDir, endpoint: hub.endpoint });
    const [a, b] = await Promise.all([fetchIt(), fetchIt()]);
    assert.equal(a, b);
    assert.deepEqual(await Deno.readFile(a), FILES["model.safetensors"]);
    assert.equal(hub.log.filter((l) => l.startsWith("GET /lfs/")).length, 1, hub.log.join("\n"));
    const locks = join(cacheDir, ".locks", "models--org--tiny");
    assert.ok([...Deno.readDirSync(locks)].every((e) => e.name.endsWith(".lock")));
  });
});

Deno.test("the token goes to the hub but not to the CDN that an LFS file redirects to", async () => {
  const cdn = await startFakeHub(FILES);
  try {
    await withHub(async (hub, cacheDir) => {
      hub.lfsBase = cdn.endpoint;
      const path = await hubFile("org/gated", "model.safetensors", { cacheDir, endpoint: hub.endpoint, token: TOKEN });
      assert.deepEqual(await Deno.readFile(path), FILES["model.safetensors"]);
      assert.deepEqual(hub.log, ["HEAD /org/gated/resolve/main/model.safetensors (with token)"]);
      assert.deepEqual(cdn.log.map((l) => l.replace(/[0-9a-f]{64}/, "<etag>")), ["GET /lfs/<etag>"]);
    });
  } finally {
    await cdn.close();
  }
});

Deno.test("hubSnapshot fetches every listed file at one commit into one snapshot folder", async () => {
  await withHub(async (hub, cacheDir) => {
    const dir = await hubSnapshot("org/tiny", { home: join(cacheDir, "hf"), endpoint: hub.endpoint });
    assert.equal(dir, join(cacheDir, "hf", "hub", "models--org--tiny", "snapshots", hub.commit));
    for (const [name, bytes] of Object.entries(FILES)) assert.deepEqual(await Deno.readFile(join(dir, name)), bytes);
    const some = await hubSnapshot("org/tiny", { cacheDir, endpoint: hub.endpoint, files: ["config.json"] });
    assert.deepEqual([...Deno.readDirSync(some)].map((e) => e.name), ["config.json"]);
    assert.equal(await hubSnapshot("org/tiny", { home: join(cacheDir, "hf"), offline: true }), dir);
    await assert.rejects(hubSnapshot("org/else", { cacheDir, offline: true }), /has no files of org\/else@main/);
  });
});

Deno.test("hub errors say in one sentence what is missing or not allowed", async () => {
  await withHub(async (hub, cacheDir) => {
    const at = { cacheDir, endpoint: hub.endpoint };
    await assert.rejects(hubFile("org/tiny", "nope.json", at), /org\/tiny has no file nope\.json at revision main/);
    await assert.rejects(
      hubFile("org/missing", "config.json", at),
      /the Hub has no repo org\/missing, or it is private/,
    );
    await assert.rejects(hubFile("org/tiny@v9", "config.json", at), /org\/tiny has no revision v9/);
    await assert.rejects(hubFile("org/gated", "config.json", at), /org\/gated is private or gated.*pass a token/);
    const gated = await hubFile("org/gated", "config.json", { ...at, token: TOKEN });
    assert.deepEqual(await Deno.readFile(gated), FILES["config.json"]);
    await assert.rejects(
      hubFile("org/tiny", "x.json", { ...at, offline: true }),
      /not in the cache at .* offline mode/,
    );
  });
  const cacheDir = await Deno.makeTempDir();
  try {
    await assert.rejects(
      hubFile("not a repo!", "config.json", { cacheDir }),
      /"not a repo!" is not a Hugging Face repo id/,
    );
    await assert.rejects(hubFile("a/b/c", "config.json", { cacheDir }), /is not a Hugging Face repo id/);
    await assert.rejects(hubFile("org/tiny", "../secret", { cacheDir }), /is not a file name inside a repo/);
    await assert.rejects(
      hubFile("org/tiny", "config.json", { cacheDir, endpoint: "https://hub.invalid" }),
      /needs network access to hub\.invalid, which this program does not have: run it with --allow-net=hub\.invalid/,
    );
    await assert.rejects(hubFile("org/tiny@v1", "x", { cacheDir, revision: "v2" }), /names revision v1 but .* v2/);
  } finally {
    await Deno.remove(cacheDir, { recursive: true });
  }
});
