// Each core module, imported first in a fresh process, loads: no cycle leaves a binding used before it is initialized.

const ROOT = new URL("../../", import.meta.url);
const CORE = new URL("core/", ROOT);
// Enough processes at once to keep the run short without starving tests running beside it.
const CONCURRENCY = 3;

async function coreModules(dir: URL): Promise<URL[]> {
  const out: URL[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.isDirectory) out.push(...(await coreModules(new URL(`${e.name}/`, dir))));
    else if (e.name.endsWith(".ts")) out.push(new URL(e.name, dir));
  }
  return out.sort((a, b) => a.href.localeCompare(b.href));
}

// What went wrong importing `url` as the first module of a new process, or null when nothing did.
async function importFirst(url: URL): Promise<string | null> {
  const { code, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["eval", `await import(${JSON.stringify(url.href)});`],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdout: "null",
    stderr: "piped",
  }).output();
  const err = new TextDecoder().decode(stderr);
  if (code === 0 && !/ReferenceError|before initialization/.test(err)) return null;
  const firstLines = err.trim().split("\n").slice(0, 3).join("\n      ");
  return `${url.href.slice(ROOT.href.length)} (exit ${code}):\n      ${firstLines}`;
}

Deno.test("every core module can be imported first in a fresh process", async () => {
  const modules = await coreModules(CORE);
  const failures: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < modules.length) {
      const failure = await importFirst(modules[next++]);
      if (failure !== null) failures.push(failure);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  if (failures.length > 0) {
    throw new Error(
      `${failures.length} of ${modules.length} core modules fail when imported first:\n  ${
        failures.sort().join("\n  ")
      }`,
    );
  }
});
