// The benchmark's streaming random-weight writer: a directory loadPretrained reads, the same bytes from the same seed.

import assert from "node:assert/strict";
import {
  block,
  initModel,
  loadPretrained,
  modelConfig,
  paramCount,
  randomKey,
  readAll,
  treeLeaves,
} from "../../mod.ts";
import { writeRandomModel } from "../../bench/random_weights.ts";

Deno.test("random weights written tensor by tensor load as the config's model, finite, and repeat from the seed", async () => {
  const cfg = modelConfig({
    vocab: 40,
    width: 16,
    heads: 2,
    ffnHidden: 24,
    kvHeads: 1,
    blocks: [block("jet"), block("mha", { bias: true }), block("jet")],
  });
  const [a, b, c] = [await Deno.makeTempDir(), await Deno.makeTempDir(), await Deno.makeTempDir()];
  try {
    await writeRandomModel(a, cfg, 7);
    await writeRandomModel(b, cfg, 7);
    await writeRandomModel(c, cfg, 8);
    const bytes = (d: string) => Deno.readFile(`${d}/model.safetensors`);
    assert.deepEqual(await bytes(a), await bytes(b));
    assert.notDeepEqual(await bytes(a), await bytes(c));
    const loaded = await loadPretrained(a);
    assert.equal(loaded.config.blocks.length, 3);
    assert.equal(paramCount(loaded.params), paramCount(initModel(randomKey(0), cfg)));
    const values = await readAll(treeLeaves(loaded.params));
    assert.ok(values.every((v) => Array.from(v).every(Number.isFinite)));
    // Norm weights are ones, matrices are not constant.
    assert.ok(Array.from(await loaded.params.normf.data()).every((v) => v === 1));
    assert.ok(new Set(await loaded.params.embed.data()).size > 100);
  } finally {
    for (const d of [a, b, c]) await Deno.remove(d, { recursive: true });
  }
});
