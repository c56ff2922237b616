// The jetfold command line: dispatches subcommands; bad input prints one line and exits with status 2.

import { helpText, InputError, parse } from "./cli/args.ts";
import { bench } from "./cli/commands/bench.ts";
import { demo } from "./cli/commands/demo.ts";
import { generateCommand } from "./cli/commands/generate.ts";
import { info } from "./cli/commands/info.ts";
import { searchCommand } from "./cli/commands/search.ts";
import { train } from "./cli/commands/train.ts";
import { tune } from "./cli/commands/tune.ts";
import { workerCommand } from "./cli/commands/worker.ts";
import { ClusterError } from "./cli/cluster/nats.ts";
import { Interrupted, interrupts } from "./cli/interrupt.ts";
import type { Command, Job } from "./cli/session.ts";

const COMMANDS: readonly Command[] = [demo, train, searchCommand, tune, generateCommand, bench, info, workerCommand];

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

/** What `prepare` makes of the arguments: text to print and an exit status, or the checked work. */
export type Prepared =
  | { readonly kind: "text"; readonly text: string; readonly status: 0 | 2; readonly error?: string }
  | { readonly kind: "job"; readonly command: string; readonly job: Job };

/**
 * Parses and checks `args` without doing any work: no backend starts, no file is written. Bad input
 * is an InputError (printed as one line, exit status 2); anything else thrown is a bug.
 */
export async function prepare(args: readonly string[]): Promise<Prepared> {
  const [name, ...rest] = args;
  if (name === undefined || name === "-h" || name === "--help" || name === "help") {
    return name === undefined
      ? { kind: "text", text: usage(), status: 2, error: "jetfold: no command given" }
      : { kind: "text", text: usage(), status: 0 };
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (command === undefined) {
    throw new InputError(
      `unknown command ${JSON.stringify(name)}; expected one of ${COMMANDS.map((c) => c.name).join(", ")} (see --help)`,
    );
  }
  const parsed = await parse(name, rest, command.specs);
  if (parsed.help) {
    return {
      kind: "text",
      text: helpText(name, `${command.summary}.\n\n${command.description}`, command.specs),
      status: 0,
    };
  }
  return { kind: "job", command: name, job: await command.prepare(parsed.values, parsed.given) };
}

/** Runs the CLI on `args` and returns the exit status: 0 done, 1 failed, 2 bad input, 130 interrupted. */
export async function main(args: readonly string[]): Promise<number> {
  const name = args[0];
  const label = name !== undefined && COMMANDS.some((c) => c.name === name) ? `jetfold ${name}` : "jetfold";
  try {
    const p = await prepare(args);
    if (p.kind === "text") {
      console.log(p.text);
      if (p.error) console.error(p.error);
      return p.status;
    }
    // SIGINT and SIGTERM stop the work at its next step, with what it promises saved (see interrupt.ts).
    interrupts.listen();
    try {
      await p.job();
    } finally {
      interrupts.unlisten();
    }
    return 0;
  } catch (e) {
    if (e instanceof Interrupted) return 130;
    if (e instanceof InputError) {
      console.error(`${label}: ${e.message}`);
      return 2;
    }
    // An unreachable or lost NATS server, or a job no worker could score: the sentence says it all.
    if (e instanceof ClusterError) {
      console.error(`${label}: ${e.message}`);
      return 1;
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
