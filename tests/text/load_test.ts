// The byte tokenizer, loadTokenizer's forms of source (bytes, URL, directory, Hub id) and its one-sentence errors.

import assert from "node:assert/strict";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import fc from "fast-check";
import { byteTokenizer, type HubProgress, loadTokenizer } from "../../mod.ts";
import { startFakeHub } from "../hub/fake_hub.ts";

// A byte-level BPE small enough to write out: one merge, "h"+"i" -> "hi", and <eos> as an added token.
const TINY = {
  version: "1.0",
  added_tokens: [
    { id: 4, content: "<eos>", special: true, lstrip: false, rstrip: false, normalized: false, single_word: false },
  ],
  normalizer: null,
  pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
  post_processor: null,
  decoder: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
  model: { type: "BPE", vocab: { h: 0, i: 1, "!": 2, hi: 3 }, merges: [["h", "i"]] },
};
const TINY_CONFIG = { eos_token: "<eos>", pad_token: { content: "<eos>" } };

async function withDir<T>(files: Record<string, string>, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir();
  try {
    for (const [name, text] of Object.entries(files)) {
      await Deno.mkdir(join(dir, name, ".."), { recursive: true });
      await Deno.writeTextFile(join(dir, name), text);
    }
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("byteTokenizer encodes UTF-8 bytes and decodes any string back exactly", () => {
  const tok = byteTokenizer();
  fc.assert(fc.property(fc.string({ unit: "grapheme" }), (s) => {
    const ids = tok.encode(s);
    assert.deepEqual(ids, [...new TextEncoder().encode(s)]);
    assert.equal(tok.decode(ids), s);
  }));
  assert.equal(tok.decode([0xff, 65]), "\ufffdA");
  assert.equal(tok.specialTokens.size, 0);
  assert.equal(tok.eosId, undefined);
  assert.throws(() => tok.decode([65, 256]), /id 256 at position 1 is not a byte/);
});

Deno.test("loadTokenizer reads bytes, a file: URL and a directory alike", async () => {
  const bytes = new TextEncoder().encode(JSON.stringify(TINY));
  const fromBytes = await loadTokenizer(bytes, { config: TINY_CONFIG });
  await withDir(
    { "tokenizer.json": JSON.stringify(TINY), "tokenizer_config.json": JSON.stringify(TINY_CONFIG) },
    async (dir) => {
      const fromDir = await loadTokenizer(dir);
      const fromUrl = await loadTokenizer(pathToFileURL(join(dir, "tokenizer.json")));
      for (const tok of [fromBytes, fromDir, fromUrl]) {
        assert.deepEqual(tok.encode("hi!hih<eos>"), [3, 2, 3, 0, 4]);
        assert.equal(tok.decode([3, 2, 3, 0, 4], { skipSpecial: true }), "hi!hih");
        assert.equal(tok.eosId, 4);
        assert.equal(tok.padId, 4); // named by an AddedToken record rather than a string
        assert.equal(tok.vocabSize, 5);
      }
    },
  );
});

Deno.test("loadTokenizer resolves a Hub repo id through the Hugging Face cache", async () => {
  const commit = "c".repeat(40);
  const snapshot = `models--org--tiny/snapshots/${commit}`;
  const files = {
    "models--org--tiny/refs/main": commit,
    [`${snapshot}/tokenizer.json`]: JSON.stringify(TINY),
    [`${snapshot}/tokenizer_config.json`]: JSON.stringify(TINY_CONFIG),
  };
  await withDir(files, async (cacheDir) => {
    const tok = await loadTokenizer("org/tiny", { hub: { cacheDir, offline: true } });
    assert.deepEqual(tok.encode("hi<eos>"), [3, 4]);
    assert.equal(tok.eosId, 4);
    await assert.rejects(
      loadTokenizer("org/other", { hub: { cacheDir, offline: true } }),
      /there is no file or directory org\/other, and as a Hub repo id: org\/other has neither .* not in the cache/,
    );
  });
});

Deno.test("loadTokenizer downloads a Hub repo's tokenizer files into the cache, then loads them offline", async () => {
  const encode = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
  const hub = await startFakeHub({ "tokenizer.json": encode(TINY), "tokenizer_config.json": encode(TINY_CONFIG) });
  const cacheDir = await Deno.makeTempDir();
  try {
    const seen: HubProgress[] = [];
    const tok = await loadTokenizer("org/tiny", {
      hub: { cacheDir, endpoint: hub.endpoint, onProgress: (p) => seen.push(p) },
    });
    assert.deepEqual(tok.encode("hi<eos>"), [3, 4]);
    assert.equal(tok.eosId, 4);
    assert.deepEqual(new Set(seen.map((p) => p.file)), new Set(["tokenizer.json", "tokenizer_config.json"]));
    const again = await loadTokenizer(`org/tiny@${hub.commit}`, { hub: { cacheDir, offline: true } });
    assert.equal(again.eosId, 4);
  } finally {
    await hub.close();
    await Deno.remove(cacheDir, { recursive: true });
  }
});

Deno.test("loadTokenizer's errors name the file and what is wrong with it", async () => {
  await withDir(
    { "tokenizer.json": '{"version": "1.0"}', "bad/tokenizer.json": "{not json", "empty/x": "" },
    async (dir) => {
      await assert.rejects(loadTokenizer(dir), /tokenizer\.json is not a tokenizer\.json: it has no "model" object/);
      await assert.rejects(loadTokenizer(join(dir, "bad")), /bad\/tokenizer\.json is not valid JSON/);
      await assert.rejects(
        loadTokenizer(join(dir, "empty")),
        /empty holds no tokenizer: expected tokenizer\.json, or vocab/,
      );
    },
  );
  await assert.rejects(loadTokenizer("./no/such dir"), /neither a file, a directory nor a Hub repo id/);
  await assert.rejects(
    loadTokenizer("tokenizer.jsn"),
    /tokenizer\.jsn is neither a file, a directory nor a Hub repo id/,
  );
  await assert.rejects(loadTokenizer(new TextEncoder().encode("[1, 2")), /the bytes are not a tokenizer\.json/);
  await assert.rejects(loadTokenizer(new URL("https://example.com/tokenizer.json")), /is not a file: URL/);
  const tok = await loadTokenizer(TINY);
  assert.throws(() => tok.decode([3, 9]), /id 9 at position 1 is outside the vocabulary \[0, 5\)/);
  assert.throws(() => tok.decode([1.5]), /id 1\.5 at position 0/);
});
