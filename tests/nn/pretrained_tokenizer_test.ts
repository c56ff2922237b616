// Tests that savePretrained writes the tokenizer it is given, and that loadPretrained reads the very tokenizer back.

import assert from "node:assert/strict";
import { byteTokenizer, loadTokenizer, readAll, tensor } from "../../mod.ts";
import { forward } from "../../nn/model.ts";
import { loadPretrained, savePretrained } from "../../nn/pretrained.ts";
import type { Tokenizer } from "../../text/tokenizer.ts";

const FIXTURES = decodeURIComponent(new URL("./fixtures/pretrained/", import.meta.url).pathname);

// Text that exercises the fixture's merges (he, ll, hell), a space and the end-of-text token.
const TEXTS = ["hello hey", "hell", "a b c<|endoftext|>", ""];

function assertSameTokenizer(got: Tokenizer, want: Tokenizer): void {
  assert.deepEqual(
    [got.vocabSize, got.bosId, got.eosId, got.padId, [...got.specialTokens]],
    [want.vocabSize, want.bosId, want.eosId, want.padId, [...want.specialTokens]],
  );
  for (const text of TEXTS) {
    const ids = want.encode(text);
    assert.deepEqual(got.encode(text), ids, text);
    assert.equal(got.decode(ids), want.decode(ids));
    assert.equal(got.decode(ids, { skipSpecial: true }), want.decode(ids, { skipSpecial: true }));
  }
}

Deno.test("savePretrained writes the tokenizer as tokenizer.json and tokenizer_config.json, and it loads back", async () => {
  const model = await loadPretrained(`${FIXTURES}qwen2`);
  assert.notEqual(model.tokenizer, undefined);
  const dir = await Deno.makeTempDir();
  try {
    await savePretrained(dir, model);
    const names = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    assert.deepEqual(names.sort(), ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]);
    // The files are the fixture's (written by the Python tokenizers library), as parsed JSON.
    for (const file of ["tokenizer.json", "tokenizer_config.json"]) {
      const written = JSON.parse(await Deno.readTextFile(`${dir}/${file}`));
      assert.deepEqual(written, JSON.parse(await Deno.readTextFile(`${FIXTURES}qwen2/${file}`)), file);
    }
    const back = await loadPretrained(dir);
    assertSameTokenizer(back.tokenizer!, model.tokenizer!);
    assert.equal(back.tokenizer!.eosId, 30); // the fixture's <|endoftext|>, from tokenizer_config.json
    assert.equal(back.tokenizer!.decode([]), ""); // the library itself refuses an empty array
    const tokens = tensor([model.tokenizer!.encode("hello hey")], { dtype: "i32" });
    const [a, b] = await readAll([
      forward(model.params, tokens, model.config),
      forward(back.params, tokens, back.config),
    ]);
    assert.deepEqual(a, b);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a tokenizer made from vocab.json + merges.txt is written as the tokenizer.json it amounts to", async () => {
  const src = await Deno.makeTempDir(), dir = await Deno.makeTempDir();
  try {
    const vocab = { h: 0, i: 1, hi: 2, "Ġ": 3, "<eos>": 4 };
    await Deno.writeTextFile(`${src}/vocab.json`, JSON.stringify(vocab));
    await Deno.writeTextFile(`${src}/merges.txt`, "#version: 0.2\nh i\n");
    await Deno.writeTextFile(`${src}/tokenizer_config.json`, JSON.stringify({ eos_token: "<eos>" }));
    const tokenizer = await loadTokenizer(src);
    assert.deepEqual([tokenizer.encode("hih hi<eos>"), tokenizer.eosId], [[2, 0, 3, 2, 4], 4]);
    const { config, params } = await loadPretrained(`${FIXTURES}qwen2`);
    await savePretrained(dir, { config, params, tokenizer });
    const back = await loadPretrained(dir);
    assertSameTokenizer(back.tokenizer!, tokenizer);
    assert.deepEqual(back.tokenizer!.encode("hih hi<eos>"), [2, 0, 3, 2, 4]);
    assert.deepEqual(JSON.parse(await Deno.readTextFile(`${dir}/tokenizer_config.json`)), { eos_token: "<eos>" });
  } finally {
    await Deno.remove(src, { recursive: true });
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a tokenizer read without tokenizer_config.json gets an empty one, and the same tokenizer back", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const json = JSON.parse(await Deno.readTextFile(`${FIXTURES}qwen2/tokenizer.json`));
    const tokenizer = await loadTokenizer(json);
    assert.equal(tokenizer.eosId, undefined); // the config named it; without one there is none
    const { config, params } = await loadPretrained(`${FIXTURES}qwen2`);
    await savePretrained(dir, { config, params, tokenizer });
    assert.deepEqual(JSON.parse(await Deno.readTextFile(`${dir}/tokenizer_config.json`)), {});
    assertSameTokenizer((await loadPretrained(dir)).tokenizer!, tokenizer);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the byte tokenizer has no files to write: refused before anything is written", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { config, params } = await loadPretrained(`${FIXTURES}qwen2`);
    await assert.rejects(
      savePretrained(`${dir}/out`, { config, params, tokenizer: byteTokenizer() }),
      /^Error: savePretrained: the tokenizer has no Hugging Face files to write \(the byte tokenizer has none\)/,
    );
    await assert.rejects(Deno.stat(`${dir}/out`), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
