// jetfold in a browser: the bundle in headless Chromium with WebGPU, through tests/browser/driver.ts
// (its own process), each of its checks a step here. Listed as ignored where /usr/bin/chromium is
// missing, unless JETFOLD_REQUIRE_BROWSER=1 (set by .ci/run once it installed chromium): then a
// missing browser, or one that does not start, fails.

const CHROMIUM = "/usr/bin/chromium";
const REQUIRED = Deno.env.get("JETFOLD_REQUIRE_BROWSER") === "1";
const PRESENT = await Deno.stat(CHROMIUM).then(() => true, () => false);
// The whole suite takes about a minute on 2 shared cores; a hung browser must not hang the tests.
const LIMIT_MS = 8 * 60_000;

interface Report {
  readonly step?: string;
  readonly ok?: boolean;
  readonly ms?: number;
  readonly error?: string;
  readonly fatal?: string;
}

async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let rest = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    const parts = (rest + chunk).split("\n");
    rest = parts.pop()!;
    yield* parts;
  }
  if (rest !== "") yield rest;
}

Deno.test({
  name: "in headless Chromium with WebGPU, jetfold's kernels compile and its checks and demo page agree with Deno",
  ignore: !PRESENT && !REQUIRED,
  async fn(t) {
    if (!PRESENT) throw new Error(`JETFOLD_REQUIRE_BROWSER=1, but ${CHROMIUM} is missing (apt-get install chromium)`);
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", new URL("driver.ts", import.meta.url).pathname],
      env: { NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const timer = setTimeout(() => child.kill("SIGKILL"), LIMIT_MS);
    const stderr = new Response(child.stderr).text();
    let steps = 0;
    try {
      for await (const line of lines(child.stdout)) {
        if (!line.startsWith("{")) continue;
        const r: Report = JSON.parse(line);
        if (r.fatal !== undefined) throw new Error(r.fatal);
        steps++;
        await t.step(`${r.step} (${((r.ms ?? 0) / 1000).toFixed(1)} s)`, () => {
          if (!r.ok) throw new Error(r.error);
        });
      }
      const status = await child.status;
      if (!status.success) {
        const why = status.signal === "SIGKILL" ? `killed after ${LIMIT_MS / 60_000} minutes` : `exit ${status.code}`;
        throw new Error(`the browser suite's driver failed (${why}):\n${(await stderr).trim()}`);
      }
      if (steps === 0) throw new Error("the browser suite's driver reported no checks");
    } finally {
      clearTimeout(timer);
      await child.status;
      await stderr;
    }
  },
});
