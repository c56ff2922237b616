// The jetfold command line: dispatches subcommands; bad input prints one line and exits with status 2.

import { helpText, InputError, parse } from "./cli/args.ts";
import { bench } from "./cli/commands/bench.ts";
import { demo } from "./cli/commands/demo.ts";
import { generateCommand } from "./cli/commands/generate.ts";
import { info } from "./cli/commands/info.ts";
import { searchCommand } from "./cli/commands/search.ts";
import { train } from "./cli/commands/train.ts";
import { tune } from "./cli/commands/tune.ts";
import { Interrupted } from "./cli/loop.ts";
import type { Command } from "./cli/session.ts";

const COMMANDS: readonly Command[] = [demo, train, searchCommand, tune, generateCommand, bench, info];

function usage(): string {
  const w = Math.max(...COMMANDS.map((c) => c.name.length)) + 2;
  return [
    "jetfold: build, train and search hybrid language models in the style of Jet-Nemotron.",
    "",
    "Usage: deno run -A cli.ts <command> [options]",
    "",
    "Commands:",
    ...COMMANDS.map((c) => `  ${c.name.padEnd(w)}${c.summary}`),
    "",
    "Run `deno run -A cli.ts <command> --help` for a command's options. Start with `demo`.",
  ].join("\n");
}

/** Runs the CLI on `args` and returns the exit status: 0 done, 1 failed, 2 bad input, 130 interrupted. */
export async function main(args: readonly string[]): Promise<number> {
  const [name, ...rest] = args;
  if (name === undefined || name === "-h" || name === "--help" || name === "help") {
    console.log(usage());
    if (name !== undefined) return 0;
    console.error("jetfold: no command given");
    return 2;
  }
  const command = COMMANDS.find((c) => c.name === name);
  const label = command ? `jetfold ${name}` : "jetfold";
  try {
    if (command === undefined) {
      throw new InputError(
        `unknown command ${JSON.stringify(name)}; expected one of ${
          COMMANDS.map((c) => c.name).join(", ")
        } (see --help)`,
      );
    }
    const parsed = await parse(name, rest, command.specs);
    if (parsed.help) {
      console.log(helpText(name, `${command.summary}.\n\n${command.description}`, command.specs));
      return 0;
    }
    await command.run(parsed.values, parsed.flags);
    return 0;
  } catch (e) {
    if (e instanceof Interrupted) return 130;
    if (e instanceof InputError) {
      console.error(`${label}: ${e.message}`);
      return 2;
    }
    let debug = false;
    try {
      debug = Deno.env.get("JETFOLD_DEBUG") === "1";
    } catch { /* no env permission: stay brief */ }
    console.error(`${label}: failed: ${debug ? (e as Error).stack : (e as Error).message}`);
    if (!debug) console.error("(set JETFOLD_DEBUG=1 to see where)");
    return 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
