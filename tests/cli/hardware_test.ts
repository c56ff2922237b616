// search --hardware-search: the geometry table in search.json and summary.json, the rule applied to it, the saved
// model's geometry, and the same table (throughput aside) from the same seed.

import { block, chooseGeometry, type ModelConfig, modelConfig, stateBytes } from "../../mod.ts";
import { loadCheckpoint } from "../../cli/checkpoint.ts";
import { assert, cli, ok, refused } from "./helpers.ts";

const SIZES = ["--backend", "cpu", "--seq-len", "32", "--batch", "2", "--eval-batch", "4", "--log-every", "5"];

interface Row {
  heads: number;
  keyDim: number;
  valueDim: number;
  stateBytes: number;
  tokensPerSecond: number;
  loss: number;
  chosen: boolean;
}

Deno.test("--hardware-search options are refused where they cannot apply", async () => {
  await refused(["search", "--hardware-steps", "3"], "--hardware-steps has no effect without --hardware-search");
  await refused(["search", "--hardware-search", "--space", "seed"], "the seed space has no jet");
  // demo runs the step by default; --no-hardware-search turns it off, and then its options mean nothing.
  await refused(
    ["demo", "--no-hardware-search", "--hardware-tolerance", "0.1"],
    "--hardware-tolerance has no effect without --hardware-search",
  );
  await refused(["demo", "--hardware-search"], "unknown option --hardware-search for demo");
  await refused(["search", "--no-hardware-search"], "unknown option --no-hardware-search for search");
});

Deno.test("search --hardware-search tries geometries of equal state, keeps the rule's choice, and repeats from the seed", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jetfold-hardware-" });
  try {
    // A trained all-jet base and no supernet training: the fresh attention candidates lose, so the choice is jet, jet.
    const model = ["--width", "16", "--heads", "2", "--ffn-hidden", "32"];
    ok(await cli("train", ...SIZES, ...model, "--blocks", "jet,jet", "--steps", "20", "--out", `${dir}/base`), "train");
    const run = async (name: string) => {
      const args = ["--run", `${dir}/base`, "--supernet-steps", "0", "--max-mha", "0", "--distill", "mse"];
      const hw = ["--hardware-search", "--hardware-steps", "2", "--hardware-candidates", "3"];
      ok(await cli("search", ...SIZES, ...args, ...hw, "--out", `${dir}/${name}`), `search ${name}`);
      const summary = JSON.parse(await Deno.readTextFile(`${dir}/${name}/summary.json`));
      const search = JSON.parse(await Deno.readTextFile(`${dir}/${name}/search.json`));
      return { summary, search, rows: summary.hardware as Row[] };
    };
    const a = await run("a");
    assert(a.search.choice.join() === "jet,jet", `the search chose ${a.search.choice}`);
    assert(a.rows.length === 3, `rows ${JSON.stringify(a.rows)}`);
    assert(
      JSON.stringify(a.search.hardware.geometries) === JSON.stringify(a.rows),
      "search.json and summary.json differ",
    );
    // Equal state: each geometry's JetBlock has the searched one's bytes (asked of the library), the whole model too.
    const cfg: ModelConfig = modelConfig({ vocab: 256, width: 16, heads: 2, ffnHidden: 32, blocks: [block("jet")] });
    const perLayer = (r: Row) =>
      stateBytes(block("jet", { heads: r.heads, keyDim: r.keyDim, valueDim: r.valueDim }), { cfg, context: 1 });
    assert(a.rows.some((r) => r.heads === 2 && r.keyDim === 8 && r.valueDim === 8), "the searched 2x8x8 is missing");
    assert(a.rows.every((r) => perLayer(r) === perLayer(a.rows[0])), `unequal state: ${a.rows.map(perLayer)}`);
    assert(a.rows.every((r) => r.stateBytes === a.summary.chosen.stateBytes), "model state bytes differ");
    // The rule on the recorded table gives the recorded choice, and the checkpoint has that geometry.
    const picked = chooseGeometry(a.rows, { tolerance: 0.02 });
    assert(
      a.rows.filter((r) => r.chosen).length === 1 && a.rows[picked].chosen,
      `choice ${picked}: ${JSON.stringify(a.rows)}`,
    );
    const saved = await loadCheckpoint(`${dir}/a/checkpoint.safetensors`);
    for (const b of saved.config.blocks) {
      const g = b as { heads?: number; keyDim?: number; valueDim?: number };
      const want = a.rows[picked];
      assert(g.heads === want.heads && g.keyDim === want.keyDim && g.valueDim === want.valueDim, JSON.stringify(b));
    }
    assert(a.summary.chosen.loss === a.rows[picked].loss, "summary's chosen loss is not its geometry's");
    const html = await Deno.readTextFile(`${dir}/a/report.html`);
    assert(html.includes("JetBlock geometries at equal state"), "the report lacks the geometry table");
    // The table as a plot: one point per geometry, labelled with its shape, the kept one (only) marked.
    const plot = html.slice(html.indexOf('aria-label="JetBlock geometries"'));
    const points = [...plot.slice(0, plot.indexOf("</svg>")).matchAll(/<g class="geometry"><title>([^<]*)<\/title>/g)];
    const shapes = points.map((m) => m[1].split(":")[0]).sort().join();
    assert(shapes === a.rows.map((r) => `${r.heads}x${r.keyDim}x${r.valueDim}`).sort().join(), `plotted ${shapes}`);
    const kept = points.filter((m) => m[1].endsWith(", kept")).map((m) => m[1].split(":")[0]);
    const want = a.rows[picked];
    assert(kept.join() === `${want.heads}x${want.keyDim}x${want.valueDim}`, `kept in the plot: ${kept}`);
    // Their training shares one loss chart, a line per geometry.
    const charts = html.match(/aria-label="[^"]* loss"/g) ?? [];
    assert(charts.filter((c) => c.includes("geometr")).join() === 'aria-label="geometries loss"', charts.join());
    // The same seed: the same geometries and losses (throughput is measured, so it differs).
    const b = await run("b");
    const scores = (rows: Row[]) =>
      JSON.stringify(
        rows.map(({ heads, keyDim, valueDim, stateBytes, loss }) => [heads, keyDim, valueDim, stateBytes, loss]),
      );
    assert(scores(a.rows) === scores(b.rows), `${scores(a.rows)} vs ${scores(b.rows)}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
