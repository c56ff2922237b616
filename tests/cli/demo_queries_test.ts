// The demo's default --queries: as many recall queries as the toy data's sequence holds.

import { fillQueries } from "../../cli/commands/demo.ts";
import { toyBatch } from "../../search/data.ts";
import { randomKey } from "../../mod.ts";
import { assert, refused } from "./helpers.ts";

const fits = (seqLen: number, pairs: number, queries: number) => 3 * (pairs + queries) + 4 <= seqLen;

Deno.test("fillQueries is the largest query count toyBatch accepts", () => {
  assert(fillQueries(48, 4) === 10, `48 tokens, 4 pairs: ${fillQueries(48, 4)} queries, want 10`);
  for (let seqLen = 16; seqLen <= 130; seqLen++) {
    for (let pairs = 1; pairs <= 6; pairs++) {
      const q = fillQueries(seqLen, pairs);
      if (q < 1) continue;
      assert(fits(seqLen, pairs, q) && !fits(seqLen, pairs, q + 1), `seq-len ${seqLen}, pairs ${pairs}: ${q}`);
    }
  }
  // toyBatch itself agrees at the edge: the filled count is accepted, one more is refused.
  const key = randomKey(3);
  toyBatch(key, { batch: 1, seqLen: 48, pairs: 4, queries: fillQueries(48, 4) });
  let threw = false;
  try {
    toyBatch(key, { batch: 1, seqLen: 48, pairs: 4, queries: fillQueries(48, 4) + 1 });
  } catch {
    threw = true;
  }
  assert(threw, "toyBatch accepted 11 queries in 48 tokens with 4 pairs");
});

Deno.test("demo refuses --queries that do not fit its sequence", async () => {
  await refused(["demo", "--queries", "11"], "3 * (pairs + queries) + 4 <= seq-len (48), got 11");
});
