// summary.json of search and demo: the teacher, all-jet and chosen models side by side, checked against the run's
// own printout and trace, and decoding state against the closed form.

import { assert, cli, DATA, MODEL, ok } from "./helpers.ts";

const SEARCH = ["--backend", "cpu", ...MODEL, ...DATA, "--log-every", "1"];

// TINY's model: 2 layers, 2 KV heads of 8 dims: an mha layer's KV cache is 2 (k, v) x 2 x 8 x context x 4 bytes.
const mhaBytes = (context: number) => 2 * 2 * 8 * context * 4;
// The base model's conv before attention (search's default --base mha+conv) keeps its last 3 inputs of width 16.
const convBytes = 3 * 16 * 4;

interface Model {
  blocks: string[];
  loss: number;
  recall: number | null;
  stateBytes: number;
}

Deno.test("search writes summary.json: teacher, all-jet and chosen, matching the printout and the trace", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jetfold-summary-" });
  try {
    const out = `${dir}/run`;
    const r = ok(await cli("search", ...SEARCH, "--steps", "2", "--context", "64", "--out", out), "search");
    const s = JSON.parse(await Deno.readTextFile(`${out}/summary.json`));
    assert(
      JSON.stringify(Object.keys(s)) === '["teacher","allJet","chosen","hardware","seconds"]',
      Object.keys(s).join(),
    );
    const { teacher, allJet, chosen } = s as Record<string, Model>;
    for (const m of [teacher, allJet, chosen]) {
      assert(JSON.stringify(Object.keys(m)) === '["blocks","loss","recall","stateBytes"]', JSON.stringify(m));
    }
    assert(
      teacher.blocks.join() === "mha+conv,mha+conv" && allJet.blocks.join() === "jet+conv,jet+conv",
      JSON.stringify(s),
    );
    assert(teacher.stateBytes === 2 * (mhaBytes(64) + convBytes), `teacher state ${teacher.stateBytes}`);
    assert(allJet.stateBytes > 0 && allJet.stateBytes < teacher.stateBytes, `all-jet state ${allJet.stateBytes}`);
    // The printed base model's loss, to its three decimals.
    const printed = r.stdout.match(/base model: held-out loss (\d+\.\d+)/)![1];
    assert(teacher.loss.toFixed(3) === printed, `teacher loss ${teacher.loss} vs printed ${printed}`);
    // The chosen model is the search's choice, with the loss and recall its trace recorded for it.
    const search = JSON.parse(await Deno.readTextFile(`${out}/search.json`));
    assert(chosen.blocks.join() === search.choice.join(), `${chosen.blocks} vs ${search.choice}`);
    const visit = search.trace.find((v: { config: string[] }) => v.config.join() === search.choice.join());
    assert(visit.loss === chosen.loss && visit.accuracy === chosen.recall, `${JSON.stringify(visit)} vs chosen`);
    const mhaLayers = chosen.blocks.filter((b) => b.startsWith("mha")).length;
    assert(chosen.stateBytes >= mhaLayers * mhaBytes(64), `chosen state ${chosen.stateBytes}`);
    assert(Array.isArray(s.hardware) && s.hardware.length === 0 && s.seconds > 0, JSON.stringify(s));
    const html = await Deno.readTextFile(`${out}/report.html`);
    assert(
      html.includes("<h2>Teacher, all-jet and chosen</h2>") && html.includes("decoding state at 64 tokens"),
      "report",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("summary.json of the seed space has no all-jet model; --base mha pretrains plain attention", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jetfold-summary-" });
  try {
    const out = `${dir}/run`;
    const args = ["--steps", "1", "--space", "seed", "--base", "mha", "--out", out];
    ok(await cli("search", ...SEARCH, ...args), "search --space seed");
    const s = JSON.parse(await Deno.readTextFile(`${out}/summary.json`));
    assert(
      s.allJet === null && s.teacher.blocks.join() === "mha,mha" && s.chosen.blocks.length === 2,
      JSON.stringify(s),
    );
    assert(s.teacher.stateBytes === 2 * mhaBytes(4096), `teacher state ${s.teacher.stateBytes}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("demo's summary.json scores the post-tuned model as chosen", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jetfold-summary-" });
  try {
    const out = `${dir}/run`;
    const r = ok(await cli("demo", ...SEARCH, "--steps", "2", "--tokens", "2", "--out", out), "demo");
    const s = JSON.parse(await Deno.readTextFile(`${out}/summary.json`));
    const after = r.stdout.match(/after: +held-out loss (\d+\.\d+)/)![1];
    assert(s.chosen.loss.toFixed(3) === after, `chosen loss ${s.chosen.loss} vs the printed after-tune ${after}`);
    assert(s.allJet.blocks.join() === "jet+conv,jet+conv", JSON.stringify(s.allJet));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
