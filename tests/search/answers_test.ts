// evaluateAnswers against an independent computation: each item alone (no padding), its answer-token loss from the
// logits in float64 on the host, and exact match by greedy generation.

import { block, forward, generate, initModel, modelConfig, randomKey, tensor } from "../../mod.ts";
import { type Answer, evaluateAnswers, extractSubnet, initSupernet, pathObjective } from "../../search/mod.ts";
import { assertClose, assertThrowsMsg, values } from "../helpers.ts";

const V = 16;
const cfg = modelConfig({ vocab: V, width: 16, heads: 2, ffnHidden: 24, blocks: [block("mha"), block("jet")] });
const params = initModel(randomKey(1), cfg);

// Half the answers are the model's own greedy continuation (exact matches), half have their last token changed.
async function makeItems(): Promise<Answer[]> {
  const prompts = [[1, 2, 3, 4, 5], [7], [3, 3, 9], [12, 0, 5, 5, 8, 1, 2], [6, 6], [10, 11, 4]];
  return await Promise.all(prompts.map(async (prompt, i) => {
    const [greedy] = await generate(params, cfg, prompt, { maxNewTokens: 1 + (i % 3) });
    const answer = i % 2 === 0 ? greedy : [...greedy.slice(0, -1), (greedy[greedy.length - 1] + 1) % V];
    return { prompt, answer };
  }));
}

// The item alone: the mean of -log p(answer token) over its answer positions, summed here, and whether generate
// reproduces its answer.
async function alone(item: Answer): Promise<{ nll: number; exact: boolean }> {
  const seq = [...item.prompt, ...item.answer];
  const logits = await values(forward(params, tensor([seq.slice(0, -1)], { dtype: "i32" }), cfg));
  let nll = 0;
  for (let t = item.prompt.length - 1; t < seq.length - 1; t++) {
    const row = logits.slice(t * V, t * V + V);
    const max = Math.max(...row);
    const lse = max + Math.log(row.reduce((a, x) => a + Math.exp(x - max), 0));
    nll += lse - row[seq[t + 1]];
  }
  const [greedy] = await generate(params, cfg, [...item.prompt], { maxNewTokens: item.answer.length });
  return { nll, exact: greedy.every((id, i) => id === item.answer[i]) };
}

Deno.test("evaluateAnswers matches each item scored alone: answer-token loss and greedy exact match", async () => {
  const items = await makeItems();
  const refs = await Promise.all(items.map(alone));
  const tokens = items.reduce((n, it) => n + it.answer.length, 0);
  const wantLoss = refs.reduce((a, r) => a + r.nll, 0) / tokens;
  const wantAcc = refs.filter((r) => r.exact).length / items.length;
  if (wantAcc !== 0.5) throw new Error(`the construction should give half exact matches, got ${wantAcc}`);
  // Batched 4 and 2 (padding, a second pass) and all at once: the same numbers.
  for (const batch of [4, 16]) {
    const ev = await evaluateAnswers(params, cfg, { answers: items, batch });
    // f32 logits on the CPU backend against float64 host arithmetic on the same logits: 1e-5 relative.
    assertClose([ev.loss], [wantLoss], { rtol: 1e-5, atol: 1e-6, msg: `batch ${batch} loss` });
    if (ev.accuracy !== wantAcc) throw new Error(`batch ${batch}: accuracy ${ev.accuracy}, want ${wantAcc}`);
    assertClose([ev.perplexity], [Math.exp(ev.loss)], { rtol: 1e-12 });
  }
});

Deno.test("pathObjective scores an answer set as evaluateAnswers does", async () => {
  const items = await makeItems();
  const sn = initSupernet(randomKey(2), cfg, [[block("mha")], [block("mha"), block("jet")]]);
  const path = [block("mha"), block("jet")];
  const score = pathObjective(sn, { answers: items }, { accuracy: 2 });
  const s = await score(path);
  const sub = extractSubnet(sn, path);
  const ev = await evaluateAnswers(sub.params, sub.config, { answers: items });
  assertClose([s], [ev.loss - 2 * ev.accuracy], { rtol: 1e-6 });
});

Deno.test("evaluateAnswers refuses empty sets, empty prompts or answers, and ids outside the vocabulary", async () => {
  await assertThrowsMsg(() => evaluateAnswers(params, cfg, { answers: [] }), "no items");
  await assertThrowsMsg(() => evaluateAnswers(params, cfg, { answers: [{ prompt: [], answer: [1] }] }), "empty prompt");
  await assertThrowsMsg(() => evaluateAnswers(params, cfg, { answers: [{ prompt: [1], answer: [] }] }), "empty answer");
  await assertThrowsMsg(() => evaluateAnswers(params, cfg, { answers: [{ prompt: [1], answer: [V] }] }), `id ${V}`);
});
