// Fuzzing the command line: random argv from the real option names; every one is accepted or refused in one line, never a crash.

import fc from "fast-check";
import { prepare } from "../../cli.ts";
import { flagOf, InputError, type Spec, type Specs } from "../../cli/args.ts";
import { bench } from "../../cli/commands/bench.ts";
import { demo } from "../../cli/commands/demo.ts";
import { generateCommand } from "../../cli/commands/generate.ts";
import { info } from "../../cli/commands/info.ts";
import { searchCommand } from "../../cli/commands/search.ts";
import { train } from "../../cli/commands/train.ts";
import { tune } from "../../cli/commands/tune.ts";
import { workerCommand } from "../../cli/commands/worker.ts";
import { assert, cli, listing, makeFixtures } from "./helpers.ts";

const F = await makeFixtures("jetfold-cli-fuzz-");
const OUTS = `${F.dir}/outs`, CONFIGS = `${F.dir}/configs`;
await Deno.mkdir(OUTS);
await Deno.mkdir(CONFIGS);
const COMMANDS = [demo, train, searchCommand, tune, generateCommand, bench, info, workerCommand];

// Mostly values that pass, so the checks past parsing run too; at times one that must not.
const mostly = <T>(valid: fc.Arbitrary<T>, invalid: fc.Arbitrary<T>) =>
  fc.oneof({ weight: 5, arbitrary: valid }, { weight: 1, arbitrary: invalid });

// Numbers as a user might type them: ordinary, at the bounds, past them, and malformed.
const intText = mostly(
  fc.oneof(
    fc.integer({ min: 1, max: 64 }).map(String),
    fc.constantFrom("0", "2", "32", "1000000000", "2000000000", "9007199254740991", "+3", "007"),
  ),
  fc.oneof(
    fc.constantFrom("9007199254740993", "99999999999999999999", "-1", "-0", "1000000001"),
    fc.constantFrom("", "ten", "1.5", "1e3", " 3", "0x10", "\u0663", "NaN", "Infinity"),
    fc.string({ maxLength: 6 }),
  ),
);
const numberText = mostly(
  fc.oneof(fc.double({ min: 0, max: 10, noNaN: true }).map(String), fc.constantFrom("0", "1e-3", "3e-3", "0.8", ".5")),
  fc.oneof(fc.double().map(String), fc.constantFrom("1e400", "-1", "5.", "1e", "abc", ""), fc.string({ maxLength: 6 })),
);
const PATHS = [F.checkpoint, F.run, F.corpus, F.missing, F.corrupt, F.badJson, F.binary, F.dir, "/dev/zero", "/"];
const pathText = mostly(
  fc.constantFrom(F.checkpoint, F.run, F.corpus),
  fc.oneof(fc.constantFrom(...PATHS, "", "a\0b", "x".repeat(300)), fc.string({ maxLength: 8 })),
);
const outText = fc.oneof(
  fc.stringMatching(/^[a-z0-9]{1,8}(\/[a-z0-9]{1,8})?$/).map((s) => `${OUTS}/${s}`),
  fc.constantFrom(F.run, F.corpus, `${F.corpus}/below`, "", F.dir),
);
const blockPart = mostly(
  fc.tuple(fc.constantFrom("mha", "swa", "jet", "linear", "swa:8"), fc.subarray(["+conv", "+gated"]))
    .map(([kind, mods]) => kind + mods.join("")),
  fc.oneof(
    fc.tuple(
      fc.constantFrom("mha", "swa", "jet", "linear", "mamba", ""),
      fc.constantFrom("", ":8", ":16:3", ":0", ":x", ":"),
      fc.subarray(["+conv", "+gated", "+conv", "+fast", "+"]),
    ).map(([kind, size, mods]) => kind + size + mods.join("")),
    fc.string({ maxLength: 5 }),
  ),
);
const blocksText = fc.array(blockPart, { maxLength: 5 }).map((parts) => parts.join(","));
const contextsText = fc.oneof(
  fc.array(fc.integer({ min: -1, max: 5000 }), { minLength: 1, maxLength: 4 }).map((xs) => xs.join(",")),
  fc.string({ maxLength: 8 }),
);

// A config file of random fields: real keys with values of any JSON type, unknown keys, prototype names.
const jsonValue = fc.oneof(
  fc.integer({ min: -5, max: 100 }),
  fc.double(),
  fc.string({ maxLength: 4 }),
  fc.boolean(),
  fc.constant(null),
  fc.constant([1]),
  fc.constant({ a: 1 }),
);
function configFile(specs: Specs) {
  const keys = [...Object.keys(specs), "__proto__", "constructor", "command", "version", "nope"];
  return fc.oneof(
    fc.dictionary(fc.constantFrom(...keys), jsonValue, { maxKeys: 4 }).map((o) => JSON.stringify(o)),
    fc.constantFrom("[]", "3", '"x"', "{", '{"__proto__": {"steps": 2}}', ""),
  );
}

// The text of one option's value, by its kind and name.
// deno-lint-ignore no-explicit-any
function valueOf(key: string, spec: Spec<any>): fc.Arbitrary<string> {
  if (key === "out") return outText;
  if (key === "blocks") return blocksText;
  if (key === "contexts") return contextsText;
  if (spec.kind === "int") return intText;
  if (spec.kind === "number") return numberText;
  if (spec.kind === "choice") return mostly(fc.constantFrom(...spec.meta!.split("|")), fc.string({ maxLength: 5 }));
  if (spec.meta === "FILE" || spec.meta === "DIR") return pathText;
  return fc.string({ maxLength: 12, unit: "binary" }); // a prompt: any code points, lone surrogates included
}

type Arg = string | { config: string };

// Options of a command in a random order, each as `--flag value` or `--flag=value`, at times one
// twice, and at times a stray token; `--config` points at a random config file.
function argvOf(command: (typeof COMMANDS)[number]): fc.Arbitrary<Arg[]> {
  const specs = command.specs;
  const option = fc.constantFrom(...Object.keys(specs)).chain((key): fc.Arbitrary<Arg[]> => {
    const spec = specs[key], flag = flagOf(key);
    if (key === "config") return configFile(specs).map((text) => [flag, { config: text }] as Arg[]);
    if (spec.kind === "bool") return fc.constantFrom<Arg[]>([flag], [`${flag}=yes`]);
    return fc.tuple(valueOf(key, spec), fc.boolean()).map(([v, joined]) => (joined ? [`${flag}=${v}`] : [flag, v]));
  });
  const stray = mostly(
    fc.constant<Arg[]>([]),
    fc.constantFrom<Arg[]>(["extra"], ["-x"], ["--"], ["--help"], ["--nope", "1"], ["--steps"]),
  );
  return fc.tuple(fc.array(option, { maxLength: 5 }), stray).map(([opts, tail]): Arg[] => [
    command.name,
    ...opts.flat(),
    ...tail,
  ]);
}

const anyArgv = fc.oneof(
  ...COMMANDS.map(argvOf),
  fc.array(fc.string({ maxLength: 6 }), { maxLength: 3 }), // an unknown or missing command
);

let configs = 0;
async function materialize(args: Arg[]): Promise<string[]> {
  const out: string[] = [];
  for (const a of args) {
    if (typeof a === "string") out.push(a);
    else {
      const path = `${CONFIGS}/${configs++}.json`;
      await Deno.writeTextFile(path, a.config);
      out.push(path);
    }
  }
  return out;
}

Deno.test("any argv is accepted or refused with one line before any work, and writes nothing", async () => {
  await fc.assert(
    fc.asyncProperty(anyArgv, async (args) => {
      const argv = await materialize(args);
      const before = await listing(OUTS);
      try {
        await prepare(argv);
      } catch (e) {
        if (!(e instanceof InputError)) throw new Error(`${JSON.stringify(argv)} crashed: ${(e as Error).stack}`);
        const m = e.message;
        assert(m.trim() !== "" && !m.includes("\n"), `${JSON.stringify(argv)}: message ${JSON.stringify(m)}`);
      }
      const after = await listing(OUTS);
      assert(after.join() === before.join(), `${JSON.stringify(argv)} wrote ${after} before any work`);
    }),
    { numRuns: 400 },
  );
});

// Tiny runs with a few options drawn at random, in real subprocesses: the whole CLI, work included.
// The sizes are spelled out (not TINY) so that no random option repeats one of them.
const tiny = ["--backend", "cpu", "--width", "16", "--heads", "2", "--ffn-hidden", "32", "--batch", "2"];
// A process's arguments cannot hold NUL (they are C strings), so those prompts cannot be sent.
const argText = fc.string({ maxLength: 6, unit: "binary" }).filter((t) => !t.includes("\0"));
const tinyRun = fc.oneof(
  fc.record({
    blocks: mostly(fc.constantFrom("mha,jet", "swa,linear+conv", "jet+gated,swa:8"), blocksText),
    layers: mostly(fc.constantFrom(null, "2"), fc.constantFrom("1", "3")),
    window: mostly(fc.constant(null), fc.constantFrom("4", "0")),
    seed: mostly(fc.constantFrom("0", "7", "9007199254740991"), fc.constantFrom("9007199254740993", "-1")),
    prompt: fc.option(argText),
    seqLen: mostly(fc.constantFrom("32", "40"), fc.constantFrom("31", "x")),
  }).map((o) => [
    "train",
    ...tiny,
    "--eval-batch",
    "2",
    "--steps",
    "1",
    "--tokens",
    "2",
    "--blocks",
    o.blocks,
    ...(o.layers ? ["--layers", o.layers] : []),
    ...(o.window ? ["--window", o.window] : []),
    "--seed",
    o.seed,
    ...(o.prompt === null ? [] : ["--prompt", o.prompt]),
    "--seq-len",
    o.seqLen,
    "--out",
    `${OUTS}/run-${configs++}`,
  ]),
  fc.record({
    temperature: mostly(fc.constantFrom("0", "0.8", "2"), fc.constant("1e-9")),
    topK: mostly(fc.constantFrom(null, "1", "5"), fc.constant("0")),
    tokens: mostly(fc.constantFrom("0", "3"), fc.constant("-1")),
    prompt: fc.option(argText),
  }).map((o) => [
    "generate",
    "--backend",
    "cpu",
    "--run",
    F.run,
    "--temperature",
    o.temperature,
    ...(o.topK && o.temperature !== "0" ? ["--top-k", o.topK] : []),
    "--tokens",
    o.tokens,
    ...(o.prompt === null ? [] : ["--prompt", o.prompt]),
  ]),
);

Deno.test("a handful of tiny random runs in subprocesses succeed or exit 2 with one line, never 1", async () => {
  await fc.assert(
    fc.asyncProperty(tinyRun, async (argv) => {
      const r = await cli(...argv);
      const what = `${JSON.stringify(argv)}: status ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
      assert(r.code === 0 || r.code === 2, what);
      assert(!/\n\s+at /.test(r.stdout + r.stderr), `${what}: a stack trace was printed`);
      if (r.code === 2) assert(r.stderr.trim().split("\n").length === 1, `${what}: more than one line`);
    }),
    { numRuns: 6 },
  );
});

globalThis.addEventListener("unload", () => Deno.removeSync(F.dir, { recursive: true }));
