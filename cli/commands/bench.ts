// `bench`: the benchmark tables in one run: matmul, fused elementwise, training step, decode against context.

import { type BackendName, setBackend } from "../../mod.ts";
import { decodeReport } from "../../bench/decode.ts";
import { perfTable } from "../../bench/table.ts";
import { bool, choice, COMMON, InputError, str } from "../args.ts";
import { makeOut, paint, say } from "../progress.ts";
import { defineCommand } from "../session.ts";

const specs = {
  backend: choice(["auto", "webgpu", "cpu"], null, "benchmark only this backend", { defaultText: "webgpu and cpu" }),
  config: COMMON.config,
  quiet: COMMON.quiet,
  quick: bool("smaller sizes and fewer repetitions (seconds instead of minutes)"),
  contexts: str("256,1024,4096,8192", "decode benchmark: context lengths", {
    defaultText: "256,1024,4096,8192; quick: 256,1024",
  }),
};

/** The bench command. */
export const bench = defineCommand({
  name: "bench",
  summary: "time matmul, a fused elementwise chain, a training step and decoding against context",
  description: "Prints the benchmark tables of bench/table.ts and bench/decode.ts for each backend, with its adapter.",
  specs,
  async run(o, given) {
    const out = makeOut(o.quiet);
    const text = given.has("contexts") || !o.quick ? o.contexts! : "256,1024";
    const contexts = text.split(",").map((c) => (/^\d+$/.test(c.trim()) ? Number(c) : NaN));
    if (contexts.some((c) => !(c >= 1))) {
      throw new InputError(`--contexts must be positive integers separated by commas, got ${JSON.stringify(text)}`);
    }
    let backends: BackendName[] = ["webgpu", "cpu"];
    if (o.backend !== null) {
      try {
        backends = [(await setBackend(o.backend)).name];
      } catch (e) {
        throw new InputError((e as Error).message.replace(/^setBackend: /, "backend: "));
      }
    }
    say(out, paint(out, "bold", `kernels and training step (${o.quick ? "quick" : "full"} sizes)`));
    console.log(await perfTable(backends, { quick: o.quick }));
    say(out, paint(out, "bold", "\ndecode: milliseconds per token against context, 4 x mha vs 4 x jet"));
    console.log(await decodeReport(backends, contexts));
  },
});
