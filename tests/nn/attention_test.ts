// Attention mixers: a naive float64 reference, GQA equivalences, windows, RoPE, gradients.

import fc from "fast-check";
import { normal, randomKey, type Tensor, tensor } from "../../mod.ts";
import { attention, type AttentionParams, block, mixer, modelConfig, rope } from "../../nn/mod.ts";
import { assertClose, assertThrowsMsg, checkGradFD, useF64, values } from "../helpers.ts";

useF64();

// Plain-JS attention over nested arrays: the independent reference. x [T][D], weights [D][*].
function naiveAttention(
  x: number[][],
  w: Record<"wq" | "wk" | "wv" | "wo", number[][]>,
  H: number,
  G: number,
  window: number,
  theta: number,
): number[][] {
  const T = x.length, E = w.wq[0].length / H;
  const mm = (a: number[][], b: number[][]) =>
    a.map((r) => b[0].map((_, j) => r.reduce((s, v, k) => s + v * b[k][j], 0)));
  const rot = (v: number[], pos: number) => {
    const half = E / 2;
    return v.map((_, i) => {
      const f = i < half ? i : i - half, ang = pos * Math.pow(theta, (-2 * f) / E);
      return i < half
        ? v[i] * Math.cos(ang) - v[i + half] * Math.sin(ang)
        : v[i - half] * Math.sin(ang) + v[i] * Math.cos(ang);
    });
  };
  const q = mm(x, w.wq), k = mm(x, w.wk), v = mm(x, w.wv);
  const out = x.map(() => new Array<number>(H * E).fill(0));
  for (let h = 0; h < H; h++) {
    const g = Math.floor(h / (H / G));
    for (let t = 0; t < T; t++) {
      const qt = rot(q[t].slice(h * E, h * E + E), t);
      const scores: number[] = [];
      for (let s = 0; s <= t; s++) {
        if (t - s >= window) {
          scores.push(-Infinity);
          continue;
        }
        const ks = rot(k[s].slice(g * E, g * E + E), s);
        scores.push(qt.reduce((acc, a, i) => acc + a * ks[i], 0) / Math.sqrt(E));
      }
      const m = Math.max(...scores), e = scores.map((sc) => Math.exp(sc - m)), z = e.reduce((a, b) => a + b, 0);
      for (let s = 0; s <= t; s++) {
        for (let i = 0; i < E; i++) out[t][h * E + i] += (e[s] / z) * v[s][g * E + i];
      }
    }
  }
  return mm(out, w.wo);
}

async function nested(t: Tensor): Promise<number[][]> {
  const flat = await values(t), [r, c] = t.shape;
  return Array.from({ length: r }, (_, i) => flat.slice(i * c, i * c + c));
}

Deno.test("mha, gqa and swa match a naive float64 attention", async () => {
  for (
    const [heads, kvHeads, spec] of [[2, 2, block("mha")], [4, 2, block("mha")], [
      4,
      1,
      block("swa", { window: 3 }),
    ]] as const
  ) {
    const cfg = modelConfig({ vocab: 8, width: 16, heads, kvHeads, blocks: [spec] });
    const m = attention(cfg, spec);
    const p = m.init(randomKey(heads * 10 + kvHeads));
    const x = normal(randomKey(5), [1, 6, 16]);
    const got = await values(m.apply(p, x));
    const w = {
      wq: await nested(p.wq),
      wk: await nested(p.wk),
      wv: await nested(p.wv),
      wo: await nested(p.wo),
    };
    const window = spec.attn === "swa" ? spec.window : Infinity;
    const want = naiveAttention(await nested(x.reshape([6, 16])), w, heads, kvHeads, window, cfg.ropeTheta).flat();
    assertClose(got, want, { rtol: 1e-9, atol: 1e-9, msg: `${heads}/${kvHeads} ${spec.attn}` });
  }
});

Deno.test("grouped-query attention equals multi-head attention with the key/value heads repeated", async () => {
  const spec = block("mha");
  const gqa = modelConfig({ vocab: 8, width: 16, heads: 4, kvHeads: 2, blocks: [spec] });
  const mha = modelConfig({ vocab: 8, width: 16, heads: 4, kvHeads: 4, blocks: [spec] });
  const p = attention(gqa, spec).init(randomKey(1));
  // Each kv head serves two query heads: repeat its columns (head size 4) once per query head.
  const repeat = (w: Tensor) => w.reshape([16, 2, 1, 4]).broadcastTo([16, 2, 2, 4]).reshape([16, 16]);
  const q: AttentionParams = { ...p, wk: repeat(p.wk), wv: repeat(p.wv) };
  const x = normal(randomKey(2), [2, 5, 16]);
  assertClose(await values(attention(gqa, spec).apply(p, x)), await values(attention(mha, spec).apply(q, x)), {
    rtol: 1e-10,
    atol: 1e-12,
  });
});

Deno.test("sliding-window attention with a window covering the sequence equals full attention", async () => {
  const cfg = modelConfig({ vocab: 8, width: 8, heads: 2, blocks: [block("mha")] });
  const p = attention(cfg, block("mha")).init(randomKey(3));
  const x = normal(randomKey(4), [1, 7, 8]);
  const full = await values(attention(cfg, block("mha")).apply(p, x));
  assertClose(await values(attention(cfg, block("swa", { window: 7 })).apply(p, x)), full, {
    rtol: 1e-12,
    atol: 1e-12,
  });
  const narrow = await values(attention(cfg, block("swa", { window: 2 })).apply(p, x));
  if (narrow.every((v, i) => Math.abs(v - full[i]) < 1e-9)) throw new Error("a window of 2 should change the output");
});

Deno.test("rope preserves norms and makes scores depend only on relative position", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 0, max: 50 }),
      fc.integer({ min: 0, max: 50 }),
      fc.nat(100),
      async (m, n, seed) => {
        const q = normal(randomKey(seed), [1, 1, 8]), k = normal(randomKey(seed + 1), [1, 1, 8]);
        const score = async (a: number, b: number) =>
          (await values(rope(q, { theta: 100, offset: a }).mul(rope(k, { theta: 100, offset: b })).sum()))[0];
        assertClose([await score(m, n)], [await score(m + 7, n + 7)], { rtol: 1e-9, atol: 1e-9 });
        const norm = async (t: Tensor) => (await values(t.square().sum()))[0];
        assertClose([await norm(rope(q, { theta: 100, offset: m }))], [await norm(q)], { rtol: 1e-12, atol: 0 });
      },
    ),
    { numRuns: 20 },
  );
});

Deno.test("attention vjp matches finite differences for mha and swa", async () => {
  for (const spec of [block("mha"), block("swa", { window: 2 })]) {
    const cfg = modelConfig({ vocab: 8, width: 8, heads: 2, kvHeads: 1, blocks: [spec] });
    const m = attention(cfg, spec), p = m.init(randomKey(7));
    const x = normal(randomKey(8), [1, 4, 8]);
    const f = (wq: Tensor, wk: Tensor, xi: Tensor) => m.apply({ ...p, wq, wk }, xi).sin().sum();
    await checkGradFD(f, [p.wq, p.wk, x], { rtol: 1e-6, atol: 1e-8, msg: spec.attn });
  }
});

Deno.test("configs are validated with errors that name the field", async () => {
  const base = { vocab: 8, width: 16, heads: 4, blocks: [block("mha")] };
  await assertThrowsMsg(() => modelConfig({ ...base, heads: 3 }), "heads (3) must divide width (16)");
  await assertThrowsMsg(() => modelConfig({ ...base, kvHeads: 3 }), "kvHeads (3) must divide heads (4)");
  await assertThrowsMsg(() => modelConfig({ ...base, blocks: [] }), "blocks must be a non-empty array");
  await assertThrowsMsg(() => modelConfig({ ...base, vocab: 0 }), "vocab must be a positive integer");
  await assertThrowsMsg(() => block("swa"), "window must be a positive integer for swa");
  await assertThrowsMsg(() => block("rnn" as never), "attn must be one of mha, swa, linear, jet");
  // A spec that skipped `block` (parsed JSON, say) is named by mixer too, not "not a function".
  await assertThrowsMsg(
    () => mixer(modelConfig(base), { attn: "rnn", ffn: "swiglu" } as never),
    "mixer",
    "attn must be",
  );
  await assertThrowsMsg(
    () => modelConfig({ ...base, blocks: [{ attn: "mha", ffn: "relu" } as never] }),
    "blocks[0]",
    "ffn must be one of swiglu, gated",
  );
  await assertThrowsMsg(() => rope(tensor([1, 2, 3]), { theta: 10 }), "rope: the last axis must be even");
});
