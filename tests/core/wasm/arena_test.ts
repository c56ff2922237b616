// The Wasm backend's arena: values own their memory until released, intermediates go back to the
// pool, a repeated training step reserves nothing new, and recycled memory changes no result.

import assert from "node:assert/strict";
import { normal, randomKey, stats } from "../../../mod.ts";
import { createWasm } from "../../../core/wasm/mod.ts";
import { on, train } from "./backend_helpers.ts";

Deno.test("wasm arena: a realized value owns its bytes until it is disposed; intermediates return at once", async () => {
  const b = (await createWasm({ threads: 1 }))!;
  await on(b, async () => {
    const x = normal(randomKey(0), [32, 48]);
    await x.data();
    const base = b.memory.bytesInUse;
    const x2 = x.mul(2);
    await x2.data();
    assert.equal(b.memory.bytesInUse, base + 32 * 48 * 4, "a computed value is held");
    const y = x.matmul(x.transpose()).add(1).exp().sum({ axis: -1 }); // a [32, 32] intermediate, then [32]
    await y.data();
    assert.equal(b.memory.bytesInUse, base + (32 * 48 + 32) * 4, "only the realized results are held");
    assert.ok(b.memory.bytesPooled >= 32 * 32 * 4, "the intermediate went back to the pool");
    const g = stats();
    assert.ok(g.bytesInUse >= b.memory.bytesInUse && g.bytesPooled >= b.memory.bytesPooled, "stats() counts the arena");
    y.dispose();
    assert.equal(b.memory.bytesInUse, base + 32 * 48 * 4);
    x2.dispose();
    assert.equal(b.memory.bytesInUse, base);
    x.dispose();
  });
  b.matmul.close();
});

Deno.test("wasm arena: a repeated training step reserves no new bytes", async () => {
  const b = (await createWasm({ threads: 1 }))!;
  const { bytes } = await on(b, () => train(5, () => b.memory));
  const reserved = bytes.map((m) => m.bytesInUse + m.bytesPooled);
  // The first steps differ (the optimizer's moments start as broadcast constants); from the third on,
  // each step is the same graph over arrays the previous step freed.
  assert.ok(bytes[2].bytesInUse > 0);
  assert.deepEqual(reserved.slice(2), [reserved[2], reserved[2], reserved[2]]);
  assert.deepEqual(bytes.slice(2).map((m) => m.bytesInUse), [
    bytes[2].bytesInUse,
    bytes[2].bytesInUse,
    bytes[2].bytesInUse,
  ]);
  b.matmul.close();
});

Deno.test("wasm arena: recycled memory gives the same bits as fresh arrays", async () => {
  const pooled = (await createWasm({ threads: 1 }))!, fresh = (await createWasm({ threads: 1, arena: false }))!;
  const a = await on(pooled, () => train(4));
  const f = await on(fresh, () => train(4));
  assert.equal(fresh.memory.bytesInUse, 0, "no arena, nothing counted");
  assert.deepEqual(a.losses, f.losses);
  assert.deepEqual(a.params, f.params);
  assert.ok(a.losses[3] < a.losses[0], "it trains");
  pooled.matmul.close();
  fresh.matmul.close();
});

Deno.test("wasm arena: a weight in recycled memory is never multiplied through another weight's packed copy", async () => {
  // Host arrays (no heap): the second weight's array recycles the first's memory after its disposal.
  // The matmul keeps packed copies of weights by their array objects, so each use must see the
  // weight that lies there now (the arena hands out a new array object for recycled memory).
  for (const heap of [false, true]) {
    const b = (await createWasm({ threads: 1, heap }))!;
    const x = normal(randomKey(1), [24, 40]); // enough rows to pack B
    const kept: number[] = [];
    const products = async (seed: number) => {
      const w = normal(randomKey(seed), [40, 40]).mul(1); // computed: its array is the arena's
      await w.data();
      const got: Float32Array[] = [];
      for (let use = 0; use < 3; use++) {
        const y = x.matmul(w);
        got.push(Float32Array.from(await y.data() as ArrayLike<number>));
        y.dispose();
      }
      kept.push(b.matmul.packedBytes);
      const ref = { x: await x.data(), w: await w.data() };
      w.dispose();
      return { got, ref };
    };
    await on(b, async () => {
      const reserved: number[] = [];
      for (const seed of [2, 3, 4, 5, 6, 7]) {
        const { got, ref } = await products(seed);
        const want = new Float64Array(24 * 40);
        for (let i = 0; i < 24; i++) {
          for (let j = 0; j < 40; j++) {
            let s = 0;
            for (let k = 0; k < 40; k++) s += ref.x[i * 40 + k] * ref.w[k * 40 + j];
            want[i * 40 + j] = s;
          }
        }
        reserved.push(b.memory.bytesInUse + b.memory.bytesPooled);
        for (const g of got) {
          g.forEach((v, i) => assert.ok(Math.abs(v - want[i]) < 1e-4, `heap ${heap} seed ${seed} [${i}]`));
        }
      }
      assert.ok(kept.every((k) => k > 0), "each weight's packed copy was kept");
      assert.deepEqual(reserved.slice(1), reserved.slice(1).map(() => reserved[0]), "weights recycled memory");
    });
    b.matmul.close();
  }
});
