// The toy data's --queries in a checkpoint's data record: checked, left out when it is the default, and reopened
// into the same batches.

import assert from "node:assert/strict";
import { checkDataMeta, openData, reopenData } from "../../cli/data.ts";
import { assertThrowsMsg } from "../helpers.ts";

const TOY = { data: null, seed: 3, seqLen: 48, batch: 2, pairs: 4, evalBatch: 2 };

Deno.test("toy data metadata records --queries only where it differs from --pairs", async () => {
  assert.deepEqual((await openData({ ...TOY, queries: null })).meta, {
    source: "toy",
    seed: 3,
    seqLen: 48,
    batch: 2,
    pairs: 4,
  });
  assert.equal("queries" in (await openData({ ...TOY, queries: 4 })).meta, false);
  assert.deepEqual((await openData({ ...TOY, queries: 10 })).meta, {
    source: "toy",
    seed: 3,
    seqLen: 48,
    batch: 2,
    pairs: 4,
    queries: 10,
  });
});

Deno.test("reopening a toy record with queries gives the same batches, held-out set and prompt", async () => {
  const first = await openData({ ...TOY, queries: 10 });
  const again = await reopenData(checkDataMeta(JSON.parse(JSON.stringify(first.meta))), 2);
  assert.deepEqual(again.meta, first.meta);
  for (const [a, b] of [[first.batch(1, 5), again.batch(1, 5)], [first.heldOut()[0], again.heldOut()[0]]]) {
    assert.deepEqual(await b.inputs.data(), await a.inputs.data());
    assert.equal(await a.answers.sum().item(), 20); // 2 sequences x 10 queries
    assert.deepEqual(await b.answers.data(), await a.answers.data());
  }
  assert.deepEqual(await again.prompt(), await first.prompt());
  // Without the field the record is the default of one query per pair, as every run before the option.
  const old = await reopenData(checkDataMeta({ source: "toy", seed: 3, seqLen: 48, batch: 2, pairs: 4 }), 2);
  assert.equal(await old.batch(1, 5).answers.sum().item(), 8);
});

Deno.test("checkDataMeta refuses a bad queries field, and queries on text data", () => {
  const toy = { source: "toy", seed: 0, seqLen: 48, batch: 2, pairs: 4 };
  for (const queries of [0, 2.5, "10"]) {
    assertThrowsMsg(() => checkDataMeta({ ...toy, queries }), "queries must be an integer >= 1");
  }
  const text = { source: "text", file: "a.txt", bytes: 10, fnv1a: "0123abcd", seed: 0, seqLen: 48, batch: 2 };
  assertThrowsMsg(() => checkDataMeta({ ...text, queries: 10 }), 'unknown field "queries"');
});
