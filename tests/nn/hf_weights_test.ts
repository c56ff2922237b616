// Weight files read from disk tensor by tensor: headers first, each tensor's bytes when asked, checksums per tensor.

import assert from "node:assert/strict";
import { block, initModel, loadPretrained, modelConfig, randomKey, savePretrained } from "../../mod.ts";
import { readWeights } from "../../nn/hf_weights.ts";
import { splitSafetensors } from "../safetensors_bytes.ts";

const config = modelConfig({ vocab: 16, width: 8, heads: 2, blocks: [block("mha", { bias: true })] });

async function saved(): Promise<string> {
  const dir = await Deno.makeTempDir();
  await savePretrained(dir, { config, params: initModel(randomKey(0), config) });
  return dir;
}

// The byte offset in the file of a tensor's data, from its header.
async function offsetOf(path: string, name: string): Promise<[number, number]> {
  const bytes = await Deno.readFile(path), { header } = splitSafetensors(bytes);
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  const [begin, end] = (header[name] as { data_offsets: number[] }).data_offsets;
  return [8 + n + begin, 8 + n + end];
}

Deno.test("readWeights reads only the headers; each tensor's bytes come from disk when it is read", async () => {
  const dir = await saved();
  try {
    const weights = await readWeights(dir, "test");
    const name = "model.norm.weight", [begin, end] = await offsetOf(`${dir}/model.safetensors`, name);
    // Rewrite the tensor on disk after the headers were read: its read() sees the new bytes, so nothing was held.
    const bytes = await Deno.readFile(`${dir}/model.safetensors`);
    const before = bytes.slice(begin, end);
    await assert.rejects(async () => {
      bytes[begin] ^= 0xff;
      await Deno.writeFile(`${dir}/model.safetensors`, bytes);
      await weights.get(name)!.read();
    }, /test: model.safetensors: tensor "model.norm.weight" is corrupt: its bytes have SHA-256/);
    bytes[begin] ^= 0xff;
    await Deno.writeFile(`${dir}/model.safetensors`, bytes);
    assert.deepEqual(await weights.get(name)!.read(), before);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadPretrained refuses, by name, a tensor whose bytes changed after jetfold saved it", async () => {
  const dir = await saved();
  try {
    const name = "model.layers.0.self_attn.k_proj.bias", [begin] = await offsetOf(`${dir}/model.safetensors`, name);
    const bytes = await Deno.readFile(`${dir}/model.safetensors`);
    bytes[begin + 1] ^= 0x01;
    await Deno.writeFile(`${dir}/model.safetensors`, bytes);
    await assert.rejects(loadPretrained(dir), /tensor "model.layers.0.self_attn.k_proj.bias" is corrupt/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a file cut short after its header is refused before any tensor is read", async () => {
  const dir = await saved();
  try {
    const bytes = await Deno.readFile(`${dir}/model.safetensors`);
    await Deno.writeFile(`${dir}/model.safetensors`, bytes.subarray(0, bytes.length - 4));
    await assert.rejects(readWeights(dir, "test"), /test: model.safetensors: (truncated|the data section has)/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
