import { randomKey, stats, type Tensor, tensor, zeros } from "../../mod.ts";
import { block, generate, initModel, modelConfig, type ModelParams } from "../../nn/mod.ts";
import { assertThrowsMsg } from "../helpers.ts";

function assert(ok: boolean, msg: string): void {
  if (!ok) throw new Error(msg);
}

const cfg = modelConfig({ vocab: 11, width: 8, heads: 2, ffnHidden: 12, blocks: [block("mha"), block("jet")] });
const params = initModel(randomKey(1), cfg);

/** Runs `fn`, which must fail with `fragments`, in one sentence and without any device work. */
async function refusedBeforeWork(fn: () => Promise<unknown>, ...fragments: string[]): Promise<void> {
  const before = stats();
  let message = "";
  await assertThrowsMsg(() => fn().catch((e) => (message = e.message, Promise.reject(e))), ...fragments);
  const after = stats();
  assert(after.realizations === before.realizations && after.dispatches === before.dispatches, "work was done");
  assert(!message.includes("\n"), `not one line: ${message}`);
}

Deno.test("generate refuses params of another config, naming the first leaf that differs and both shapes", async () => {
  const run = (p: unknown, c = cfg) => () => generate(p as ModelParams, c, [1, 2], { maxNewTokens: 2 });
  const wider = modelConfig({ ...cfg, width: 16 });
  await refusedBeforeWork(
    run(params, wider),
    `generate: the params are not of this config: "blocks.0.ffn.w1" is f32 [8, 12] but the config needs f32 [16, 12]`,
  );
  const deeper = modelConfig({ ...cfg, blocks: [...cfg.blocks, block("linear")] });
  await refusedBeforeWork(run(params, deeper), `"blocks.2.ffn.w1" is missing (the config needs f32 [8, 12])`);
  const shallower = modelConfig({ ...cfg, blocks: [block("mha")] });
  await refusedBeforeWork(run(params, shallower), `"blocks.1.ffn.w1" (f32 [8, 12]) has no place in the config`);
  const swapped = modelConfig({ ...cfg, blocks: [block("jet"), block("mha")] });
  await refusedBeforeWork(run(params, swapped), `generate: the params are not of this config: "blocks.0.mixer.`);
  const withConv = modelConfig({ ...cfg, blocks: [block("mha", { conv: true }), block("jet")] });
  await refusedBeforeWork(run(params, withConv), `"blocks.0.conv" is missing (the config needs f32 [8, 4])`);
  await refusedBeforeWork(run({ ...params, embed: zeros([11, 8], { dtype: "i32" }) }), `"embed" is i32 [11, 8]`);
  await refusedBeforeWork(run({ ...params, normf: 1 }), "generate: params: pytree leaves must be tensors", "normf");
  await refusedBeforeWork(run({ ...params, blocks: undefined }), `"blocks.0.ffn.w1" is missing`);
});

Deno.test("generate refuses prompt ids outside the vocabulary by position, before any work", async () => {
  const run = (prompt: Tensor | readonly unknown[]) => () =>
    generate(params, cfg, prompt as readonly number[], { maxNewTokens: 3 });
  await refusedBeforeWork(run([1, 11]), "generate: prompt[1] = 11 is not a token id (an integer in [0, 11))");
  await refusedBeforeWork(run([-1]), "prompt[0] = -1 is not a token id");
  await refusedBeforeWork(run([2, 1.5]), "prompt[1] = 1.5 is not a token id");
  await refusedBeforeWork(run([NaN]), "prompt[0] = NaN is not a token id");
  await refusedBeforeWork(run(["3"]), `prompt[0] = "3" is not a token id`);
  const rows = tensor([[1, 2, 3], [4, 5, 99]], { dtype: "i32" });
  const before = stats().readbacks;
  await assertThrowsMsg(run(rows), "generate: prompt[1][2] = 99 is not a token id (an integer in [0, 11))");
  assert(stats().readbacks - before <= 1, "more than the prompt was read");
  // A prompt of the wrong dtype or rank still gets prefill's sentence.
  await assertThrowsMsg(run(tensor([[1, 2]])), "prefill: the prompt must be i32 [batch, time]");
  // Ids at the ends of the range are fine.
  const [ids] = await generate(params, cfg, [0, 10], { maxNewTokens: 2 });
  assert(ids.length === 2 && ids.every((i) => i >= 0 && i < 11), `generated ${ids}`);
});

Deno.test("generate checks the config itself", async () => {
  const bad = { ...cfg, normEps: "1e-6" } as unknown as typeof cfg;
  await assertThrowsMsg(() => generate(params, bad, [1], { maxNewTokens: 1 }), "normEps must be a positive number");
});
