// Tests of block geometry: the official JetBlock and attention sizes, their checks, caches and state bytes.

import assert from "node:assert/strict";
import { attention, block, initModel, jetBlock, modelConfig, normal, randomKey, readAll } from "../../mod.ts";
import { fromHfConfig } from "../../nn/hf_config.ts";
import { headDim, jetGeometry } from "../../nn/spec.ts";
import { stateBytes } from "../../search/mod.ts";
import { assertThrowsMsg } from "../helpers.ts";

const OFFICIAL_JET = { heads: 12, keyDim: 96, valueDim: 256, generatorHidden: 384, normEps: 1e-5 } as const;

// The fields of NVlabs Jet-Nemotron's jetlm_2B.json that the geometry depends on.
const JETLM_2B = {
  architectures: ["JetNemotronForCausalLM"],
  efficient_attention_config: {
    jet: {
      conv_size: 4,
      dconv_generator_reduction: 8,
      expand_v: 2.6666666667,
      head_dim: 96,
      mode: "chunk",
      norm_eps: "1e-5",
      num_heads: 12,
    },
    swa: { window_size: 1152 },
  },
  hidden_act: "silu",
  hidden_size: 1536,
  intermediate_size: 8960,
  layer_types: Array.from(
    { length: 28 },
    (_, i) => i === 14 || i === 19 ? "attn" : i === 20 || i === 21 ? "swa" : "jet",
  ),
  num_attention_heads: 12,
  num_hidden_layers: 28,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-6,
  rope_scaling: null,
  rope_theta: 1000000.0,
  tie_word_embeddings: true,
  vocab_size: 151936,
};

Deno.test("jetlm_2B.json maps to the official geometry and its state bytes", () => {
  const { arch, cfg } = fromHfConfig(JETLM_2B, "test");
  assert.equal(arch, "JetNemotronForCausalLM");
  assert.deepEqual([cfg.width, cfg.heads, cfg.kvHeads, cfg.ffnHidden, cfg.vocab], [1536, 12, 2, 8960, 151936]);
  assert.deepEqual([cfg.normEps, cfg.ropeTheta, cfg.convWidth, cfg.tied ?? true], [1e-6, 1e6, 4, true]);
  // The JetBlock's 12 heads are the config's, so the spec leaves them out; attention's head is 1536 / 12 = 128.
  const { heads: _, ...jet } = OFFICIAL_JET;
  assert.deepEqual(cfg.blocks[0], { attn: "jet", ffn: "swiglu", conv: false, ...jet });
  assert.deepEqual(jetGeometry(cfg, cfg.blocks[0]), OFFICIAL_JET);
  assert.deepEqual(cfg.blocks[14], { attn: "mha", ffn: "swiglu", conv: false, bias: true });
  assert.deepEqual(cfg.blocks[20], { attn: "swa", window: 1152, ffn: "swiglu", conv: false, bias: true });
  assert.equal(headDim(cfg, cfg.blocks[20]), 128);
  // A JetBlock holds 12 heads of 96 x 256 state plus 3 conv inputs of the 3072-wide values, in f32.
  assert.equal(stateBytes(cfg.blocks[0], { cfg, context: 65536 }), (12 * 96 * 256 + 3 * 3072) * 4);
  // Full attention keeps keys and values of 2 heads of 128 per token; swa at most window - 1 tokens.
  assert.equal(stateBytes(cfg.blocks[14], { cfg, context: 4096 }), 2 * 2 * 128 * 4096 * 4);
  assert.equal(stateBytes(cfg.blocks[20], { cfg, context: 4096 }), 2 * 2 * 128 * 1151 * 4);
});

Deno.test("the official JetBlock's params have the official shapes (scaled down 8x in width)", () => {
  const cfg = modelConfig({ vocab: 16, width: 192, heads: 12, blocks: [block("jet", OFFICIAL_JET)] });
  const p = jetBlock(cfg, cfg.blocks[0]).init(randomKey(0));
  assert.deepEqual(
    [p.wq.shape, p.wk.shape, p.wv.shape, p.wg.shape, p.wo.shape, p.wb.shape, p.norm.shape],
    [[192, 1152], [192, 1152], [192, 3072], [192, 3072], [3072, 192], [192, 12], [256]],
  );
  assert.deepEqual([p.conv.w1.shape, p.conv.w2.shape, p.conv.b2.shape], [[192, 384], [384, 12288], [3072, 4]]);
});

Deno.test("a JetBlock of its own geometry steps from its cache to apply's last position", async () => {
  const spec = block("jet", { heads: 3, keyDim: 4, valueDim: 10, generatorHidden: 5, normEps: 1e-5 });
  const cfg = modelConfig({ vocab: 16, width: 8, heads: 2, blocks: [spec] });
  const m = jetBlock(cfg, spec), p = m.init(randomKey(0)), x = normal(randomKey(1), [2, 6, 8]);
  const y = m.apply(p, x);
  const [, cache] = m.prefill(p, x.slice([0, 0, 0], [2, 5, 8]));
  assert.deepEqual([cache.state.shape, cache.conv.shape], [[2, 3, 4, 10], [2, 3, 30]]);
  const [last] = m.step(p, x.slice([0, 5, 0]), { cache, pos: 5 });
  const [a, b] = await readAll([last, y.slice([0, 5, 0])]);
  assert.ok(a.every((v, i) => Math.abs(v - b[i]) < 1e-4));
  assert.equal(m.stateBytes(1), (3 * 4 * 10 + 3 * 30) * 4);
});

Deno.test("attention with its own head size and biases steps from its cache to apply's last position", async () => {
  const spec = block("swa", { window: 3, headDim: 6, bias: true });
  const cfg = modelConfig({ vocab: 16, width: 8, heads: 4, kvHeads: 2, blocks: [spec] });
  const m = attention(cfg, spec), p0 = m.init(randomKey(0));
  assert.deepEqual([p0.wq.shape, p0.wk.shape, p0.bq?.shape, p0.bv?.shape], [[8, 24], [8, 12], [24], [12]]);
  const p = { ...p0, bq: normal(randomKey(2), [24]), bk: normal(randomKey(3), [12]), bv: normal(randomKey(4), [12]) };
  const x = normal(randomKey(1), [1, 5, 8]), y = m.apply(p, x);
  const [, cache] = m.prefill(p, x.slice([0, 0, 0], [1, 4, 8]));
  const [last] = m.step(p, x.slice([0, 4, 0]), { cache, pos: 4 });
  const [a, b] = await readAll([last, y.slice([0, 4, 0])]);
  assert.ok(a.every((v, i) => Math.abs(v - b[i]) < 1e-4));
  assert.equal(m.stateBytes(100), 2 * 2 * 6 * 2 * 4);
});

Deno.test("default specs and params are exactly what they were", () => {
  assert.deepEqual(block("jet"), { attn: "jet", ffn: "swiglu", conv: false });
  assert.deepEqual(block("mha"), { attn: "mha", ffn: "swiglu", conv: false });
  const cfg = modelConfig({ vocab: 16, width: 8, heads: 2, blocks: [block("jet"), block("mha")] });
  assert.ok(!("tied" in cfg));
  const p = initModel(randomKey(0), cfg);
  assert.ok(!("head" in p) && !("bq" in p.blocks[1].mixer));
  assert.equal(jetBlock(cfg).stateBytes(1), (2 * 4 * 4 + 3 * 8) * 4);
});

Deno.test("geometry fields are checked and belong to their kinds", async () => {
  await assertThrowsMsg(() => block("jet", { headDim: 4 }), "headDim applies only to mha and swa blocks, not jet");
  await assertThrowsMsg(() => block("linear", { heads: 2 }), "heads applies only to jet blocks");
  await assertThrowsMsg(() => block("mha", { headDim: 5 }), "headDim must be even for RoPE");
  await assertThrowsMsg(() => block("jet", { valueDim: 0 }), "valueDim must be a positive integer");
  await assertThrowsMsg(() => block("jet", { normEps: -1 }), "normEps must be a positive number");
  await assertThrowsMsg(() => block("mha", { bias: 1 as unknown as boolean }), "bias must be a boolean");
  // With its own head size, attention no longer needs heads to divide width.
  const cfg = modelConfig({ vocab: 16, width: 10, heads: 4, blocks: [block("mha", { headDim: 4 })] });
  assert.equal(cfg.width, 10);
  await assertThrowsMsg(() => modelConfig({ ...cfg, blocks: [block("mha")] }), "heads (4) must divide width (10)");
  await assertThrowsMsg(
    () => modelConfig({ ...cfg, blocks: [block("jet", { heads: 3 })] }),
    "jet heads (3) must divide width (10)",
  );
  await assertThrowsMsg(() => modelConfig({ ...cfg, tied: "no" as unknown as boolean }), "tied must be a boolean");
});

Deno.test("savePretrained refuses what config.json cannot express, before writing", async () => {
  const { savePretrained } = await import("../../nn/pretrained.ts");
  const dir = await Deno.makeTempDir();
  try {
    const lin = modelConfig({ vocab: 16, width: 8, heads: 2, blocks: [block("linear")] });
    await assertThrowsMsg(() => savePretrained(dir, { config: lin, params: initModel(randomKey(0), lin) }), "linear");
    const mixed = modelConfig({
      vocab: 16,
      width: 8,
      heads: 2,
      blocks: [block("jet", { heads: 2 }), block("jet", { heads: 1 })],
    });
    await assertThrowsMsg(
      () => savePretrained(dir, { config: mixed, params: initModel(randomKey(0), mixed) }),
      "the JetBlock geometry differs between layers",
    );
    assert.deepEqual([...Deno.readDirSync(dir)], []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
