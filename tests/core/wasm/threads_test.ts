// Determinism across thread counts: a training step and the forward of every mixer give the same
// bits on one thread and on several (each thread computes whole panels of C, in a fixed order, and
// whole batch x head recurrences of the delta-rule scans).

import assert from "node:assert/strict";
import fc from "fast-check";
import { normal, randomKey, readAll, setBackend } from "../../../mod.ts";
import { assertClose } from "../../helpers.ts";
import { block, mixer, type MixerKind, modelConfig } from "../../../nn/mod.ts";
import { createWasm } from "../../../core/wasm/mod.ts";
import { on, train } from "./backend_helpers.ts";

const KINDS: readonly MixerKind[] = ["mha", "swa", "linear", "jet"];

// Every mixer's output on a [2, 24, 32] input (wide enough that its products span several panels).
async function mixerOutputs(): Promise<Float32Array[]> {
  const cfg = modelConfig({
    vocab: 16,
    width: 32,
    heads: 4,
    ffnHidden: 32,
    blocks: KINDS.map((k) => (k === "swa" ? block("swa", { window: 5 }) : block(k))),
  });
  const x = normal(randomKey(7), [2, 24, 32]);
  const out: Float32Array[] = [];
  for (const [i, spec] of cfg.blocks.entries()) {
    const m = mixer(cfg, spec);
    out.push((await m.apply(m.init(randomKey(10 + i)), x).data()) as Float32Array);
  }
  return out;
}

Deno.test("wasm threads: 1 and 2 threads give bit-identical training steps and mixer outputs", async () => {
  // threadedWork 1: every product with more than one panel is split, however small; scanThreadedWork
  // 0: every delta-rule scan over more than one batch x head too.
  const one = (await createWasm({ threads: 1 }))!;
  const two = (await createWasm({ threads: 2, threadedWork: 1, scanThreadedWork: 0 }))!;
  if (two.matmul.threads < 2) {
    one.matmul.close();
    two.matmul.close();
    throw new Error("this runtime started no matmul workers; the thread test cannot run");
  }
  const a = await on(one, async () => ({ train: await train(3), mixers: await mixerOutputs() }));
  const b = await on(two, async () => ({ train: await train(3), mixers: await mixerOutputs() }));
  assert.equal(one.matmul.threadedCalls, 0);
  assert.ok(two.matmul.threadedCalls > 50, `only ${two.matmul.threadedCalls} products were split`);
  assert.equal(one.scan.threadedCalls, 0);
  assert.ok(two.scan.threadedCalls > 0, "no scan was split");
  assert.deepEqual(b.train.losses, a.train.losses);
  assert.deepEqual(b.train.params, a.train.params);
  KINDS.forEach((k, i) => assert.deepEqual(b.mixers[i], a.mixers[i], `${k} forward`));
  assert.ok(a.mixers.every((o) => o.every(Number.isFinite)));
  one.matmul.close();
  two.matmul.close();
  two.scan.close();
});

Deno.test("backendInfo().threads: the wasm backend's threads (one a core here), 1 on the reference", async () => {
  const wasm = await setBackend("wasm");
  const own = (await createWasm({ threads: 2 }))!;
  try {
    // The shared backend asks for navigator.hardwareConcurrency threads and gets them where workers start.
    assert.equal(wasm.threads, navigator.hardwareConcurrency);
    assert.equal(own.threads, own.matmul.threads);
    assert.equal(own.threads, 2);
    assert.equal((await setBackend("cpu")).threads, 1);
  } finally {
    own.matmul.close();
    own.scan.close();
    own.loops.close();
  }
});

Deno.test("wasm threads: a batch of small products splits by products, with one thread's bits", async () => {
  // Six 12 x 12 @ 12 x 16 products (more rows than the few-rows path takes): 2,304 multiply-adds
  // each, below threadedWork, 13,824 together.
  const one = (await createWasm({ threads: 1 }))!;
  const two = (await createWasm({ threads: 2, threadedWork: 2 ** 12 }))!;
  // The operands are computed by loops, so they lie in the backend's heap (the random generator's
  // values are host arrays, and products of host arrays run one by one).
  const make = () => {
    const [a, b, at, bt] = [[2, 3, 12, 12], [2, 3, 12, 16], [2, 3, 12, 12], [2, 3, 16, 12]].map((s, i) =>
      normal(randomKey(i + 1), s).mul(1.5)
    );
    const heads = normal(randomKey(5), [2, 12, 3, 12]).mul(1.5); // split heads: rows 36 apart, packed on the host
    return [
      a.matmul(b),
      at.transpose().matmul(b), // A read from its transpose
      a.matmul(bt.transpose()), // B read from its transpose
      at.transpose().matmul(bt.transpose()),
      heads.permute([0, 2, 1, 3]).matmul(b),
      a.exp().matmul(b.mul(2)),
    ];
  };
  try {
    const want = await on(one, () => readAll(make()));
    const got = await on(two, () => readAll(make()));
    got.forEach((g, i) => assert.deepEqual(g, want[i], `product ${i}`));
    assert.ok(two.matmul.threadedCalls >= 5, `${two.matmul.threadedCalls} batches were split`);
    await setBackend("cpu");
    const ref = await readAll(make());
    ref.forEach((r, i) =>
      assertClose(got[i], r, { rtol: 1e-5, atol: 1e-5, msg: `product ${i} against the reference` })
    );
  } finally {
    for (const b of [one, two]) (b.matmul.close(), b.scan.close(), b.loops.close());
  }
});

Deno.test("wasm threads: products split by strips, by panels and by panels packing B give one thread's bits", async () => {
  const one = (await createWasm({ threads: 1 }))!;
  const two = (await createWasm({ threads: 2, threadedWork: 1 }))!;
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 9, max: 70 }),
      fc.integer({ min: 1, max: 40 }),
      fc.integer({ min: 9, max: 70 }),
      fc.nat(1000),
      async (M, K, N, seed) => {
        // Computed by loops, so in the heap; A and B as they are, transposed, and through a slice.
        const make = () => {
          const a = normal(randomKey(seed), [M, K]).mul(2), b = normal(randomKey(seed + 1), [K, N]).mul(2);
          const at = normal(randomKey(seed + 2), [K, M]).mul(2), bt = normal(randomKey(seed + 3), [N, K]).mul(2);
          const wide = normal(randomKey(seed + 4), [M, K + 3]).mul(2);
          return [
            a.matmul(b),
            at.transpose().matmul(bt.transpose()),
            a.matmul(bt.transpose()),
            wide.slice([0, 1], [M, K + 1]).matmul(b),
          ];
        };
        const want = await on(one, () => readAll(make()));
        const got = await on(two, () => readAll(make()));
        got.forEach((g, i) => assert.deepEqual(g, want[i], `product ${i} of ${M} x ${K} x ${N}`));
      },
    ),
    { numRuns: 25 },
  );
  const s = two.matmul.splits;
  try {
    assert.ok(s.strips > 0 && s.panels > 0 && s.ownB > 0, `every split ran: ${JSON.stringify(s)}`);
  } finally {
    for (const b of [one, two]) (b.matmul.close(), b.scan.close(), b.loops.close());
  }
});
