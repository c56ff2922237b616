// Run directories after a kill: stale temporary files go, metrics.jsonl is cut back to the checkpoint, the run's options hold.

import { loadSafetensors } from "../../mod.ts";
import { assert, cli, DATA, exists, listing, MODEL, ok, readLines, spawnCli } from "./helpers.ts";

const TMP = await Deno.makeTempDir({ prefix: "jetfold-cli-rundir-" });

Deno.test("after kill -9 and --resume, metrics.jsonl has each step once and no temporary file is left", async () => {
  const dir = `${TMP}/killed`;
  const args = ["--backend", "cpu", ...MODEL, ...DATA, "--log-every", "1", "--tokens", "2"];
  ok(await cli("train", ...args, "--steps", "3", "--out", dir), "train 3");
  // The resumed run logs steps past its checkpoint (step 3), then dies without saving.
  const child = spawnCli("train", "--resume", dir, "--steps", "1000000");
  const stderr = new Response(child.stderr).text();
  let stdout = "";
  for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
    stdout += chunk;
    if (/train +9\//.test(stdout)) break;
  }
  child.kill("SIGKILL");
  await child.status;
  await child.stdout.cancel().catch(() => {});
  await stderr;
  // What a kill during a save leaves: a checkpoint's temporary file, and a torn metrics line.
  await Deno.writeTextFile(`${dir}/checkpoint.safetensors.0badc0de.tmp`, "partial");
  await Deno.writeTextFile(`${dir}/metrics.jsonl`, '{"phase":"train","st', { append: true });
  const before = (await Deno.readTextFile(`${dir}/metrics.jsonl`)).split("\n").length;
  assert(before > 9, `the killed run logged ${before} lines`);

  const r = ok(await cli("train", "--resume", dir, "--steps", "5", "--backend", "cpu"), "resume to 5");
  assert(r.stdout.includes("resuming at step 3"), r.stdout);
  const steps = (await readLines(`${dir}/metrics.jsonl`)).map((m) => m.step);
  assert(steps.join() === "1,2,3,4,5", `metrics steps after the resume: ${steps}`);
  const files = await listing(dir);
  assert(!files.some((f) => f.endsWith(".tmp")), `a temporary file is left: ${files}`);
  const { metadata } = await loadSafetensors(`${dir}/checkpoint.safetensors`);
  assert(metadata["jetfold.step"] === "5", `checkpoint step ${metadata["jetfold.step"]}`);
});

Deno.test("--resume keeps the run's recorded options: --quiet and --log-every", async () => {
  const dir = `${TMP}/quiet`;
  const args = ["--backend", "cpu", ...MODEL, ...DATA, "--tokens", "2", "--quiet", "--log-every", "2"];
  const first = ok(await cli("train", ...args, "--steps", "2", "--out", dir), "train --quiet");
  assert(!first.stdout.includes("run directory:"), `--quiet printed progress:\n${first.stdout}`);
  const r = ok(await cli("train", "--resume", dir, "--steps", "6"), "resume");
  assert(!r.stdout.includes("run directory:") && !r.stdout.includes("data:"), `the resume is not quiet:\n${r.stdout}`);
  const steps = (await readLines(`${dir}/metrics.jsonl`)).map((m) => m.step);
  assert(steps.join() === "2,4,6", `--log-every 2 was not kept: ${steps}`);
  const config = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
  assert(config.quiet === true && config.logEvery === 2 && config.steps === 6, JSON.stringify(config));
});

Deno.test("--resume of a run that has no checkpoint yet says so", async () => {
  const dir = `${TMP}/nockpt`;
  await Deno.mkdir(dir);
  await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify({ command: "train", steps: 10 }));
  const r = await cli("train", "--resume", dir);
  assert(r.code === 2 && r.stderr.includes("has no checkpoint yet"), `${r.code} ${r.stderr}`);
  assert(!(await exists(`${dir}/metrics.jsonl`)), "the refused resume wrote metrics");
});

globalThis.addEventListener("unload", () => Deno.removeSync(TMP, { recursive: true }));
