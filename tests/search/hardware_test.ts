// The hardware-aware step: geometries of exactly one state size (against a brute-force search over the mixer's own
// stateBytes), and the choice rule on synthetic tables.

import { randomKey } from "../../mod.ts";
import { block, initModel, mixer, modelConfig } from "../../nn/mod.ts";
import { chooseGeometry, jetGeometries, jetSpec } from "../../search/mod.ts";
import { assertThrowsMsg } from "../helpers.ts";

const cfg = modelConfig({ vocab: 16, width: 32, heads: 4, blocks: [block("jet")] });
const bytesOf = (h: number, k: number, v: number) =>
  mixer(cfg, block("jet", { heads: h, keyDim: k, valueDim: v })).stateBytes(1);

Deno.test("jetGeometries gives exactly the geometries of the requested state size, no more, no fewer", () => {
  for (const target of [bytesOf(4, 8, 8), bytesOf(2, 16, 12), bytesOf(3, 4, 20)]) {
    const got = jetGeometries(cfg, { stateBytes: target });
    // Brute force over the same ranges (heads 1..8, sizes multiples of 4 up to 64), asking the mixer itself.
    const want: string[] = [];
    for (let h = 1; h <= 8; h++) {
      for (let k = 4; k <= 64; k += 4) {
        for (let v = 4; v <= 64; v += 4) if (bytesOf(h, k, v) === target) want.push(`${h}x${k}x${v}`);
      }
    }
    const shown = got.map((g) => `${g.heads}x${g.keyDim}x${g.valueDim}`);
    if (shown.join() !== want.join()) throw new Error(`target ${target}: got ${shown}, want ${want}`);
    if (want.length < 2) throw new Error(`target ${target}: the test needs several geometries, found ${want}`);
  }
  // The default geometry's size, with its conv: every candidate's spec keeps the template's other fields.
  const like = block("jet", { conv: true, generatorHidden: 6 });
  const shapes = jetGeometries(cfg, { stateBytes: bytesOf(4, 8, 8), like });
  for (const s of shapes) {
    const spec = jetSpec(s, like);
    if (!(spec.attn === "jet" && spec.conv && spec.generatorHidden === 6)) throw new Error(JSON.stringify(spec));
    if (mixer(cfg, spec).stateBytes(1) !== bytesOf(4, 8, 8)) throw new Error(`${JSON.stringify(s)}: another size`);
  }
  // A size no geometry has: none, rather than a near miss.
  if (jetGeometries(cfg, { stateBytes: bytesOf(4, 8, 8) + 4 }).length !== 0) throw new Error("a near miss was kept");
});

Deno.test("every enumerated geometry builds a JetBlock whose params have its shapes", () => {
  for (const s of jetGeometries(cfg, { stateBytes: bytesOf(2, 16, 12) })) {
    const c = modelConfig({ ...cfg, blocks: [jetSpec(s)] });
    const p = initModel(randomKey(0), c).blocks[0].mixer as { readonly wq: { shape: readonly number[] } };
    if (p.wq.shape.join() !== `32,${s.heads * s.keyDim}`) throw new Error(`${JSON.stringify(s)}: wq [${p.wq.shape}]`);
  }
});

Deno.test("chooseGeometry takes the fastest within the tolerance of the best loss, ties to the lower loss", () => {
  const rows = [
    { loss: 2.0, tokensPerSecond: 300 }, // fastest, far behind
    { loss: 1.5, tokensPerSecond: 100 }, // the best loss
    { loss: 1.54, tokensPerSecond: 180 },
    { loss: 1.56, tokensPerSecond: 250 },
    { loss: 1.52, tokensPerSecond: 180 }, // same speed as row 2, lower loss
  ];
  const cases: [number, number][] = [[0, 1], [0.03, 4], [0.05, 4], [0.06, 3], [0.5, 0]];
  for (const [tolerance, want] of cases) {
    const got = chooseGeometry(rows, { tolerance });
    if (got !== want) throw new Error(`tolerance ${tolerance}: row ${got}, want ${want}`);
  }
  // Equal rows: the earlier one.
  if (chooseGeometry([{ loss: 1, tokensPerSecond: 5 }, { loss: 1, tokensPerSecond: 5 }], { tolerance: 0 }) !== 0) {
    throw new Error("a full tie did not go to the first row");
  }
});

Deno.test("chooseGeometry refuses an empty table, a negative tolerance and non-finite rows", async () => {
  await assertThrowsMsg(() => chooseGeometry([], { tolerance: 0 }), "no geometries");
  await assertThrowsMsg(() => chooseGeometry([{ loss: 1, tokensPerSecond: 1 }], { tolerance: -1 }), "tolerance");
  await assertThrowsMsg(() => chooseGeometry([{ loss: NaN, tokensPerSecond: 1 }], { tolerance: 0 }), "row 0");
});
