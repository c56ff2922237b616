// Shared by the CLI tests: running the CLI in a subprocess or checking arguments in-process, tiny sizes, fixtures.

import { block, initModel, modelConfig, randomKey, setBackend } from "../../mod.ts";
import { prepare } from "../../cli.ts";
import { InputError } from "../../cli/args.ts";
import { saveCheckpoint } from "../../cli/checkpoint.ts";

await setBackend("cpu");

/** The repository root, where the CLI runs. */
export const ROOT = new URL("../../", import.meta.url);

// Tiny sizes: every command finishes in about a second on the CPU backend.
export const MODEL = ["--width", "16", "--heads", "2", "--layers", "2", "--ffn-hidden", "32"];
export const DATA = ["--seq-len", "32", "--batch", "2", "--eval-batch", "4"];
export const TINY = ["--backend", "cpu", ...MODEL, ...DATA, "--log-every", "1", "--tokens", "6"];

/** What a CLI subprocess did. */
export interface Result {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

const text = new TextDecoder();

/** `deno run -A cli.ts ...args` in the repository root, output piped. */
export function command(args: readonly string[]): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "cli.ts", ...args],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
}

/** Runs `deno run -A cli.ts ...args` in the repository root. */
export async function cli(...args: string[]): Promise<Result> {
  const out = await command(args).output();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

/** Starts the CLI in a subprocess with piped output, for tests that signal it. */
export function spawnCli(...args: string[]): Deno.ChildProcess {
  return command(args).spawn();
}

/** Throws `msg` unless `cond`. */
export function assert(cond: unknown, msg: string): asserts cond {
  if (!cond) throw new Error(msg);
}

/** Asserts a subprocess exited 0. */
export function ok(r: Result, what: string): Result {
  assert(r.code === 0, `${what}: exit status ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

/** Asserts a subprocess exited 2 with exactly one line on stderr that contains `message`, and no stack trace. */
export function badInput(r: Result, message: string, what: string): void {
  const lines = r.stderr.trim().split("\n");
  const got = `${what}: status ${r.code}, stderr ${JSON.stringify(r.stderr)}`;
  assert(r.code === 2, got);
  assert(lines.length === 1 && lines[0].includes(message), `${got}; expected one line with ${JSON.stringify(message)}`);
  assert(!/\n\s+at /.test(r.stdout + r.stderr), `${got}: a stack trace was printed`);
}

/**
 * Checks `args` in-process as the CLI would before any work, returning the InputError's message
 * ("" when the arguments are accepted). Anything but an InputError is rethrown: a crash is a bug.
 */
export async function rejection(args: readonly string[]): Promise<string> {
  try {
    await prepare(args);
    return "";
  } catch (e) {
    if (e instanceof InputError) return e.message;
    throw e;
  }
}

/** Asserts in-process that `args` are refused with a one-line message containing `message`. */
export async function refused(args: readonly string[], message: string): Promise<void> {
  const got = await rejection(args);
  assert(got !== "", `${JSON.stringify(args)} was accepted; expected a refusal with ${JSON.stringify(message)}`);
  assert(!got.includes("\n"), `${JSON.stringify(args)}: the message has several lines: ${JSON.stringify(got)}`);
  assert(
    got.includes(message),
    `${JSON.stringify(args)}: ${JSON.stringify(got)} does not say ${JSON.stringify(message)}`,
  );
}

/** Whether a path exists. */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

/** The names in a directory, sorted. */
export async function listing(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) names.push(e.name);
  return names.sort();
}

/** Reads a JSON-lines file. */
export async function readLines(path: string): Promise<Record<string, unknown>[]> {
  return (await Deno.readTextFile(path)).trim().split("\n").map((l) => JSON.parse(l));
}

/** Files the CLI can be pointed at: good and bad inputs of every kind, made in `dir`. */
export interface Fixtures {
  readonly dir: string;
  /** A tiny jetfold checkpoint (2 layers, width 16) trained on toy data. */
  readonly checkpoint: string;
  /** A directory holding it as checkpoint.safetensors. */
  readonly run: string;
  /** A text file long enough for --seq-len 32. */
  readonly corpus: string;
  readonly missing: string;
  readonly corrupt: string;
  readonly badJson: string;
  readonly binary: string;
}

/** Writes the fixtures into a fresh temporary directory. */
export async function makeFixtures(prefix: string): Promise<Fixtures> {
  const dir = await Deno.makeTempDir({ prefix });
  const run = `${dir}/run`;
  await Deno.mkdir(run);
  const config = modelConfig({ vocab: 256, width: 16, heads: 2, ffnHidden: 32, blocks: [block("mha"), block("jet")] });
  const checkpoint = `${run}/checkpoint.safetensors`;
  await saveCheckpoint(checkpoint, {
    config,
    params: initModel(randomKey(0), config),
    step: 0,
    data: { source: "toy", seed: 0, seqLen: 32, batch: 2, pairs: 4 },
    opt: null,
  });
  const write = async (name: string, body: string | Uint8Array) => {
    const path = `${dir}/${name}`;
    if (typeof body === "string") await Deno.writeTextFile(path, body);
    else await Deno.writeFile(path, body);
    return path;
  };
  return {
    dir,
    checkpoint,
    run,
    corpus: await write("corpus.txt", "the quick brown fox jumps over the lazy dog. ".repeat(40)),
    missing: `${dir}/missing`,
    corrupt: await write("corrupt.safetensors", new Uint8Array([200, 0, 0, 0, 0, 0, 0, 0, 123])),
    badJson: await write("bad.json", "{ steps: 3 "),
    binary: await write("binary.txt", new Uint8Array([0xff, 0xfe, 0x00, 0x80])),
  };
}
