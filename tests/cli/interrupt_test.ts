// SIGINT and SIGTERM: the first stops a long command at its next step with its work saved; a second never cuts a save short.

import { loadSafetensors } from "../../mod.ts";
import { Interrupted, Interrupts } from "../../cli/interrupt.ts";
import { assert, DATA, listing, makeFixtures, MODEL, readLines, spawnCli } from "./helpers.ts";

const F = await makeFixtures("jetfold-cli-interrupt-");
const SIGNALS = ["SIGINT", "SIGTERM"] as const;
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)];

function fakeHost() {
  const exits: number[] = [], lines: string[] = [];
  return { exits, lines, host: { exit: (c: number) => void exits.push(c), warn: (l: string) => void lines.push(l) } };
}

Deno.test("a signal exits at once unless work is held; held work is asked to stop, and a second signal exits", () => {
  const { exits, host } = fakeHost();
  const free = new Interrupts(host);
  free.signal("SIGTERM");
  assert(exits.join() === "130", `not held: exits ${exits}`);
  const held = new Interrupts(host);
  held.hold();
  held.signal("SIGINT");
  assert(held.requested && exits.length === 1, "the first signal while held must only ask the work to stop");
  let thrown = false;
  try {
    held.release();
  } catch (e) {
    thrown = e instanceof Interrupted;
  }
  assert(thrown, "release after a signal throws Interrupted");
  held.hold();
  held.signal("SIGINT");
  assert(exits.join() === "130,130", `the second signal exits: ${exits}`);
});

Deno.test("a second signal during a save waits for the write to finish, then exits", async () => {
  const { exits, lines, host } = fakeHost();
  const it = new Interrupts(host);
  it.hold();
  let finish = () => {};
  let written = false;
  const save = it.save(() =>
    new Promise<void>((resolve) => (finish = () => {
      written = true;
      resolve();
    }))
  );
  it.signal("SIGINT"); // asks the held work to stop
  it.signal("SIGINT"); // would exit, but a save is being written
  assert(exits.length === 0 && it.saving, `exited during the save: ${exits}; ${lines}`);
  assert(lines.at(-1)!.includes("as soon as the save"), `says it waits: ${lines.at(-1)}`);
  finish();
  await save;
  assert(written && exits.join() === "130", `after the save: written ${written}, exits ${exits}`);
});

Deno.test("boundary yields to the event loop, so a signal's listener runs between microtask-only steps", async () => {
  const { host } = fakeHost();
  const it = new Interrupts(host);
  it.hold();
  setTimeout(() => it.signal("SIGINT"), 300); // after the first boundaries: steps run in between
  const t0 = performance.now();
  let steps = 0;
  while (!(await it.boundary())) {
    await Promise.resolve(); // a step that never touches the event loop
    steps++;
    assert(performance.now() - t0 < 5_000, "the signal never got in");
  }
  assert(steps > 0 && it.requested, `stopped after ${steps} steps`);
});

interface Stopped {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly signalled: boolean;
  readonly what: string;
}

// Starts the CLI, and once `trigger` shows on stdout, waits `delay` ms and sends `signal` (`times`
// times, `gap` ms apart). A run still going 60 s after is killed, which fails the caller's checks.
async function stopAt(
  args: string[],
  o: { trigger: RegExp; delay: number; signal: Deno.Signal; times?: number; gap?: number },
): Promise<Stopped> {
  const what = `${args.slice(0, 1)} with ${o.signal} ${o.delay} ms after ${o.trigger}`;
  const child = spawnCli(...args);
  const stderr = new Response(child.stderr).text();
  let stdout = "", signalled = false;
  const guard = setTimeout(() => child.kill("SIGKILL"), 60_000);
  const send = async () => {
    await new Promise((r) => setTimeout(r, o.delay));
    for (let i = 0; i < (o.times ?? 1); i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, o.gap ?? 0));
      try {
        child.kill(o.signal);
      } catch { /* it has exited */ }
    }
  };
  let sent: Promise<void> | null = null;
  for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
    stdout += chunk;
    if (!signalled && o.trigger.test(stdout)) {
      signalled = true;
      sent = send();
    }
  }
  await sent;
  const status = await child.status;
  clearTimeout(guard);
  return { code: status.code, stdout, stderr: await stderr, signalled, what };
}

// What every interrupted run promises: exit status 130, config.json, a checkpoint that loads, whole metrics lines.
async function checkSaved(r: Stopped, dir: string): Promise<Record<string, string>> {
  const show = `${r.what}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
  assert(r.signalled, `the trigger never showed: ${show}`);
  assert(r.code === 130, `exit status ${r.code}: ${show}`);
  const files = await listing(dir);
  assert(files.includes("config.json") && files.includes("checkpoint.safetensors"), `files ${files}: ${show}`);
  assert(!files.some((f) => f.endsWith(".tmp")), `a temporary file was left: ${files}`);
  if (files.includes("metrics.jsonl")) await readLines(`${dir}/metrics.jsonl`); // every line parses
  const { metadata } = await loadSafetensors(`${dir}/checkpoint.safetensors`);
  assert(metadata["jetfold.config"] !== undefined, `the checkpoint lacks its config: ${show}`);
  return metadata;
}

const BIG = "1000000";
const TINY = ["--backend", "cpu", ...MODEL, ...DATA, "--log-every", "1", "--tokens", "2"];

Deno.test("search stops at a random moment of any phase on SIGINT or SIGTERM, with its work saved", async () => {
  // The phase that runs long is the one to interrupt; the others are short.
  const phase = pick(["pretrain", "supernet", "PostNAS"] as const);
  const steps = { pretrain: [BIG, "2"], supernet: ["2", BIG], PostNAS: ["2", "2"] }[phase];
  // 8 layers, a beam of 4 and 64 held-out sequences make the search itself take seconds.
  const sizes = phase === "PostNAS" ? ["--layers", "8", "--beam-width", "4", "--eval-batch", "64"] : ["--layers", "2"];
  const args = ["--backend", "cpu", "--width", "16", "--heads", "2", "--ffn-hidden", "32", "--seq-len", "32"];
  const dir = `${F.dir}/search-${phase.toLowerCase()}`;
  const r = await stopAt(
    [
      "search",
      "--batch",
      "2",
      "--log-every",
      "1",
      ...args,
      ...sizes,
      "--pretrain-steps",
      steps[0],
      "--supernet-steps",
      steps[1],
      "--out",
      dir,
    ],
    {
      trigger: phase === "PostNAS" ? /^PostNAS$/m : new RegExp(`${phase} +\\d+/`),
      delay: pick([0, 50, 200]),
      signal: pick(SIGNALS),
    },
  );
  await checkSaved(r, dir);
  if (phase === "PostNAS") {
    assert((await listing(dir)).includes("search.json"), `no search.json: ${r.what}\n${r.stdout}\n${r.stderr}`);
    const record = JSON.parse(await Deno.readTextFile(`${dir}/search.json`));
    assert(record.interrupted === true && Array.isArray(record.trace), `search.json: ${JSON.stringify(record)}`);
    assert(r.stdout.includes("interrupted during the search"), r.stdout);
  }
});

Deno.test("tune stops at a random moment on SIGINT or SIGTERM and saves the model so far", async () => {
  const dir = `${F.dir}/tune`;
  const r = await stopAt(
    ["tune", "--run", F.run, "--backend", "cpu", "--steps", BIG, "--log-every", "1", "--out", dir],
    { trigger: /run directory:/, delay: Math.floor(Math.random() * 1500), signal: pick(SIGNALS) },
  );
  const metadata = await checkSaved(r, dir);
  const lines = (await listing(dir)).includes("metrics.jsonl") ? await readLines(`${dir}/metrics.jsonl`) : [];
  const last = lines.at(-1)?.step ?? 0;
  assert(metadata["jetfold.step"] === String(last), `checkpoint step ${metadata["jetfold.step"]}, last logged ${last}`);
});

Deno.test("demo stops at a random moment of any phase on SIGINT or SIGTERM, with its work saved", async () => {
  const phase = pick(["pretrain", "supernet", "tune"] as const);
  const steps = ["pretrain", "supernet", "tune"].map((p) => (p === phase ? BIG : "2"));
  const dir = `${F.dir}/demo-${phase}`;
  const r = await stopAt(
    [
      "demo",
      ...TINY,
      "--pretrain-steps",
      steps[0],
      "--supernet-steps",
      steps[1],
      "--tune-steps",
      steps[2],
      "--out",
      dir,
    ],
    { trigger: new RegExp(`${phase} +\\d+/`), delay: Math.floor(Math.random() * 500), signal: pick(SIGNALS) },
  );
  await checkSaved(r, dir);
  assert(r.stdout.includes(`interrupted during ${phase === "tune" ? "post-training" : phase}`), r.stdout);
});

Deno.test("bench stops after the current measurement on SIGINT and prints what it measured", async () => {
  // Many rows after the trigger: on a loaded machine this process may read the trigger seconds after the
  // bench printed it (one CI run read it only once all 16 rows of 8 contexts were done, and the bench had exited).
  const contexts = Array(24).fill(16).join(",");
  const r = await stopAt(["bench", "--quick", "--backend", "cpu", "--contexts", contexts], {
    trigger: /decode:/,
    delay: 100,
    signal: pick(SIGNALS),
  });
  assert(r.code === 130, `bench: status ${r.code}\n${r.stdout}\n${r.stderr}`);
  assert(r.stdout.includes("interrupted; the rows above were measured in full"), r.stdout);
});

Deno.test("two quick signals during training leave either no checkpoint or a whole one, never a partial file", async () => {
  // A wider model makes the save take long enough for the second signal to land in it at times.
  const dir = `${F.dir}/double`;
  const args = ["--backend", "cpu", "--width", "128", "--heads", "4", "--layers", "4", ...DATA, "--log-every", "1"];
  const r = await stopAt(["train", ...args, "--steps", BIG, "--out", dir], {
    trigger: /train +\d+\//,
    delay: Math.floor(Math.random() * 300),
    signal: "SIGINT",
    times: 2,
    gap: Math.floor(Math.random() * 40),
  });
  assert(r.code === 130, `status ${r.code}: ${r.stdout}\n${r.stderr}`);
  const files = await listing(dir);
  assert(!files.some((f) => f.endsWith(".tmp")), `a temporary file was left: ${files}`);
  if (files.includes("checkpoint.safetensors")) await loadSafetensors(`${dir}/checkpoint.safetensors`);
});

globalThis.addEventListener("unload", () => Deno.removeSync(F.dir, { recursive: true }));
