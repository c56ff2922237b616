// Tests of Hugging Face model directories: logits against an independent PyTorch writer, round trips, shards, errors.

import assert from "node:assert/strict";
import { decodeStep, forward, prefill, readAll, tensor, treeLeaves, treePaths } from "../../mod.ts";
import { loadPretrained, savePretrained } from "../../nn/pretrained.ts";
import { jetGeometry } from "../../nn/spec.ts";
import { assertThrowsMsg } from "../helpers.ts";
import { splitSafetensors } from "../safetensors_bytes.ts";

const FIXTURES = decodeURIComponent(new URL("./fixtures/pretrained/", import.meta.url).pathname);
// BF16 tied Qwen2 with biases and GQA; F32 untied Llama in two shards; BF16 Jet-Nemotron; F16 untied Qwen2.
const MODELS = ["qwen2", "llama", "jet_nemotron", "qwen2_f16"] as const;

// f32 against the writer's float64 on the same stored weights: measured 2e-7 to 5e-7 of the largest logit.
const TOLERANCE = 1e-5;

async function reference(name: string): Promise<{ tokens: number[][]; logits: number[]; shape: number[] }> {
  return JSON.parse(await Deno.readTextFile(`${FIXTURES}${name}/reference.json`));
}

async function copyDir(from: string): Promise<string> {
  const to = await Deno.makeTempDir();
  for await (const e of Deno.readDir(from)) await Deno.copyFile(`${from}/${e.name}`, `${to}/${e.name}`);
  return to;
}

async function editConfig(dir: string, edit: (c: Record<string, unknown>) => void): Promise<void> {
  const c = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
  edit(c);
  await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(c));
}

async function bitsOf(tree: unknown): Promise<string[]> {
  const leaves = treeLeaves(tree), host = await readAll(leaves);
  return host.map((d, i) =>
    `${treePaths(tree)[i]} [${leaves[i].shape}] ${new Uint8Array(d.buffer, d.byteOffset, d.byteLength)}`
  );
}

for (const name of MODELS) {
  Deno.test(`the ${name} fixture's logits match the PyTorch reference within ${TOLERANCE} of the largest`, async () => {
    const ref = await reference(name);
    const { config, params, tokenizer } = await loadPretrained(`${FIXTURES}${name}`);
    assert.equal(tokenizer === undefined, name !== "qwen2"); // only the qwen2 fixture has tokenizer files
    const logits = forward(params, tensor(ref.tokens, { dtype: "i32" }), config);
    assert.deepEqual(logits.shape, ref.shape);
    const [got] = await readAll([logits]);
    const scale = Math.max(...ref.logits.map(Math.abs));
    const worst = Math.max(...ref.logits.map((r, i) => Math.abs(got[i] - r)));
    assert.ok(worst <= TOLERANCE * scale, `${name}: max error ${worst} against max |logit| ${scale}`);
  });

  Deno.test(`the ${name} fixture saves and loads back bit for bit`, async () => {
    const first = await loadPretrained(`${FIXTURES}${name}`);
    const dir = await Deno.makeTempDir();
    try {
      await savePretrained(dir, { config: first.config, params: first.params });
      const again = await loadPretrained(dir);
      assert.deepEqual(again.config, first.config);
      assert.deepEqual(await bitsOf(again.params), await bitsOf(first.params));
      // The same names, shapes and architecture transformers would read.
      const original = JSON.parse(await Deno.readTextFile(`${FIXTURES}${name}/config.json`));
      const saved = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
      assert.deepEqual(saved.architectures, original.architectures);
      for (const field of ["hidden_size", "num_key_value_heads", "tie_word_embeddings", "rope_theta", "layer_types"]) {
        assert.deepEqual(saved[field], original[field], field);
      }
      const header = async (d: string) => {
        const names = new Map<string, number[]>();
        for await (const e of Deno.readDir(d)) {
          if (!e.name.endsWith(".safetensors")) continue;
          const bytes = await Deno.readFile(`${d}/${e.name}`);
          const h = splitSafetensors(bytes).header;
          for (const [k, v] of Object.entries(h)) {
            if (k !== "__metadata__") names.set(k, (v as { shape: number[] }).shape);
          }
        }
        return [...names].sort();
      };
      assert.deepEqual(await header(dir), await header(`${FIXTURES}${name}`));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("a directory's tokenizer comes with the model, its vocabulary short of the embedding's rows", async () => {
  const { config, tokenizer } = await loadPretrained(`${FIXTURES}qwen2`);
  assert.equal(config.tied ?? true, true); // tied: the default, so left out
  // The fixture's byte-level BPE: 26 letters and the space, merges he, ll, hell, and <|endoftext|> at 30.
  assert.deepEqual([tokenizer!.vocabSize, config.vocab, tokenizer!.eosId], [31, 40, 30]);
  assert.deepEqual(tokenizer!.encode("hello hey"), [29, 14, 26, 27, 24]);
  assert.equal(tokenizer!.decode([29, 14, 26, 27, 24, 30]), "hello hey<|endoftext|>");
});

Deno.test("a tokenizer.json that is not a tokenizer is an error naming the directory", async () => {
  const dir = await copyDir(`${FIXTURES}qwen2`);
  try {
    await Deno.writeTextFile(`${dir}/tokenizer.json`, "{ not JSON");
    await assert.rejects(loadPretrained(dir), (e: Error) => {
      assert.match(e.message, /^loadPretrained: the tokenizer in .*: .*tokenizer\.json is not valid JSON/);
      return true;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the Jet-Nemotron config maps to the official geometry", async () => {
  const { config } = await loadPretrained(`${FIXTURES}jet_nemotron`);
  assert.deepEqual(config.blocks.map((b) => b.attn), ["jet", "mha", "swa", "jet"]);
  assert.deepEqual(config.blocks[0], {
    attn: "jet",
    ffn: "swiglu",
    conv: false,
    keyDim: 6,
    valueDim: 16,
    generatorHidden: 4,
    normEps: 1e-5,
  });
  // Sizes equal to the defaults (2 heads as the config has, head size width / heads = 8) are left out.
  assert.deepEqual(config.blocks[2], { attn: "swa", window: 3, ffn: "swiglu", conv: false, bias: true });
  assert.deepEqual(jetGeometry(config, config.blocks[0]).heads, 2);
});

Deno.test("a missing shard is an error naming it", async () => {
  const dir = await copyDir(`${FIXTURES}llama`);
  try {
    await Deno.remove(`${dir}/model-00002-of-00002.safetensors`);
    await assertThrowsMsg(() => loadPretrained(dir), "the shard model-00002-of-00002.safetensors is missing");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an index that places a tensor in the wrong shard is an error naming the tensor", async () => {
  const dir = await copyDir(`${FIXTURES}llama`);
  try {
    const path = `${dir}/model.safetensors.index.json`, index = JSON.parse(await Deno.readTextFile(path));
    index.weight_map["model.norm.weight"] = index.weight_map["model.norm.weight"].includes("00001")
      ? "model-00002-of-00002.safetensors"
      : "model-00001-of-00002.safetensors";
    await Deno.writeTextFile(path, JSON.stringify(index));
    await assertThrowsMsg(() => loadPretrained(dir), '"model.norm.weight"');
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an unknown architecture is an error naming it and the supported ones", async () => {
  const dir = await copyDir(`${FIXTURES}qwen2`);
  try {
    await editConfig(dir, (c) => c.architectures = ["MistralForCausalLM"]);
    await assertThrowsMsg(() => loadPretrained(dir), '"MistralForCausalLM"', "Qwen2ForCausalLM", "LlamaForCausalLM");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a shape that disagrees with config.json is an error naming the tensor and both shapes", async () => {
  const dir = await copyDir(`${FIXTURES}qwen2`);
  try {
    await editConfig(dir, (c) => c.intermediate_size = 32);
    await assertThrowsMsg(
      () => loadPretrained(dir),
      'tensor "model.layers.0.mlp.gate_proj.weight"',
      "is [24, 16]",
      "config.json implies [32, 16]",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a missing tensor and an unexpected one are errors naming them", async () => {
  const dir = await copyDir(`${FIXTURES}qwen2`);
  try {
    await editConfig(dir, (c) => c.num_hidden_layers = 3);
    await assertThrowsMsg(() => loadPretrained(dir), '"model.layers.2.', "is missing");
    await editConfig(dir, (c) => c.num_hidden_layers = 1);
    await assertThrowsMsg(() => loadPretrained(dir), '"model.layers.1.', "has no place");
    await editConfig(dir, (c) => (c.num_hidden_layers = 2, c.tie_word_embeddings = false));
    await assertThrowsMsg(() => loadPretrained(dir), '"lm_head.weight" is missing');
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a directory without weights or config is an error saying which", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await assertThrowsMsg(() => loadPretrained(dir), "has no config.json");
    await Deno.copyFile(`${FIXTURES}qwen2/config.json`, `${dir}/config.json`);
    await assertThrowsMsg(() => loadPretrained(dir), "neither model.safetensors nor model.safetensors.index.json");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("unsupported config.json settings are refused by name", async () => {
  const dir = await copyDir(`${FIXTURES}llama`);
  try {
    await editConfig(dir, (c) => c.rope_scaling = { rope_type: "llama3", factor: 8 });
    await assertThrowsMsg(() => loadPretrained(dir), "rope_scaling");
    await editConfig(dir, (c) => (c.rope_scaling = null, c.hidden_act = "gelu"));
    await assertThrowsMsg(() => loadPretrained(dir), 'hidden_act "gelu"');
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("non-finite weights are refused by name unless allowed, and then load exactly", async () => {
  const dir = await copyDir(`${FIXTURES}qwen2`);
  try {
    const path = `${dir}/model.safetensors`, bytes = await Deno.readFile(path);
    const { header, headerBytes: n } = splitSafetensors<Record<string, { data_offsets: number[] }>>(bytes);
    const at = 8 + n + header["model.norm.weight"].data_offsets[0];
    // model.norm.weight[1] = +inf and [2] = the smallest subnormal, as bfloat16 bit patterns.
    bytes.set([0x80, 0x7f, 0x01, 0x00], at + 2);
    await Deno.writeFile(path, bytes);
    await assertThrowsMsg(() => loadPretrained(dir), 'tensor "model.norm.weight" holds Infinity at index [1]');
    const { params } = await loadPretrained(dir, { allowNonFinite: true });
    const [normf] = await readAll([params.normf]);
    assert.deepEqual([normf[1], normf[2]], [Infinity, 2 ** -133]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the loaded Jet-Nemotron decodes token by token to the reference logits", async () => {
  const ref = await reference("jet_nemotron");
  const { config, params } = await loadPretrained(`${FIXTURES}jet_nemotron`);
  // Prefill 2 tokens, then step the other 5 through the KV caches, the swa window and the JetBlock states.
  const tokens = ref.tokens, [B, T] = [tokens.length, tokens[0].length], V = ref.shape[2];
  let [logits, state] = prefill(params, tensor(tokens.map((row) => row.slice(0, 2)), { dtype: "i32" }), config);
  const steps = [logits];
  for (let t = 2; t < T; t++) {
    [logits, state] = decodeStep(params, tensor(tokens.map((row) => [row[t]]), { dtype: "i32" }), state, config);
    steps.push(logits);
  }
  const got = await readAll(steps), scale = Math.max(...ref.logits.map(Math.abs));
  got.forEach((row, s) => {
    for (let b = 0; b < B; b++) {
      for (let v = 0; v < V; v++) {
        const want = ref.logits[(b * T + s + 1) * V + v];
        assert.ok(Math.abs(row[b * V + v] - want) <= TOLERANCE * scale, `position ${s + 1}, batch ${b}, token ${v}`);
      }
    }
  });
});

// name -> [dtype, shape, bytes] of every tensor in a directory's safetensors files.
async function storedTensors(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for await (const e of Deno.readDir(dir)) {
    if (!e.name.endsWith(".safetensors")) continue;
    const bytes = await Deno.readFile(`${dir}/${e.name}`);
    const { header, headerBytes: n } = splitSafetensors(bytes);
    for (const [name, info] of Object.entries(header)) {
      if (name === "__metadata__") continue;
      const { dtype, shape, data_offsets: [a, b] } = info as { dtype: string; shape: number[]; data_offsets: number[] };
      out.set(name, `${dtype} [${shape}] ${bytes.subarray(8 + n + a, 8 + n + b).join(",")}`);
    }
  }
  return out;
}

Deno.test("saving as bf16 writes the very bytes PyTorch wrote for bfloat16 weights", async () => {
  const { config, params } = await loadPretrained(`${FIXTURES}jet_nemotron`);
  const dir = await Deno.makeTempDir();
  try {
    await savePretrained(dir, { config, params }, { dtype: "bf16" });
    assert.deepEqual(await storedTensors(dir), await storedTensors(`${FIXTURES}jet_nemotron`));
    assert.equal(JSON.parse(await Deno.readTextFile(`${dir}/config.json`)).torch_dtype, "bfloat16");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("saving beyond maxShardBytes writes shards and an index that load back exactly", async () => {
  const first = await loadPretrained(`${FIXTURES}llama`);
  const dir = await Deno.makeTempDir();
  try {
    await savePretrained(dir, first, { maxShardBytes: 4096 });
    const files = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assert.ok(files.includes("model.safetensors.index.json") && !files.includes("model.safetensors"));
    const shards = files.filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f));
    assert.ok(shards.length > 2, `${shards.length} shards`);
    const index = JSON.parse(await Deno.readTextFile(`${dir}/model.safetensors.index.json`));
    assert.deepEqual([...new Set(Object.values(index.weight_map))].sort(), shards);
    const again = await loadPretrained(dir);
    assert.deepEqual(await bitsOf(again.params), await bitsOf(first.params));
    // Saving again unsharded replaces the index, which would otherwise still be read.
    await savePretrained(dir, first);
    assert.ok(!Deno.readDirSync(dir).some((e) => e.name === "model.safetensors.index.json"));
    assert.deepEqual(await bitsOf((await loadPretrained(dir)).params), await bitsOf(first.params));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
