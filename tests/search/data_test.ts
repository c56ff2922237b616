// The toy data's --queries variant, read back from the decoded bytes: counts, answers, mask, and refusals.

import assert from "node:assert/strict";
import { decodeBytes, randomKey, toyBatch } from "../../mod.ts";
import { assertThrowsMsg } from "../helpers.ts";

// Reads one decoded toy sequence back: its stated pairs, and each "?K" query with the byte after it.
function parse(text: string, pairs: number) {
  const stated = new Map<string, string>();
  for (let i = 0; i < pairs; i++) stated.set(text[3 * i], text[3 * i + 1]);
  const queries = [...text.matchAll(/\?([A-Z])(.)?/g)].map((m) => ({ key: m[1], value: m[2], at: m.index! + 1 }));
  return { stated, queries };
}

Deno.test("toyBatch --queries: that many queries per sequence, each answered by its stated value", async () => {
  const [batch, seqLen, pairs, queries] = [3, 48, 4, 10];
  const b = toyBatch(randomKey(5), { batch, seqLen, pairs, queries });
  const x = await b.inputs.data(), y = await b.targets.data(), ans = await b.answers.data();
  assert.deepEqual(await b.answers.sum().item(), batch * queries);
  for (let s = 0; s < batch; s++) {
    // The whole sequence: the inputs and the last target.
    const ids = [...x.slice(s * seqLen, (s + 1) * seqLen), y[(s + 1) * seqLen - 1]];
    const text = decodeBytes(ids);
    const { stated, queries: qs } = parse(text, pairs);
    assert.deepEqual(stated.size, pairs, `distinct keys in ${text}`);
    assert.deepEqual(qs.length, queries, `queries in ${text}`);
    for (const q of qs) {
      assert.deepEqual(q.value, stated.get(q.key), `${text}: ?${q.key}`);
      // The key's position is where the answer is the next target.
      assert.deepEqual(ans[s * seqLen + q.at], 1, `${text}: answer mask after ?${q.key}`);
    }
  }
});

Deno.test("toyBatch: queries left out is queries = pairs, byte for byte", async () => {
  const a = toyBatch(randomKey(3), { batch: 2, seqLen: 40, pairs: 3 });
  const b = toyBatch(randomKey(3), { batch: 2, seqLen: 40, pairs: 3, queries: 3 });
  assert.deepEqual(await a.inputs.data(), await b.inputs.data());
  assert.deepEqual(await a.answers.data(), await b.answers.data());
  const c = toyBatch(randomKey(3), { batch: 2, seqLen: 40, pairs: 3, queries: 6 });
  assert.equal(await c.answers.sum().item(), 12);
});

Deno.test("toyBatch refuses queries that do not fit the sequence or are not positive integers", () => {
  for (const queries of [0, 1.5, 11]) {
    assertThrowsMsg(() => toyBatch(randomKey(0), { batch: 1, seqLen: 48, pairs: 4, queries }), "queries must be");
  }
  // 3 * (4 + 10) + 4 = 46 fits 48.
  toyBatch(randomKey(0), { batch: 1, seqLen: 48, pairs: 4, queries: 10 });
});
