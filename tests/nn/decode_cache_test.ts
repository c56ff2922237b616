// Preallocated decoding caches and streamed generation: bits against the concatenating cache, forward's argmax, reads.

import assert from "node:assert/strict";
import {
  attention,
  block,
  decodeStep,
  forward,
  generate,
  initModel,
  modelConfig,
  normal,
  ops,
  prefill,
  randomKey,
  readAll,
  resetStats,
  stats,
  tensor,
} from "../../mod.ts";
import { forEachBackend, withBackend } from "../helpers.ts";

const bitsOf = (d: ArrayLike<number>) => Array.from(new Uint32Array(Float32Array.from(d).buffer));

const specs = [block("mha"), block("swa", { window: 3 }), block("swa", { window: 8 })];

for (const spec of specs) {
  const label = spec.attn === "swa" ? `swa:${spec.window}` : spec.attn;
  Deno.test(`a preallocated ${label} cache steps to the bits of the concatenating cache on the CPU`, async () => {
    await withBackend("cpu", async () => {
      const cfg = modelConfig({ vocab: 16, width: 16, heads: 4, kvHeads: 2, blocks: [spec] });
      const m = attention(cfg, spec), p = m.init(randomKey(0));
      // A prompt of 5 (past a window of 3, short of 8), then 6 steps: the ring wraps, the mha cache fills to 11.
      const x = normal(randomKey(1), [2, 11, 16]);
      const [, grown] = m.prefill(p, x.slice([0, 0, 0], [2, 5, 16]));
      const [, fixed] = m.prefill(p, x.slice([0, 0, 0], [2, 5, 16]), { capacity: 11 });
      assert.deepEqual(fixed.k.shape, [2, 2, spec.attn === "swa" ? spec.window : 11, 4]);
      let [a, b] = [grown, fixed];
      for (let pos = 5; pos < 11; pos++) {
        const xt = x.slice([0, pos, 0], [2, pos + 1, 16]);
        const [ya, na] = m.step(p, xt, { cache: a, pos });
        const [yb, nb] = m.step(p, xt, { cache: b, pos, capacity: 11 });
        assert.deepEqual(nb.k.shape, fixed.k.shape, "the preallocated cache keeps its shape");
        const [da, db] = await readAll([ya, yb]);
        assert.deepEqual(bitsOf(db), bitsOf(da), `step at ${pos}`);
        [a, b] = [na, nb];
      }
    });
  });
}

Deno.test("a preallocated cache refuses a step past its capacity, and a capacity short of the prompt", () => {
  const cfg = modelConfig({ vocab: 16, width: 8, heads: 2, blocks: [block("mha")] });
  const m = attention(cfg, block("mha")), p = m.init(randomKey(0)), x = normal(randomKey(1), [1, 3, 8]);
  const [, cache] = m.prefill(p, x, { capacity: 3 });
  assert.throws(
    () => m.step(p, x.slice([0, 2, 0]), { cache, pos: 3, capacity: 3 }),
    /position 3 is past the KV cache's capacity of 3/,
  );
  assert.throws(
    () => m.prefill(p, x, { capacity: 2 }),
    /capacity must be an integer of at least the prompt's 3 tokens, got 2/,
  );
});

const hybrid = modelConfig({
  vocab: 32,
  width: 16,
  heads: 2,
  ffnHidden: 24,
  blocks: [block("mha"), block("swa", { window: 4 }), block("jet", { conv: true }), block("linear")],
});

forEachBackend("greedy decoding with preallocated caches gives forward's argmax at every new position", async () => {
  const params = initModel(randomKey(3), hybrid), prompt = [3, 1, 4, 1, 5, 9];
  const [ids] = await generate(params, hybrid, prompt, { maxNewTokens: 10 });
  // Teacher forcing: the whole sequence in one forward pass predicts each generated token from the ones before it.
  const seq = [...prompt, ...ids.slice(0, -1)];
  const logits = forward(params, tensor([seq], { dtype: "i32" }), hybrid);
  const best = await ops.argmax(logits, { axis: -1 }).data();
  assert.deepEqual(ids, Array.from(best).slice(prompt.length - 1));
});

Deno.test("decodeStep with preallocated caches gives the grown caches' logits bit for bit on the CPU", async () => {
  await withBackend("cpu", async () => {
    const params = initModel(randomKey(4), hybrid), tokens = tensor([[2, 7, 1], [8, 2, 8]], { dtype: "i32" });
    let [, grown] = prefill(params, tokens, hybrid);
    let [, fixed] = prefill(params, tokens, hybrid, { capacity: 9 });
    assert.equal(fixed.capacity, 9);
    for (let t = 0; t < 6; t++) {
      const next = tensor([[t], [t + 10]], { dtype: "i32" });
      const [la, sa] = decodeStep(params, next, grown, hybrid);
      const [lb, sb] = decodeStep(params, next, fixed, hybrid);
      const [a, b] = await readAll([la, lb]);
      assert.deepEqual(bitsOf(b), bitsOf(a), `token ${t}`);
      [grown, fixed] = [sa, sb];
    }
  });
});

forEachBackend(
  "streaming reads the tokens every k, and they are the tokens of one read at the end",
  async (backend) => {
    const params = initModel(randomKey(5), hybrid), prompt = [1, 2, 3];
    const opts = { maxNewTokens: 7, temperature: 1, key: randomKey(9) };
    const whole = await generate(params, hybrid, prompt, opts);
    const reads: number[][][] = [];
    resetStats();
    const streamed = await generate(params, hybrid, prompt, {
      ...opts,
      readEvery: 3,
      onTokens: (t) => void reads.push(t),
    });
    const readbacks = stats().readbacks;
    assert.deepEqual(streamed, whole);
    assert.deepEqual(reads.map((r) => r[0].length), [3, 3, 1]);
    assert.deepEqual(reads.flatMap((r) => r[0]), whole[0]);
    // On WebGPU each read is one readback, not one per token (the prompt, an array, is checked on the host); the CPU
    // backend counts none.
    if (backend === "webgpu") assert.equal(readbacks, 3);
  },
);

forEachBackend("generation stops once every row has produced stopId, each row ending at its first", async () => {
  const params = initModel(randomKey(6), hybrid), prompt = tensor([[1, 2], [3, 4]], { dtype: "i32" });
  const full = await generate(params, hybrid, prompt, { maxNewTokens: 12 });
  const stopId = full[0][4]; // row 0 produces it by its fifth token
  const reads: number[][][] = [];
  const got = await generate(params, hybrid, prompt, {
    maxNewTokens: 12,
    stopId,
    readEvery: 2,
    onTokens: (t) => void reads.push(t),
  });
  const cut = (row: number[]) => row.slice(0, row.indexOf(stopId) < 0 ? row.length : row.indexOf(stopId) + 1);
  assert.deepEqual(got, full.map(cut));
  assert.ok(reads.length < 6, `${reads.length} reads: generation went on after every row stopped`);
  assert.deepEqual(reads.map((r) => r[0]).flat(), cut(full[0]));
});

Deno.test("prefill's logits (the tied head multiplied embedding first) are forward's last position's, bit for bit on the CPU", async () => {
  await withBackend("cpu", async () => {
    const params = initModel(randomKey(7), hybrid), tokens = tensor([[5, 3, 9, 1], [2, 2, 8, 0]], { dtype: "i32" });
    const [logits] = prefill(params, tokens, hybrid);
    const whole = forward(params, tokens, hybrid).slice([0, 3, 0]).squeeze(1);
    const [a, b] = await readAll([logits, whole]);
    assert.deepEqual(bitsOf(a), bitsOf(b));
  });
});
