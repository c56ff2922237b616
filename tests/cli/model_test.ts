// The CLI's --model SOURCE (generate, train, tune, info) on the PyTorch-made fixtures, locally and from a fake hub.

import { forward, generate, loadPretrained, loadSafetensors, ops, tensor } from "../../mod.ts";
import { assert, badInput, cli, ok, ROOT } from "./helpers.ts";
import { startFakeHub } from "../hub/fake_hub.ts";

const FIXTURES = decodeURIComponent(new URL("../nn/fixtures/pretrained/", import.meta.url).pathname);
const QWEN = `${FIXTURES}qwen2`;
const TMP = await Deno.makeTempDir({ prefix: "jetfold-model-test-" });
const idsOf = (stdout: string) =>
  stdout.split("\n").find((l) => l.trim().startsWith("ids:"))!.trim().slice(4).trim().split(/\s+/).map(Number);

// Text from the fixture tokenizer's alphabet (26 letters and spaces), repeated so every seq-len fits.
const DATA = `${TMP}/data.txt`;
await Deno.writeTextFile(DATA, "hello world, the hare held the yellow shell; ".replaceAll(/[,;]/g, "").repeat(40));

Deno.test("generate --model greedily continues --prompt through the model's tokenizer, as forward's argmax", async () => {
  const r = ok(
    await cli("generate", "--model", QWEN, "--prompt", "hello hey", "--tokens", "6", "--backend", "cpu"),
    "generate",
  );
  const ids = idsOf(r.stdout);
  const m = await loadPretrained(QWEN);
  const prompt = m.tokenizer!.encode("hello hey");
  // Independent of the decode loop: each generated id is forward's argmax over the sequence before it.
  const seq = [...prompt, ...ids.slice(0, -1)];
  const best = Array.from(
    await ops.argmax(forward(m.params, tensor([seq], { dtype: "i32" }), m.config), { axis: -1 }).data(),
  );
  assert(JSON.stringify(ids) === JSON.stringify(best.slice(prompt.length - 1)), `ids ${ids} vs argmax ${best}`);
  const text = JSON.stringify(m.tokenizer!.decode(ids));
  assert(r.stdout.includes(`text:   ${text}`), `no text line ${text}:\n${r.stdout}`);
  assert(r.stdout.includes("tokens/s"), "no rate printed");
});

Deno.test("generate --model --stream prints the same text as it comes, read every --read-every tokens", async () => {
  const args = [
    "--model",
    QWEN,
    "--prompt",
    "he",
    "--tokens",
    "9",
    "--backend",
    "cpu",
    "--temperature",
    "1",
    "--seed",
    "3",
  ];
  const once = ok(await cli("generate", ...args), "generate");
  const streamed = ok(await cli("generate", ...args, "--stream", "--read-every", "2"), "generate --stream");
  const ids = idsOf(once.stdout);
  assert(JSON.stringify(idsOf(streamed.stdout)) === JSON.stringify(ids), "streaming changed the sample");
  // The library at the same key gives the same sample (the CLI's key: foldIn(randomKey(seed), 4)).
  const m = await loadPretrained(QWEN);
  const { foldIn, randomKey } = await import("../../mod.ts");
  const [lib] = await generate(m.params, m.config, m.tokenizer!.encode("he"), {
    maxNewTokens: 9,
    temperature: 1,
    key: foldIn(randomKey(3), 4),
    stopId: m.tokenizer!.eosId,
  });
  assert(JSON.stringify(lib) === JSON.stringify(ids), `library ${lib} vs CLI ${ids}`);
  const text = m.tokenizer!.decode(ids);
  assert(
    streamed.stdout.includes(`text:   ${text}\n`),
    `streamed text is not ${JSON.stringify(text)}:\n${streamed.stdout}`,
  );
  assert(/\d+ tokens in [\d.]+ s: [\d.]+ tokens\/s/.test(streamed.stdout), `no rate:\n${streamed.stdout}`);
});

Deno.test("--model refuses what it cannot use, in one line", async () => {
  badInput(
    await cli("generate", "--model", `${FIXTURES}llama`, "--prompt", "x"),
    "has no tokenizer (tokenizer.json, or vocab.json and merges.txt), which --prompt needs",
    "llama has no tokenizer",
  );
  badInput(await cli("generate", "--model", QWEN), "--model needs --prompt TEXT", "no prompt");
  badInput(await cli("generate", "--model", QWEN, "--prompt", "x", "--run", TMP), "not two", "two models");
  badInput(await cli("generate", "--model", `${TMP}/none`, "--prompt", "x"), "is neither a directory nor", "missing");
  // A name with a newline and a terminal escape is echoed escaped, still on one line.
  badInput(await cli("generate", "--model", "a\nb\u001b[2J", "--prompt", "x"), "--model a\\nb\\u001b[2J: ", "controls");
  badInput(await cli("generate", "--checkpoint", "x", "--stream"), "--stream has no effect without --model", "stream");
  badInput(
    await cli("train", "--model", QWEN, "--width", "8", "--data", DATA),
    "--width has no effect with --model",
    "size",
  );
  badInput(await cli("train", "--model", QWEN), "needs --data FILE to train on", "no data");
  badInput(await cli("info", "--context", "64"), "--context has no effect without --model", "context alone");
  // A tokenizer that names an id past the embedding's 40 rows: the id is refused, not gathered as garbage.
  const dir = `${TMP}/wide`;
  await Deno.mkdir(dir);
  for (const f of ["config.json", "model.safetensors", "tokenizer_config.json"]) {
    await Deno.copyFile(`${QWEN}/${f}`, `${dir}/${f}`);
  }
  const tok = JSON.parse(await Deno.readTextFile(`${QWEN}/tokenizer.json`));
  tok.added_tokens.push({ ...tok.added_tokens[0], id: 45, content: "<big>" });
  await Deno.writeTextFile(`${dir}/tokenizer.json`, JSON.stringify(tok));
  badInput(
    await cli("generate", "--model", dir, "--prompt", "he<big>"),
    "--prompt: the tokenizer gives id 45 (token 1), but the model's embedding has 40 rows",
    "id past the embedding",
  );
});

Deno.test("info --model prints the architecture, layers, parameters and the decoding state at --context", async () => {
  const r = ok(
    await cli("info", "--model", `${FIXTURES}jet_nemotron`, "--context", "1024", "--backend", "cpu"),
    "info",
  );
  const m = await loadPretrained(`${FIXTURES}jet_nemotron`);
  const params = (await import("../../mod.ts")).paramCount(m.params);
  for (
    const line of [
      "architecture: JetNemotronForCausalLM, width 16, 2 heads (1 key/value)",
      "layers: 4: 0 jet, 1 mha, 2 swa:3, 3 jet",
      `parameters: ${params.toLocaleString("en-US")} (`,
      // mha: keys and values, 1 KV head of size 8, 1024 tokens, f32; swa:3 keeps 2 tokens.
      `mha ${(2 * 8 * 1024 * 4) / 1024}.0 KiB, swa ${2 * 8 * 2 * 4} bytes`,
      "tokenizer: none",
    ]
  ) assert(r.stdout.includes(line), `info did not print "${line}":\n${r.stdout}`);
});

Deno.test("train --model fine-tunes on --data through the tokenizer; generate and tune --run keep using it", async () => {
  const run = `${TMP}/ft`;
  const common = ["--backend", "cpu", "--seq-len", "16", "--batch", "2", "--eval-batch", "2", "--tokens", "4"];
  const r = ok(
    await cli(
      "train",
      "--model",
      QWEN,
      "--data",
      DATA,
      "--steps",
      "10",
      "--warmup",
      "1",
      "--lr",
      "0.01",
      "--log-every",
      "1",
      "--out",
      run,
      ...common,
    ),
    "train",
  );
  // The run records the model by its absolute path, so that it is found again from any directory.
  assert(r.stdout.includes(`(${await Deno.realPath(QWEN)}'s tokenizer)`), r.stdout);
  const { metadata } = await loadSafetensors(`${run}/checkpoint.safetensors`);
  const data = JSON.parse(metadata["jetfold.data"]);
  assert(
    data.source === "tokens" && data.model === await Deno.realPath(QWEN) && data.vocab === 40,
    `data meta ${JSON.stringify(data)}`,
  );
  // Losses fall from the fixture's on this text (10 steps at lr 0.01, the last three against the first three).
  const losses = (await Deno.readTextFile(`${run}/metrics.jsonl`)).trim().split("\n").map((l) => JSON.parse(l).loss);
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b) / xs.length;
  assert(losses.length === 10 && mean(losses.slice(7)) < mean(losses.slice(0, 3)), `losses ${losses}`);
  const g = ok(
    await cli("generate", "--run", run, "--prompt", "hello", "--tokens", "3", "--backend", "cpu"),
    "generate",
  );
  const tokenizer = (await loadPretrained(QWEN)).tokenizer!;
  assert(g.stdout.includes(`text:   ${JSON.stringify(tokenizer.decode(idsOf(g.stdout)))}`), g.stdout);
  ok(await cli("train", "--resume", run, "--steps", "11", "--backend", "cpu"), "resume");
  ok(await cli("tune", "--run", run, "--steps", "2", "--out", `${TMP}/tuned`, ...common), "tune --run");
  ok(
    await cli("tune", "--model", QWEN, "--data", DATA, "--steps", "2", "--out", `${TMP}/tuned2`, ...common),
    "tune --model",
  );
});

Deno.test("generate --model takes a Hub repo id, downloading into $HF_HOME from $HF_ENDPOINT", async () => {
  const files: Record<string, Uint8Array> = {};
  for (const f of ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]) {
    files[f] = await Deno.readFile(`${QWEN}/${f}`);
  }
  const hub = await startFakeHub(files), home = `${TMP}/hf`;
  try {
    const run = async (...env: [string, string][]) => {
      const out = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          "cli.ts",
          "generate",
          "--model",
          "org/tiny",
          "--prompt",
          "hello",
          "--tokens",
          "4",
          "--backend",
          "cpu",
        ],
        cwd: ROOT,
        env: { NO_COLOR: "1", HF_HOME: home, ...Object.fromEntries(env) },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const t = new TextDecoder();
      return { code: out.code, stdout: t.decode(out.stdout), stderr: t.decode(out.stderr) };
    };
    const first = ok(await run(["HF_ENDPOINT", hub.endpoint]), "from the hub");
    assert(first.stdout.includes("downloading model.safetensors"), `no progress:\n${first.stdout}`);
    const local = ok(
      await cli("generate", "--model", QWEN, "--prompt", "hello", "--tokens", "4", "--backend", "cpu"),
      "local",
    );
    assert(JSON.stringify(idsOf(first.stdout)) === JSON.stringify(idsOf(local.stdout)), "hub and local differ");
    // Offline, from the cache alone.
    const asked = hub.log.length;
    ok(await run(["HF_HUB_OFFLINE", "1"]), "offline");
    assert(hub.log.length === asked, "offline asked the hub");
  } finally {
    await hub.close();
  }
});

Deno.test("a tensor larger than one buffer of the backend is refused up front, by name, size and limit", async () => {
  const { checkBuffers } = await import("../../cli/model.ts");
  const { InputError } = await import("../../cli/args.ts");
  const m = { source: "m", ...(await loadPretrained(QWEN)) };
  const backend = (maxBufferBytes: number) => ({
    name: "webgpu" as const,
    capabilities: { maxKernelBuffers: 8, maxLoop: 1e6, maxBufferBytes, precisions: ["f32" as const] },
  });
  const refuses = (limit: number, work: { batch: number; tokens: number }, text: string) => {
    try {
      checkBuffers(m, backend(limit), work);
    } catch (e) {
      assert(e instanceof InputError && e.message.includes(text), `${(e as Error).message} lacks ${text}`);
      return;
    }
    throw new Error(`not refused at ${limit}`);
  };
  // The fixture's largest tensor is the embedding, 40 x 16 f32: 2560 bytes.
  refuses(
    2559,
    { batch: 1, tokens: 1 },
    `tensor "embed" [40, 16] needs 2.5 KiB (2,560 bytes), more than the 2,559 bytes`,
  );
  checkBuffers(m, backend(2560), { batch: 1, tokens: 8 });
  // 4 heads x 30^2 scores x 4 bytes = 14,400 bytes.
  refuses(14_399, { batch: 1, tokens: 30 }, "the attention scores of 30 tokens needs 14.1 KiB (14,400 bytes)");
  // No limit on the CPU backend.
  checkBuffers(m, { name: "cpu", capabilities: { ...backend(0).capabilities, maxBufferBytes: Infinity } }, {
    batch: 9,
    tokens: 9999,
  });
});

Deno.test("search --model runs PostNAS from a Hugging Face model on --data, and its choice tunes with the tokenizer", async () => {
  const out = `${TMP}/searched`;
  const common = ["--backend", "cpu", "--seq-len", "16", "--batch", "2", "--eval-batch", "2"];
  const r = ok(
    await cli("search", "--model", QWEN, "--data", DATA, "--steps", "2", "--out", out, "--seed", "3", ...common),
    "search --model",
  );
  const record = JSON.parse(await Deno.readTextFile(`${out}/search.json`));
  const layers = (await loadPretrained(QWEN)).config.blocks.length;
  assert(Array.isArray(record.choice) && record.choice.length === layers, `choice ${JSON.stringify(record.choice)}`);
  assert(r.stdout.includes("chosen: "), r.stdout);
  // The chosen model's data went through the model's tokenizer, so tune --run reads the text the same way.
  const { metadata } = await loadSafetensors(`${out}/checkpoint.safetensors`);
  const data = JSON.parse(metadata["jetfold.data"]);
  assert(data.source === "tokens" && data.model === await Deno.realPath(QWEN), `data meta ${JSON.stringify(data)}`);
  ok(await cli("tune", "--run", out, "--steps", "1", "--out", `${TMP}/searched-tuned`, ...common), "tune --run");
  // The paper's post-search step: the chosen model distills from the Hugging Face model it started from.
  const distilled = `${TMP}/searched-distilled`;
  const d = ["--distill", "mse", "--steps", "2", "--log-every", "1", ...common];
  ok(await cli("tune", "--run", out, "--teacher", QWEN, "--out", distilled, ...d), "tune --teacher HF dir");
  const lossesOf = async (dir: string) =>
    (await Deno.readTextFile(`${dir}/metrics.jsonl`)).trim().split("\n").map((l) => JSON.parse(l).loss);
  const chosen = await lossesOf(distilled);
  assert(chosen.length === 2 && chosen.every((l) => Number.isFinite(l) && l > 0), `losses ${chosen}`);
  // The teacher itself as the student: the first layer-output MSE is exactly 0.
  const self = `${TMP}/self-distilled`;
  ok(
    await cli("tune", "--model", QWEN, "--data", DATA, "--teacher", QWEN, "--out", self, ...d),
    "tune --model --teacher",
  );
  assert((await lossesOf(self))[0] === 0, `self-distillation losses ${await lossesOf(self)}`);
  badInput(
    await cli("tune", "--run", out, "--teacher", `${TMP}/no-such-model`, "--distill", "mse"),
    "no-such-model",
    "missing teacher",
  );
  badInput(await cli("search", "--model", QWEN, "--data", DATA, "--width", "8"), "--width has no effect", "sizes");
  badInput(await cli("search", "--model", QWEN), "needs --data FILE", "no data");
  badInput(await cli("search", "--model", QWEN, "--run", out, "--data", DATA), "not two", "two models");
});
