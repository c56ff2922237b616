// Option parsing: switches that are on by default (`--no-<name>`), in flags, --config files and help.

import { bool, helpText, InputError, int, parse, str } from "../../cli/args.ts";
import { assert } from "./helpers.ts";

const SPECS = {
  quiet: bool("print less"),
  hardwareSearch: bool("skip the hardware step", { on: true }),
  steps: int(3, "steps"),
};

async function refusal(argv: string[]): Promise<string> {
  try {
    await parse("demo", argv, SPECS);
  } catch (e) {
    assert(e instanceof InputError, `not an InputError: ${e}`);
    return (e as Error).message;
  }
  return "";
}

Deno.test("a switch on by default is turned off by --no-<name>, and only by that", async () => {
  const plain = await parse("demo", [], SPECS);
  assert(plain.values.hardwareSearch === true && plain.values.quiet === false, JSON.stringify(plain.values));
  assert(plain.given.size === 0, "nothing was given");
  const off = await parse("demo", ["--no-hardware-search", "--quiet"], SPECS);
  assert(off.values.hardwareSearch === false && off.values.quiet === true, JSON.stringify(off.values));
  assert(off.given.has("hardwareSearch") && off.given.has("quiet"), [...off.given].join());
  // The positive spelling is not an option, and neither is --no- of a switch that is off by default.
  assert((await refusal(["--hardware-search"])).includes("unknown option --hardware-search"), "--hardware-search");
  assert((await refusal(["--no-quiet"])).includes("unknown option --no-quiet"), "--no-quiet");
  assert((await refusal(["--no-hardware-search=1"])).includes("is a switch and takes no value"), "a value");
  assert((await refusal(["--no-hardware-search", "--no-hardware-search"])).includes("given twice"), "twice");
});

Deno.test("a --config file sets a default-on switch by its key, and help names the --no- flag", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jetfold-args-" });
  try {
    const path = `${dir}/config.json`;
    await Deno.writeTextFile(path, JSON.stringify({ hardwareSearch: false, steps: 5 }));
    const specs = { ...SPECS, config: str(null, "options file") };
    const r = await parse("demo", ["--config", path], specs);
    assert(r.values.hardwareSearch === false && r.values.steps === 5, JSON.stringify(r.values));
    assert(r.given.has("hardwareSearch"), "a value other than the default counts as given");
    await Deno.writeTextFile(path, JSON.stringify({ hardwareSearch: "no" }));
    let message = "";
    await parse("demo", ["--config", path], specs).catch((e) => (message = e.message));
    assert(message.includes('field "hardwareSearch" must be true or false'), message);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  const help = helpText("demo", "the demo", SPECS);
  assert(/\n {2}--no-hardware-search +skip the hardware step\n/.test(help), help);
  assert(/\n {2}--quiet +print less\n/.test(help), help);
});

Deno.test("help continues a help text of several lines under its first line", () => {
  const help = helpText("demo", "x", { lr: int(1, "first line\nsecond line") });
  const lines = help.split("\n");
  const first = lines.findIndex((l) => l.includes("first line"));
  assert(lines[first + 1].trim() === "second line (default 1)", help);
  assert(lines[first + 1].indexOf("second") === lines[first].indexOf("first"), help);
});
