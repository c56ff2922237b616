// Linear RoPE scaling (config.json rope_scaling type "linear"): the rotation at position p / factor, read and written.

import assert from "node:assert/strict";
import { block, initModel, loadPretrained, modelConfig, normal, randomKey, rope, savePretrained } from "../../mod.ts";

Deno.test("rope with scale s rotates position p as unscaled rope rotates p / s (a float64 closed form)", async () => {
  const x = normal(randomKey(0), [1, 3, 4]); // T 3, head size 4
  const [got, xs] = [await rope(x, { theta: 100, offset: 5, scale: 4 }).data(), await x.data()];
  for (let t = 0; t < 3; t++) {
    const p = (5 + t) / 4;
    for (let i = 0; i < 2; i++) {
      const angle = p * Math.pow(100, (-2 * i) / 4), [a, b] = [xs[t * 4 + i], xs[t * 4 + i + 2]];
      assert.ok(Math.abs(got[t * 4 + i] - (a * Math.cos(angle) - b * Math.sin(angle))) < 1e-6);
      assert.ok(Math.abs(got[t * 4 + i + 2] - (a * Math.sin(angle) + b * Math.cos(angle))) < 1e-6);
    }
  }
  // At a whole position p / s, the very bits of unscaled rope there.
  const one = x.slice([0, 0, 0], [1, 1, 4]);
  assert.deepEqual(
    await rope(one, { theta: 100, offset: 6, scale: 2 }).data(),
    await rope(one, { theta: 100, offset: 3 }).data(),
  );
});

Deno.test("config.json rope_scaling linear loads as ropeScale and saves back; other kinds are refused by name", async () => {
  const config = modelConfig({ vocab: 16, width: 8, heads: 2, ropeScale: 4, blocks: [block("mha", { bias: true })] });
  const dir = await Deno.makeTempDir();
  try {
    await savePretrained(dir, { config, params: initModel(randomKey(0), config) });
    const json = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
    assert.deepEqual(json.rope_scaling, { type: "linear", rope_type: "linear", factor: 4 });
    assert.equal((await loadPretrained(dir)).config.ropeScale, 4);
    for (
      const [scaling, message] of [
        [
          { rope_type: "dynamic", factor: 2 },
          /rope_scaling type "dynamic" is not supported \(supported: linear, default\)/,
        ],
        [{ type: "linear", factor: -1 }, /rope_scaling factor must be positive, got -1/],
        [[2], /rope_scaling must be null or an object/],
      ] as const
    ) {
      await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify({ ...json, rope_scaling: scaling }));
      await assert.rejects(loadPretrained(dir), message);
    }
    await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify({ ...json, rope_scaling: { rope_type: "default" } }));
    assert.equal((await loadPretrained(dir)).config.ropeScale, undefined);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  assert.throws(() => modelConfig({ ...config, ropeScale: 0 }), /ropeScale must be a positive number, got 0/);
});
