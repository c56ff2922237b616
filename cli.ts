// The jetfold command line: a stub until the WebGPU backend, nn/ and search/ exist.

const COMMANDS = ["demo", "train", "search", "generate", "bench"] as const;

const USAGE = `jetfold: build, train and search hybrid language models in the style of Jet-Nemotron.

Usage: deno run -A cli.ts <command> [options]

Commands (none is implemented in this version):
  demo       train a tiny hybrid model and generate from it
  train      train a model from a config
  search     run PostNAS over the layers of a trained model
  generate   sample text from a checkpoint
  bench      time kernels and training steps

Options:
  -h, --help  print this help and exit

What exists today is the library in mod.ts: lazy tensors, autodiff (grad, valueAndGrad, vjp),
pytrees, PRNG keys, composite ops and the CPU reference backend.`;

const NOT_YET = "is not implemented yet in this version: the CLI (demo, train, search, generate, bench) " +
  "comes with the WebGPU backend, nn/ and search/; what exists today is the library in mod.ts " +
  "(lazy tensors, autodiff with grad/valueAndGrad/vjp, pytrees, PRNG keys, composite ops, CPU reference backend)";

/** Runs the CLI on `args` and returns the process exit status. */
function main(args: readonly string[]): number {
  const command = args.find((a) => !a.startsWith("-"));
  if (args.includes("-h") || args.includes("--help")) {
    console.log(USAGE);
    return 0;
  }
  if (command === undefined) {
    console.error(`${USAGE}\n\njetfold: no command given`);
    return 1;
  }
  if ((COMMANDS as readonly string[]).includes(command)) {
    console.error(`jetfold ${command} ${NOT_YET}.`);
    return 1;
  }
  console.error(
    `jetfold: unknown command ${JSON.stringify(command)}; expected one of ${COMMANDS.join(", ")} (see --help)`,
  );
  return 1;
}

if (import.meta.main) Deno.exit(main(Deno.args));
