// The CLI refuses bad input before any work: empty values, absurd sizes, devices as files, options that would be dropped.

import { loadSafetensors } from "../../mod.ts";
import {
  assert,
  badInput,
  cli,
  DATA,
  exists,
  listing,
  makeFixtures,
  MODEL,
  ok,
  readLines,
  refused,
  rejection,
  TINY,
} from "./helpers.ts";
import { joinSafetensors, splitSafetensors } from "../safetensors_bytes.ts";

const F = await makeFixtures("jetfold-cli-validation-");
const out = (name: string) => `${F.dir}/out-${name}`;
const HUGE = "2000000000";

Deno.test('empty values are refused: --out "" no longer means the root directory', async () => {
  await refused(["train", "--out", ""], "--out must not be empty");
  await refused(["train", "--out="], "--out must not be empty");
  await refused(["train", "--prompt", ""], "--prompt must not be empty");
  await refused(["demo", "--prompt", ""], "--prompt must not be empty");
  await refused(["tune", "--run", F.run, "--prompt", ""], "--prompt must not be empty");
  await refused(["generate", "--run", ""], "--run must not be empty");
  await refused(["train", "--data", ""], "--data must not be empty");
  await refused(["train", "--blocks", ""], "--blocks must not be empty");
  await refused(["train", "--data", "a\0b"], "NUL");
});

Deno.test("an invalid model or prompt fails before training and leaves no run behind, so the rerun works", async () => {
  // Both used to be refused only after all the training, with config.json and checkpoints written.
  await refused(["demo", "--heads", "3"], "heads (3) must divide width (64)");
  await refused(["search", "--heads", "3"], "heads (3) must divide width (64)");
  await refused(["train", "--heads", "3"], "heads (3) must divide width (64)");
  await refused(["demo", ...MODEL, "--window", "0"], "--window must be an integer >= 1");
  const dir = out("rerun");
  const bad = await cli("train", ...TINY, "--steps", "2", "--prompt", "", "--out", dir);
  badInput(bad, "--prompt must not be empty", "train --prompt ''");
  assert(!(await exists(dir)), `a refused run left ${dir} behind`);
  ok(await cli("train", ...TINY, "--steps", "2", "--out", dir), "the corrected rerun with the same --out");
});

Deno.test("a failure before the first result removes the run directory it created, parents included", async () => {
  // A diverging run (lr 1e30) fails at its first logged step, before any result, and takes its
  // directory with it.
  const parent = out("parent"), dir = `${parent}/deeper/run`;
  const args = ["--backend", "cpu", ...MODEL, ...DATA, "--log-every", "3", "--steps", "3"];
  const r = await cli("train", ...args, "--lr", "1e30", "--warmup", "0", "--out", dir);
  assert(r.code === 1 && r.stderr.includes("diverged"), `lr 1e30: ${r.code} ${r.stderr}`);
  assert(!(await exists(parent)), `the failed run left ${await listing(F.dir)}`);
});

Deno.test("absurd sizes are refused at once with the memory estimate and the limit", async () => {
  const memory = "of memory, more than the limit of";
  await refused(["train", "--batch", HUGE], memory);
  await refused(["train", "--batch", HUGE], "--batch 2000000000 x --seq-len 48");
  await refused(["train", "--eval-batch", HUGE], "lower --eval-batch");
  await refused(["train", "--tokens", HUGE], "generating --tokens 2000000000");
  await refused(["demo", "--eval-batch", HUGE], memory);
  await refused(["search", "--batch", HUGE], memory);
  await refused(["tune", "--run", F.run, "--batch", HUGE], memory);
  await refused(["generate", "--run", F.run, "--tokens", HUGE], memory);
  await refused(["train", "--width", "1000000"], memory);
  await refused(["bench", "--contexts", "256,1000000000"], memory);
  await refused(["train", "--steps", "1000000001"], "--steps must be an integer in 1..1000000000");
  await refused(["train", "--seed", "9007199254740993"], "--seed must be at most 9007199254740991");
  await refused(["train", "--seed", "-1"], "--seed must be an integer >= 0");
  await refused(["train", "--lr", "1e400"], "--lr must be a number >= 0");
  // The CLI says so in well under a second, instead of after training (or never).
  const t0 = performance.now();
  badInput(await cli("train", "--backend", "cpu", "--eval-batch", HUGE), "--eval-batch", "train --eval-batch huge");
  assert(performance.now() - t0 < 20_000, "the refusal took too long");
});

Deno.test("--data, --config and checkpoints must be regular files within a stated size", async () => {
  await refused(["train", "--data", "/dev/zero"], "is not a regular file");
  await refused(["train", "--config", "/dev/zero"], "is not a regular file");
  await refused(["generate", "--checkpoint", "/dev/zero"], "is not a regular file");
  await refused(["train", "--data", F.dir], "is a directory");
  const big = `${F.dir}/big.txt`, bigJson = `${F.dir}/big.json`;
  await Deno.writeTextFile(big, "");
  await Deno.truncate(big, 256 * 2 ** 20 + 1); // sparse: costs no disk
  await Deno.writeTextFile(bigJson, "");
  await Deno.truncate(bigJson, 2 ** 20 + 1);
  await refused(["train", "--data", big], "is more than the limit of 256.0 MiB for --data");
  await refused(["train", "--config", bigJson], "is more than the limit of 1.0 MiB for --config");
  await refused(["train", "--config", F.badJson], "not valid JSON");
  const proto = `${F.dir}/proto.json`;
  await Deno.writeTextFile(proto, '{"__proto__": {"steps": 3}}');
  await refused(["train", "--config", proto], 'unknown field "__proto__"');
});

Deno.test("malformed block lists are refused, whatever part is wrong", async () => {
  const cases: [string, string][] = [
    ["swa:16:3,mha", '"swa:16:3" has 2 sizes'],
    ["mha,,jet", "entry 2 of 3 is empty"],
    ["mha,", "entry 2 of 2 is empty"],
    ["jet:4", "only swa takes a size"],
    ["swa:0", "must be a positive integer"],
    ["swa:x", "must be a positive integer"],
    ["jet+conv+conv", "gives +conv twice"],
    ["jet+fast", "unknown modifier +fast"],
    ["mamba", 'unknown block "mamba"'],
  ];
  for (const [blocks, message] of cases) await refused(["train", "--blocks", blocks], message);
  assert((await rejection(["train", "--blocks", " mha , swa:8+conv , jet+gated "])) === "", "a valid list was refused");
});

Deno.test("options that would be silently dropped are errors", async () => {
  await refused(["train", "--blocks", "mha,jet", "--layers", "3"], "--layers 3 disagrees with --blocks, which lists 2");
  await refused(["train", "--window", "8"], "--window has no effect without --blocks");
  await refused(["train", "--blocks", "swa:8,mha", "--window", "4"], "--window has no effect");
  await refused(
    ["search", "--run", F.run, "--width", "32"],
    "--width has no effect with --checkpoint, --run or --model",
  );
  await refused(["search", "--checkpoint", F.checkpoint, "--pretrain-steps", "5"], "--pretrain-steps has no effect");
  await refused(
    ["search", "--run", F.run, "--base", "mha"],
    "--base has no effect with --checkpoint, --run or --model",
  );
  await refused(["demo", "--base", "swa"], "--base must be one of mha, mha+conv");
  await refused(["search", "--space", "seed", "--accuracy-weight", "2"], "--accuracy-weight has no effect");
  await refused(["demo", "--space", "seed", "--window", "8"], "--window has no effect with --space seed");
  await refused(["demo", "--strategy", "greedy", "--beam-width", "3"], "--beam-width has no effect");
  await refused(["demo", "--steps", "3", "--tune-steps", "5"], "--steps 3 disagrees with --tune-steps 5");
  await refused(["train", "--data", F.corpus, "--pairs", "3"], "--pairs has no effect on text data");
  await refused(["generate", "--run", F.run, "--top-k", "5"], "--top-k needs --temperature above 0");
  await refused(["generate", "--run", F.run, "--prompt", "K1", "--seq-len", "40"], "--seq-len has no effect");
  await refused(["generate", "--run", F.run, "--prompt", "K1", "--seed", "3"], "--seed has no effect");
  await refused(["train", "--steps", "3", "--steps", "4"], "--steps is given twice");
  await refused(["tune", "--run", F.run, "--checkpoint", F.checkpoint], "not both");
  // Agreeing values are no conflict, and sampling takes --top-k and --seed.
  assert((await rejection(["demo", "--steps", "3", "--tune-steps", "3"])) === "", "agreeing --steps refused");
  const sampled = ["generate", "--run", F.run, "--temperature", "0.8", "--top-k", "5", "--seed", "3"];
  assert((await rejection(sampled)) === "", "sampling options refused");
});

Deno.test("a run's config.json records what was built and can be given back as --config", async () => {
  const dir = out("blocks");
  const args = ["--backend", "cpu", "--width", "16", "--heads", "2", "--ffn-hidden", "32", ...DATA, "--tokens", "2"];
  ok(await cli("train", ...args, "--blocks", "mha,swa:8", "--steps", "1", "--out", dir), "train --blocks");
  const config = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
  assert(config.layers === 2 && config.blocks === "mha,swa:8", `config.json: ${JSON.stringify(config)}`);
  const { metadata } = await loadSafetensors(`${dir}/checkpoint.safetensors`);
  assert(JSON.parse(metadata["jetfold.config"]).blocks.length === 2, "the checkpoint's layers");
  assert((await rejection(["train", "--config", `${dir}/config.json`, "--out", out("again")])) === "", "reuse");
  const search = out("search");
  const s = ["--backend", "cpu", ...DATA, "--log-every", "1", "--steps", "1", "--context", "128"];
  const r = ok(await cli("search", "--run", dir, ...s, "--out", search), "search --run");
  assert(r.stdout.includes("decoding state at 128 tokens"), `search ignores --context:\n${r.stdout}`);
  assert((await readLines(`${search}/metrics.jsonl`)).every((m) => m.phase === "supernet"), "search pretrained");
  assert((await rejection(["search", "--config", `${search}/config.json`, "--out", out("s2")])) === "", "reuse");
});

globalThis.addEventListener("unload", () => Deno.removeSync(F.dir, { recursive: true }));

// The fixture checkpoint with its metadata edited and its checksum keys dropped, as a file written
// by another tool would be: loaded unverified, so only the metadata checks stand between it and a run.
async function withMetadata(name: string, edit: (m: Record<string, string>) => void): Promise<string> {
  const { header, data } = splitSafetensors<{ __metadata__: Record<string, string> }>(
    await Deno.readFile(F.checkpoint),
  );
  const meta = header.__metadata__;
  for (const k of Object.keys(meta)) if (k.startsWith("jetfold.sha256")) delete meta[k];
  edit(meta);
  const out = joinSafetensors(header, data);
  const path = `${F.dir}/${name}.safetensors`;
  await Deno.writeFile(path, out);
  return path;
}

Deno.test("checkpoint metadata is checked field by field: data records and entries that are not JSON", async () => {
  const extra = await withMetadata("extra-data-field", (m) => {
    m["jetfold.data"] = JSON.stringify({ ...JSON.parse(m["jetfold.data"]), shuffle: true });
  });
  await refused(["generate", "--checkpoint", extra], 'unknown field "shuffle"');
  const seed = await withMetadata("bad-seed", (m) => {
    m["jetfold.data"] = JSON.stringify({ ...JSON.parse(m["jetfold.data"]), seed: "x" });
  });
  await refused(["generate", "--checkpoint", seed], "seed must be an integer");
  const broken = await withMetadata("config-not-json", (m) => (m["jetfold.config"] = "{width: 16"));
  await refused(["generate", "--checkpoint", broken], '"jetfold.config" is not JSON');
});
