// jetfold imports by URL and computes with no permissions; everything mod.ts reaches statically is a relative import.

const ROOT = new URL("../", import.meta.url);

// The only packages mod.ts may reach, each by a dynamic import of a full, pinned npm: specifier that runs only when a
// function needing it is called (loadTokenizer for a Hugging Face tokenizer), so importing and computing need neither.
const LAZY_NPM = ["@huggingface/tokenizers@0.2.0"];

const CONTENT_TYPES: Record<string, string> = {
  ts: "application/typescript",
  js: "application/javascript",
  json: "application/json",
};

function assert(cond: unknown, msg: string): asserts cond {
  if (!cond) throw new Error(msg);
}

// Serves the repository read-only, the way a CDN would serve a published version.
function serveRepository(): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    if (req.method !== "GET" && req.method !== "HEAD") return new Response("read-only", { status: 405 });
    const path = decodeURIComponent(new URL(req.url).pathname);
    if (path.split("/").some((part) => part === ".." || part.startsWith("."))) {
      return new Response("forbidden", { status: 403 });
    }
    try {
      const body = await Deno.readFile(new URL(`.${path}`, ROOT));
      const ext = path.slice(path.lastIndexOf(".") + 1);
      const headers = { "content-type": CONTENT_TYPES[ext] ?? "text/plain" };
      return new Response(req.method === "HEAD" ? null : body, { headers });
    } catch {
      return new Response("not found", { status: 404 });
    }
  });
}

function program(port: number): string {
  return [
    `import * as jf from "http://127.0.0.1:${port}/mod.ts";`,
    `const cube = (x: jf.Tensor) => x.pow(3).sum();`,
    `const g = jf.grad(cube)(jf.tensor([1, 2, 3]));`,
    `console.log(JSON.stringify({ grad: await g.array(), requested: (await jf.backendInfo()).requested }));`,
    ``,
  ].join("\n");
}

Deno.test("jetfold imported by URL computes a gradient with no permission but --allow-import", async () => {
  const server = serveRepository();
  const dir = await Deno.makeTempDir({ prefix: "jetfold_url_import_" });
  try {
    const port = server.addr.port;
    await Deno.writeTextFile(`${dir}/main.ts`, program(port));
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-config", "--no-lock", `--allow-import=127.0.0.1:${port}`, "main.ts"],
      cwd: dir,
      // JETFOLD_BACKEND is set but not readable: the library must ignore it quietly, not prompt or throw.
      env: { DENO_DIR: `${dir}/deno_dir`, NO_COLOR: "1", JETFOLD_BACKEND: "cpu" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(out.stdout).trim();
    const stderr = new TextDecoder().decode(out.stderr);
    assert(out.code === 0, `the program exited with ${out.code}\nstdout: ${stdout}\nstderr: ${stderr}`);
    for (const line of stderr.split("\n")) {
      // Mesa's software adapter prints this about the sandbox's environment; it is not ours.
      if (line.includes("XDG_RUNTIME_DIR is invalid")) continue;
      assert(!/permission|NotCapable|requires .* access|error|warning/i.test(line), `unexpected stderr: ${line}`);
    }
    const result = JSON.parse(stdout);
    assert(
      JSON.stringify(result.grad) === "[3,12,27]",
      `grad of sum(x^3) at [1, 2, 3] should be [3, 12, 27], got ${stdout}`,
    );
    assert(result.requested === "auto", `JETFOLD_BACKEND was read without env permission: ${stdout}`);
  } finally {
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("every module reachable from mod.ts is a local file imported by a relative path", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    // Without the config's import map, as a URL importer would resolve the graph.
    args: ["info", "--json", "--no-config", "--no-lock", "mod.ts"],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert(out.code === 0, `deno info failed: ${new TextDecoder().decode(out.stderr)}`);
  const info = JSON.parse(new TextDecoder().decode(out.stdout));
  const modules: { specifier: string; error?: string }[] = info.modules;
  assert(modules.length > 1, `deno info found only ${modules.length} module(s)`);
  for (const m of modules) {
    assert(m.error === undefined, `${m.specifier}: ${m.error}`);
    if (LAZY_NPM.some((name) => m.specifier.startsWith(`npm:/${name}`))) continue;
    assert(m.specifier.startsWith(ROOT.href), `mod.ts reaches ${m.specifier}, which is not a file in this repository`);
  }
  const npm = Object.keys(info.npmPackages ?? {}).filter((name) => !LAZY_NPM.includes(name));
  assert(npm.length === 0, `mod.ts reaches npm packages: ${npm}`);
  // A bare or absolute specifier that the import map happens to resolve locally would still break URL imports.
  type Dependency = { specifier: string; isDynamic?: boolean };
  for (const m of info.modules as { specifier: string; dependencies?: Dependency[] }[]) {
    if (!m.specifier.startsWith(ROOT.href)) continue;
    for (const d of m.dependencies ?? []) {
      const lazy = d.isDynamic === true && LAZY_NPM.some((name) => d.specifier === `npm:${name}`);
      assert(
        /^\.\.?\//.test(d.specifier) || lazy,
        `${m.specifier} imports ${JSON.stringify(d.specifier)}, not a relative path (nor a lazy, pinned npm import)`,
      );
    }
  }
});
