// The CLI stub: honest about what is missing, with the exit statuses scripts rely on.

const ROOT = new URL("../", import.meta.url);

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "cli.ts", ...args],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

function assert(cond: unknown, msg: string): asserts cond {
  if (!cond) throw new Error(msg);
}

Deno.test("every cli command says in one line that it is not implemented yet and exits 1", async () => {
  for (const command of ["demo", "train", "search", "generate", "bench"]) {
    const { code, stdout, stderr } = await cli(command);
    assert(code === 1, `${command}: exit status ${code}, expected 1`);
    assert(stdout === "", `${command}: unexpected stdout ${JSON.stringify(stdout)}`);
    const lines = stderr.trim().split("\n");
    assert(lines.length === 1, `${command}: expected one line, got ${JSON.stringify(stderr)}`);
    assert(lines[0].startsWith(`jetfold ${command} is not implemented yet`), `${command}: got ${lines[0]}`);
    for (const feature of ["grad", "pytrees", "PRNG keys", "CPU reference backend"]) {
      assert(lines[0].includes(feature), `${command}: the message does not mention ${feature}`);
    }
  }
});

Deno.test("cli --help prints usage listing every command and exits 0", async () => {
  for (const args of [["--help"], ["-h"], ["demo", "--help"]]) {
    const { code, stdout } = await cli(...args);
    assert(code === 0, `${args.join(" ")}: exit status ${code}, expected 0`);
    assert(stdout.includes("Usage: deno run -A cli.ts <command>"), `${args.join(" ")}: no usage line in ${stdout}`);
    for (const command of ["demo", "train", "search", "generate", "bench"]) {
      assert(stdout.includes(`  ${command} `), `${args.join(" ")}: usage does not list ${command}`);
    }
  }
});

Deno.test("cli without a command or with an unknown one prints why and exits 1", async () => {
  const none = await cli();
  assert(none.code === 1 && none.stderr.includes("no command given"), `no command: ${JSON.stringify(none)}`);
  const typo = await cli("dmeo");
  assert(typo.code === 1 && typo.stderr.includes('unknown command "dmeo"'), `typo: ${JSON.stringify(typo)}`);
});
