// The CLI end to end, in subprocesses with tiny models on the CPU backend: phases, files, resume, Ctrl-C, bad input.

import { loadSafetensors, type Tensor } from "../mod.ts";
import { assert, cli, DATA, MODEL, ok, ROOT, spawnCli, TINY } from "./cli/helpers.ts";

const TMP = await Deno.makeTempDir({ prefix: "jetfold-cli-test-" });

const tmp = (name: string) => `${TMP}/${name}`;
const readJson = async (path: string) => JSON.parse(await Deno.readTextFile(path));
const readLines = async (path: string) => (await Deno.readTextFile(path)).trim().split("\n").map((l) => JSON.parse(l));
const idsLine = (stdout: string) => stdout.split("\n").find((l) => l.trim().startsWith("ids:"));

Deno.test("demo prints its four phases and writes a run directory whose files parse", async () => {
  const dir = tmp("demo");
  const r = ok(await cli("demo", ...TINY, "--steps", "3", "--out", dir), "demo");
  for (const phase of ["[1/4] warmup", "[2/4] PostNAS", "[3/4] post-tune", "[4/4] generation", "summary"]) {
    assert(r.stdout.includes(phase), `demo did not print ${phase}:\n${r.stdout}`);
  }
  for (
    const line of ["layer 0:", "<- chosen", "before:", "after:", "ids:", "decoding state at", "retrieval accuracy"]
  ) {
    assert(r.stdout.includes(line), `demo did not print "${line}"`);
  }
  assert(r.stdout.includes(dir), "demo did not print the run directory");
  const config = await readJson(`${dir}/config.json`);
  assert(config.command === "demo" && config.width === 16, `config.json: ${JSON.stringify(config)}`);
  // The demo's own defaults: a conv base, one swa layer at most, and as many queries as 32 tokens leave room for.
  assert(config.base === "mha+conv" && config.maxSwa === 1 && config.queries === 5, JSON.stringify(config));
  const metrics = await readLines(`${dir}/metrics.jsonl`);
  const phases = new Set(metrics.map((m) => m.phase));
  for (const p of ["pretrain", "supernet", "tune"]) assert(phases.has(p), `metrics.jsonl has no ${p} lines`);
  assert(metrics.every((m) => Number.isFinite(m.loss) && Number.isInteger(m.step)), "a metrics line lacks loss/step");
  const search = await readJson(`${dir}/search.json`);
  assert(search.choice.length === 2 && search.trace.length >= 3, `search.json: ${JSON.stringify(search.choice)}`);
  const candidates = search.candidates.join();
  assert(candidates === "mha+conv,swa:16+conv,jet+conv" && search.strategy === "beam", `search.json: ${candidates}`);
  assert(search.maxMha === 1 && search.maxSwa === 1, `search.json budget: ${search.maxMha}, ${search.maxSwa}`);
  // The hardware-aware step is on in the demo: it reshapes the chosen JetBlocks, or says there are none.
  assert(r.stdout.includes("hardware-aware step"), `demo did not print the hardware-aware step:\n${r.stdout}`);
  const metricsPhases = [...phases].join();
  const hasJet = search.choice.some((b: string) => b.startsWith("jet"));
  assert(!hasJet || metricsPhases.includes("geometry "), `no geometry phase in metrics: ${metricsPhases}`);
  const { tree, metadata } = await loadSafetensors<{ embed: Tensor }>(`${dir}/checkpoint.safetensors`);
  const cfg = JSON.parse(metadata["jetfold.config"]);
  assert(cfg.blocks.length === 2 && cfg.width === 16, `checkpoint config: ${metadata["jetfold.config"]}`);
  assert(tree.embed.shape.join() === "256,16", "checkpoint embed shape");
  const html = await Deno.readTextFile(`${dir}/report.html`);
  assert(html.includes("<svg") && html.includes("PostNAS scores") && html.includes("✓"), "report lacks its SVGs");
  assert(!/(src|href)\s*=\s*["']?https?:/.test(html), "report.html must not load anything from the network");

  // The saved model and the seed reproduce the demo's sample, through --checkpoint and --run alike.
  const want = idsLine(r.stdout);
  for (const from of [["--checkpoint", `${dir}/checkpoint.safetensors`], ["--run", dir]]) {
    const g = ok(await cli("generate", "--backend", "cpu", "--tokens", "6", ...from), "generate");
    assert(idsLine(g.stdout) === want, `generate ${from[0]}: ${idsLine(g.stdout)} but the demo printed ${want}`);
  }
});

Deno.test("train then train --resume continues the step count and equals one run, bit for bit", async () => {
  const [one, two] = [tmp("train-one"), tmp("train-two")];
  ok(await cli("train", ...TINY, "--steps", "6", "--out", one), "train 6");
  ok(await cli("train", ...TINY, "--steps", "3", "--decay-steps", "6", "--out", two), "train 3");
  const r = ok(await cli("train", "--resume", two, "--steps", "6", "--backend", "cpu"), "resume to 6");
  assert(r.stdout.includes("resuming at step 3"), `resume did not say where it starts:\n${r.stdout}`);
  const steps = (await readLines(`${two}/metrics.jsonl`)).map((m) => m.step);
  assert(steps.join() === "1,2,3,4,5,6", `metrics steps after resume: ${steps}`);
  const lossesOne = (await readLines(`${one}/metrics.jsonl`)).map((m) => m.loss);
  const lossesTwo = (await readLines(`${two}/metrics.jsonl`)).map((m) => m.loss);
  assert(lossesOne.join() === lossesTwo.join(), `losses differ: ${lossesOne} vs ${lossesTwo}`);
  const [a, b] = await Promise.all([one, two].map((d) => Deno.readFile(`${d}/checkpoint.safetensors`)));
  assert(a.length === b.length && a.every((x, i) => x === b[i]), "the checkpoints (params and optimizer) differ");
  const { metadata } = await loadSafetensors(`${two}/checkpoint.safetensors`);
  assert(metadata["jetfold.step"] === "6" && metadata["jetfold.optimizer"] === "adamw", JSON.stringify(metadata));
  const done = ok(await cli("train", "--resume", two, "--backend", "cpu"), "resume at the end");
  assert(done.stdout.includes("already at step 6 of 6"), `resume past the end: ${done.stdout}`);
});

Deno.test("Ctrl-C during train saves a checkpoint that --resume continues", async () => {
  const dir = tmp("train-sigint");
  const child = spawnCli("train", ...TINY, "--steps", "2000", "--out", dir);
  const stderr = new Response(child.stderr).text();
  let stdout = "", signalled = false;
  for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
    stdout += chunk;
    if (!signalled && /^\s+train\s+\d+\/2000/m.test(stdout)) {
      child.kill("SIGINT");
      signalled = true;
    }
  }
  const status = await child.status;
  assert(signalled, `no progress line appeared:\n${stdout}\n${await stderr}`);
  assert(status.code === 130, `exit status ${status.code} after SIGINT\n${stdout}\n${await stderr}`);
  const match = stdout.match(/interrupted at step (\d+) of 2000; saved/);
  assert(match, `no checkpoint message:\n${stdout}`);
  const { metadata } = await loadSafetensors(`${dir}/checkpoint.safetensors`);
  const step = Number(match[1]);
  assert(metadata["jetfold.step"] === String(step) && step >= 1, `checkpoint step ${metadata["jetfold.step"]}`);
  ok(await cli("train", "--resume", dir, "--steps", String(step + 2), "--backend", "cpu"), "resume");
  const steps = (await readLines(`${dir}/metrics.jsonl`)).map((m) => m.step);
  assert(steps.at(-1) === step + 2 && steps.at(-3) === step, `metrics steps ${steps.slice(-4)}`);
});

Deno.test("Ctrl-C stops training at the next step even when the loss is never read (no I/O between steps)", async () => {
  // With --log-every past the step count nothing but the steps runs between signals: a loop that
  // never yields to the event loop would train on and never see SIGINT. A lost signal shows as a
  // run still going 60 s after it; then the child is killed and the test fails.
  const dir = tmp("train-sigint-quiet"), steps = "1000000";
  const args = ["--backend", "cpu", ...MODEL, ...DATA, "--log-every", steps, "--steps", steps, "--out", dir];
  const child = spawnCli("train", ...args);
  const stdout = new Response(child.stdout).text(), stderr = new Response(child.stderr).text();
  const delay = 800 + Math.floor(Math.random() * 2000); // a random step of the run
  await new Promise((r) => setTimeout(r, delay));
  child.kill("SIGINT");
  let lost = false;
  const guard = setTimeout(() => (lost = true, child.kill("SIGKILL")), 60_000);
  const status = await child.status;
  clearTimeout(guard);
  const out = await stdout;
  assert(!lost, `SIGINT after ${delay} ms was not acted on within 60 s\n${out}\n${await stderr}`);
  assert(status.code === 130, `exit status ${status.code} after SIGINT at ${delay} ms\n${out}\n${await stderr}`);
  const match = out.match(/interrupted at step (\d+) of 1000000; saved/);
  assert(match, `no checkpoint message after SIGINT at ${delay} ms:\n${out}`);
  const { metadata } = await loadSafetensors(`${dir}/checkpoint.safetensors`);
  assert(metadata["jetfold.step"] === match[1], `checkpoint step ${metadata["jetfold.step"]}, printed ${match[1]}`);
});

Deno.test("search, tune and generate chain through run directories, and --data trains on text", async () => {
  const [s, t, x] = [tmp("search"), tmp("tune"), tmp("text")];
  const sr = ok(await cli("search", ...TINY.slice(0, -2), "--steps", "2", "--space", "seed", "--out", s), "search");
  assert(sr.stdout.includes("chosen:"), `search output:\n${sr.stdout}`);
  const record = await readJson(`${s}/search.json`);
  assert(record.strategy === "greedy" && record.candidates.length === 8, `seed space: ${JSON.stringify(record)}`);
  const tr = ok(
    await cli("tune", "--backend", "cpu", "--run", s, "--steps", "2", "--log-every", "1", "--out", t),
    "tune",
  );
  assert(tr.stdout.includes("before:") && tr.stdout.includes("after:"), `tune output:\n${tr.stdout}`);
  ok(await cli("generate", "--backend", "cpu", "--run", t, "--prompt", "K1 ", "--tokens", "4"), "generate");
  const file = tmp("corpus.txt");
  await Deno.writeTextFile(file, "the quick brown fox jumps over the lazy dog. ".repeat(40));
  const r = ok(await cli("train", ...TINY, "--steps", "2", "--data", file, "--out", x), "train --data");
  assert(r.stdout.includes("held out"), `text data label:\n${r.stdout}`);
  const { metadata } = await loadSafetensors(`${x}/checkpoint.safetensors`);
  assert(JSON.parse(metadata["jetfold.data"]).source === "text", metadata["jetfold.data"]);
  await Deno.writeTextFile(file, "changed ", { append: true });
  const changed = await cli("train", "--resume", x, "--steps", "3", "--backend", "cpu");
  assert(changed.code === 2 && changed.stderr.includes("the file changed"), `changed data: ${changed.stderr}`);
});

Deno.test("every kind of bad input exits 2 with one line naming the problem", async () => {
  const write = async (name: string, body: string | Uint8Array) => {
    const path = tmp(name);
    if (typeof body === "string") await Deno.writeTextFile(path, body);
    else await Deno.writeFile(path, body);
    return path;
  };
  const badJson = await write("bad.json", "{ steps: 3 ");
  const unknownField = await write("unknown.json", '{ "wdith": 8 }');
  const wrongType = await write("type.json", '{ "steps": "ten" }');
  const corrupt = await write("corrupt.safetensors", new Uint8Array([200, 0, 0, 0, 0, 0, 0, 0, 123]));
  const binary = await write("binary.txt", new Uint8Array([0xff, 0xfe, 0x00, 0x80]));
  const cases: [string[], string][] = [
    [["dmeo"], 'unknown command "dmeo"'],
    [["train", "--wdith", "8"], "unknown option --wdith for train"],
    [["train", "--steps", "ten"], '--steps must be an integer in 1..1000000000, got "ten"'],
    [["train", "--lr", "0.1x"], '--lr must be a number >= 0, got "0.1x"'],
    [["train", "--steps"], "--steps needs a value"],
    [["demo", "extra"], 'unexpected argument "extra"'],
    [["train", "--backend", "tpu"], "--backend must be one of auto, webgpu, wasm, cpu"],
    [["train", "--data", tmp("missing.txt")], "--data: no such file"],
    [["train", "--data", binary], "not UTF-8 text"],
    [["train", "--config", tmp("missing.json")], "--config: no such file"],
    [["train", "--config", badJson], "not valid JSON"],
    [["train", "--config", unknownField], 'unknown field "wdith"'],
    [["train", "--config", wrongType], 'field "steps" must be an integer in 1..1000000000, got "ten"'],
    [["train", "--backend", "cpu", "--width", "30", "--heads", "4"], "invalid model: heads (4) must divide width (30)"],
    [["train", "--backend", "cpu", "--blocks", "mha,foo"], 'unknown block "foo"'],
    [["train", "--resume", tmp("nowhere")], "no such file"],
    [["generate"], "no model given"],
    [["generate", "--checkpoint", tmp("missing.safetensors")], "no such file"],
    [["generate", "--checkpoint", corrupt], "truncated"],
    [["generate", "--checkpoint", badJson], "checkpoint"],
  ];
  for (const [args, message] of cases) {
    const r = await cli(...args);
    const lines = r.stderr.trim().split("\n");
    const what = `${args.join(" ")}: status ${r.code}, stderr ${JSON.stringify(r.stderr)}`;
    assert(r.code === 2, what);
    assert(lines.length === 1 && lines[0].includes(message), `${what}; expected one line with "${message}"`);
    assert(!/\n\s+at /.test(r.stdout + r.stderr), `${what}: a stack trace was printed`);
  }
});

Deno.test("--help of the CLI and of every command lists the options and exits 0", async () => {
  const top = ok(await cli("--help"), "--help");
  for (const c of ["demo", "train", "search", "tune", "generate", "bench", "info"]) {
    assert(top.stdout.includes(`  ${c} `), `usage does not list ${c}`);
    const h = ok(await cli(c, "--help"), `${c} --help`);
    assert(h.stdout.includes(`Usage: deno run -A cli.ts ${c} [options]`), `${c} --help: ${h.stdout}`);
    if (c !== "bench") assert(h.stdout.includes("--backend auto|webgpu|wasm|cpu"), `${c} --help lacks --backend`);
  }
  const none = await cli();
  assert(none.code === 2 && none.stderr.trim() === "jetfold: no command given", `no command: ${none.stderr}`);
});

Deno.test("info names the backend, and a short webgpu run works where an adapter exists", async () => {
  const r = ok(await cli("info"), "info");
  const { version } = await readJson(new URL("deno.json", ROOT).pathname);
  assert(r.stdout.startsWith(`jetfold ${version} on Deno`), `info does not name version ${version}: ${r.stdout}`);
  assert(r.stdout.includes("backend: "), `info: ${r.stdout}`);
  if (r.stdout.includes("WebGPU adapter: none")) {
    console.log("  (no WebGPU adapter: the webgpu run is skipped)");
    return;
  }
  const onGpu = ["--backend", "webgpu", ...TINY.slice(2)];
  const g = ok(await cli("train", ...onGpu, "--steps", "2", "--out", tmp("gpu")), "webgpu train");
  assert(g.stdout.includes("backend: webgpu"), g.stdout);
});

Deno.test("train on the wasm backend gives the reference's first loss to f32 accuracy", async () => {
  const first = async (backend: string, dir: string) => {
    ok(
      await cli("train", ...TINY.slice(0, 0), "--backend", backend, ...TINY.slice(2), "--steps", "1", "--out", dir),
      backend,
    );
    return (await readLines(`${dir}/metrics.jsonl`))[0].loss as number;
  };
  const [wasm, cpu] = [await first("wasm", tmp("wasm")), await first("cpu", tmp("cpu-1"))];
  // The first loss is a forward pass only; its matmuls sum in f32 on wasm (float64 on the reference), and its
  // exp and tanh are polynomials within a few f32 ulps.
  assert(Math.abs(wasm - cpu) <= 1e-5 * Math.abs(cpu), `wasm ${wasm} vs cpu ${cpu}`);
});

Deno.test("bench --quick prints the kernel, training-step and decode tables", async () => {
  const r = ok(await cli("bench", "--quick", "--backend", "cpu", "--contexts", "32"), "bench");
  for (const s of ["matmul 256", "train step", "ms/token"]) {
    assert(r.stdout.includes(s), `bench lacks ${s}:\n${r.stdout}`);
  }
});

Deno.test("cli code imports the library only through mod.ts (and bench/ for the bench command)", async () => {
  const files = ["cli.ts"];
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(new URL(dir, ROOT))) {
      if (e.isDirectory) await walk(`${dir}${e.name}/`);
      else if (e.name.endsWith(".ts")) files.push(`${dir}${e.name}`);
    }
  };
  await walk("cli/");
  const mod = new URL("mod.ts", ROOT).href, cli = new URL("cli/", ROOT).href, bench = new URL("bench/", ROOT).href;
  for (const file of files) {
    const source = await Deno.readTextFile(new URL(file, ROOT));
    const first = source.split("\n")[0];
    assert(first.startsWith("// "), `${file} does not open with a one-line role comment`);
    for (const [, spec] of source.matchAll(/(?:from|import)\s*\(?\s*"([^"]+)"/g)) {
      const url = new URL(spec, new URL(file, ROOT)).href;
      const allowed = url === mod || url.startsWith(cli) || url === new URL("cli.ts", ROOT).href ||
        (file === "cli/commands/bench.ts" && url.startsWith(bench));
      assert(allowed, `${file} imports ${spec}; the CLI may use the library only through mod.ts`);
    }
  }
});

globalThis.addEventListener("unload", () => Deno.removeSync(TMP, { recursive: true }));
