// --distill: its parsing, what search and tune refuse, and distillation runs of both.

import { parseDistill } from "../../cli/options.ts";
import { InputError } from "../../cli/args.ts";
import { assert, cli, DATA, makeFixtures, MODEL, ok, readLines, refused } from "./helpers.ts";

const SEARCH = ["--backend", "cpu", ...MODEL, ...DATA, "--log-every", "1"];

Deno.test("parseDistill reads terms with optional weights and refuses every malformed spec", () => {
  const same = (a: unknown, b: unknown) => assert(JSON.stringify(a) === JSON.stringify(b), `${JSON.stringify(a)}`);
  same(parseDistill("mse"), { mse: 1 });
  same(parseDistill("mse:1, ce:0.5"), { mse: 1, ce: 0.5 });
  same(parseDistill("kl:2,mse:0"), { kl: 2, mse: 0 });
  const bad: [string, string][] = [
    ["", "entry 1 is empty"],
    ["mse,", "entry 2 is empty"],
    ["l2", 'unknown term "l2"'],
    ["mse,mse:2", "mse is given twice"],
    ["kl:-1", "weight of kl"],
    ["kl:", "weight of kl"],
    ["kl:1:2", "weight of kl"],
    ["ce:NaN", "weight of ce"],
    ["mse:0,ce:0", "positive weight"],
  ];
  for (const [text, message] of bad) {
    let err: unknown = null;
    try {
      parseDistill(text);
    } catch (e) {
      err = e;
    }
    assert(err instanceof InputError && err.message.includes(message), `${JSON.stringify(text)}: ${err}`);
  }
});

Deno.test("tune and search refuse --distill options that cannot apply, before any work", async () => {
  const fx = await makeFixtures("jetfold-distill-");
  try {
    await refused(["tune", "--run", fx.run, "--distill", "mse"], "give --teacher");
    await refused(["tune", "--run", fx.run, "--teacher", fx.run], "--teacher has no effect with --distill ce");
    await refused(["tune", "--run", fx.run, "--finetune-steps", "3"], "--finetune-steps has no effect");
    await refused(["tune", "--run", fx.run, "--distill", "kl", "--teacher", fx.missing], fx.missing);
    await refused(["search", ...SEARCH, "--distill", "mse:two"], "--distill: the weight of mse");
  } finally {
    await Deno.remove(fx.dir, { recursive: true });
  }
});

Deno.test("tune distills from a teacher, then fine-tunes: a student equal to its teacher starts at MSE 0", async () => {
  const fx = await makeFixtures("jetfold-distill-");
  try {
    const out = `${fx.dir}/tuned`;
    const args = ["--backend", "cpu", "--run", fx.run, "--teacher", fx.run, "--distill", "mse", "--steps", "2"];
    const r = ok(
      await cli(
        "tune",
        ...args,
        "--finetune-steps",
        "1",
        "--eval-batch",
        "4",
        "--tokens",
        "2",
        "--log-every",
        "1",
        "--out",
        out,
      ),
      "tune --distill mse",
    );
    assert(r.stdout.includes("distilling: mse, MLPs frozen"), r.stdout);
    // Three steps in all: two distilling (the first at the teacher's own weights, so loss 0), one fine-tuning.
    const losses = (await readLines(`${out}/metrics.jsonl`)).filter((m) => "loss" in m).map((m) => m.loss as number);
    assert(losses.length === 3, `losses ${losses}`);
    assert(losses[0] === 0, `the first distillation loss of the teacher itself is ${losses[0]}`);
    assert(losses[2] > 1, `the fine-tune's next-token loss is ${losses[2]}`);
  } finally {
    await Deno.remove(fx.dir, { recursive: true });
  }
});

Deno.test("search --distill mse trains the supernet against the base model", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jetfold-distill-" });
  try {
    const r = ok(
      await cli("search", ...SEARCH, "--steps", "2", "--distill", "mse:1,ce:0.5", "--out", `${dir}/run`),
      "search --distill",
    );
    assert(r.stdout.includes("supernet loss: mse, ce:0.5 against the base model (frozen teacher)"), r.stdout);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
