// Random weights of a model geometry written straight to a BF16 Hugging Face directory, tensor by tensor
// and chunk by chunk, so that memory stays bounded (a chunk) whatever the model's size.

import { pretrainedLayout } from "../nn/pretrained.ts";
import type { ModelConfig } from "../mod.ts";

/** Elements generated and written at a time. */
const CHUNK = 2 ** 20;

// A small PRNG (xorshift32 over a seed mixed with the tensor's index): the same seed gives the same file.
function stream(seed: number, index: number): () => number {
  let s = (Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(index + 1, 0xc2b2ae35)) | 0 || 1;
  return () => {
    s ^= s << 13, s ^= s >>> 17, s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
}

// How a tensor's values are drawn: norms 1, biases 0, A_log log(uniform 1..16), dt_bias a small softplus
// inverse, matrices uniform with std 1 / sqrt(fan-in) (the embedding 0.02): finite, moderate activations.
function drawer(name: string, shape: readonly number[]): (u: number) => number {
  if (name.endsWith("norm.weight") || name.endsWith("layernorm.weight")) return () => 1;
  if (name.endsWith(".bias") && !name.includes("kernel_generator")) return () => 0;
  if (name.endsWith("A_log")) return (u) => Math.log(1 + 15 * u);
  if (name.endsWith("dt_bias")) return (u) => -4 + 2 * u;
  const std = name === "model.embed_tokens.weight" ? 0.02 : 1 / Math.sqrt(shape.at(-1) ?? 1);
  const half = Math.sqrt(3) * std;
  return (u) => (2 * u - 1) * half;
}

/**
 * Writes `dir/config.json` and `dir/model.safetensors` (BF16, no checksums, as other tools write it) for
 * `cfg` with random weights drawn from `seed`: one chunk of one tensor in memory at a time.
 */
export async function writeRandomModel(dir: string, cfg: ModelConfig, seed: number): Promise<void> {
  const { json, tensors } = pretrainedLayout(cfg);
  const header: Record<string, unknown> = { __metadata__: { format: "pt" } };
  let offset = 0;
  for (const t of tensors) {
    const bytes = 2 * t.shape.reduce((a, b) => a * b, 1);
    header[t.name] = { dtype: "BF16", shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const text = new TextEncoder().encode(JSON.stringify(header)), padded = Math.ceil(text.length / 8) * 8;
  const head = new Uint8Array(8 + padded).fill(0x20, 8);
  new DataView(head.buffer).setBigUint64(0, BigInt(padded), true);
  head.set(text, 8);
  await Deno.mkdir(dir, { recursive: true });
  const tmp = `${dir}/model.safetensors.tmp`;
  {
    using f = await Deno.open(tmp, { write: true, create: true, truncate: true });
    const write = async (b: Uint8Array) => {
      for (let done = 0; done < b.length;) done += await f.write(b.subarray(done));
    };
    await write(head);
    const f32 = new Float32Array(CHUNK), u32 = new Uint32Array(f32.buffer), bf = new Uint16Array(CHUNK);
    for (const [i, t] of tensors.entries()) {
      const next = stream(seed, i), draw = drawer(t.name, t.shape), size = t.shape.reduce((a, b) => a * b, 1);
      for (let at = 0; at < size; at += CHUNK) {
        const n = Math.min(CHUNK, size - at);
        for (let j = 0; j < n; j++) f32[j] = draw(next());
        // f32 -> bf16, rounding to nearest even (the values are finite).
        for (let j = 0; j < n; j++) {
          const x = u32[j];
          bf[j] = (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
        }
        await write(new Uint8Array(bf.buffer, 0, 2 * n));
      }
    }
  }
  await Deno.rename(tmp, `${dir}/model.safetensors`);
  const config = { ...json, torch_dtype: "bfloat16" };
  await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(config, null, 2) + "\n");
}
