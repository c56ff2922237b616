// `bench`: the benchmark tables in one run: matmul, fused elementwise, training step, decode against context.

import { type BackendName, setBackend } from "../../mod.ts";
import { type DecodeRow, decodeTable, formatDecode } from "../../bench/decode.ts";
import { perfTable, profileReport } from "../../bench/table.ts";
import { bool, choice, COMMON, InputError, str } from "../args.ts";
import { Interrupted, interrupts } from "../interrupt.ts";
import { checkMemory } from "../limits.ts";
import { makeOut, paint, say } from "../progress.ts";
import { defineCommand } from "../session.ts";

const specs = {
  backend: choice(["auto", "webgpu", "wasm", "cpu"], null, "benchmark only this backend", {
    defaultText: "webgpu, wasm and cpu",
  }),
  config: COMMON.config,
  quiet: COMMON.quiet,
  quick: bool("smaller sizes and fewer repetitions (seconds instead of minutes)"),
  profile: bool("print WebGPU's per-kernel profile of a training step and a matmul instead of the tables"),
  contexts: str("256,1024,4096,8192", "decode benchmark: context lengths", {
    defaultText: "256,1024,4096,8192; quick: 256,1024",
  }),
};

// bench/decode.ts decodes with 4 mha layers of width 128: keys and values in f32 per context token,
// the old and the new cache alive together.
const DECODE_BYTES_PER_TOKEN = 4 * 2 * 128 * 4 * 2;

/** Reads `--contexts`: positive integers separated by commas. */
export function parseContexts(text: string): number[] {
  const contexts = text.split(",").map((c) => (/^\d+$/.test(c.trim()) ? Number(c.trim()) : NaN));
  if (contexts.some((c) => !(Number.isSafeInteger(c) && c >= 1))) {
    throw new InputError(`--contexts must be positive integers separated by commas, got ${JSON.stringify(text)}`);
  }
  return contexts;
}

// Joins markdown tables of the same columns (one per backend) into one, notes first.
function joinTables(parts: readonly string[]): string {
  const notes: string[] = [], rows: string[] = [];
  let head: string[] = [];
  for (const part of parts) {
    const lines = part.split("\n"), at = lines.findIndex((l) => l.startsWith("|"));
    notes.push(...lines.slice(0, at < 0 ? lines.length : at));
    if (at < 0) continue;
    head = lines.slice(at, at + 2);
    rows.push(...lines.slice(at + 2));
  }
  return [...notes, ...head, ...rows].join("\n");
}

/** The bench command. */
export const bench = defineCommand({
  name: "bench",
  summary: "time matmul, a fused elementwise chain, a training step and decoding against context",
  description:
    "Prints the benchmark tables of bench/table.ts and bench/decode.ts for each backend, with its adapter.\n" +
    "Ctrl-C or SIGTERM stops after the current measurement and prints the rows measured so far.\n" +
    "--profile prints per-kernel GPU time (timestamp queries; per-submit wall time where the adapter lacks them)\n" +
    "of a training step and a matmul, with each kernel's ops and shapes.",
  specs,
  prepare(o, given) {
    const text = given.has("contexts") || !o.quick ? o.contexts! : "256,1024";
    const contexts = parseContexts(text);
    const longest = Math.max(...contexts);
    checkMemory(`decoding at --contexts ${longest}`, longest * DECODE_BYTES_PER_TOKEN, "--contexts");

    return async () => {
      const out = makeOut(o.quiet);
      let backends: BackendName[] = ["webgpu", "wasm", "cpu"];
      if (o.backend !== null) {
        try {
          backends = [(await setBackend(o.backend)).name];
        } catch (e) {
          throw new InputError((e as Error).message.replace(/^setBackend: /, "backend: "));
        }
      }
      if (o.profile) {
        if (o.backend !== null && o.backend !== "webgpu" && backends[0] !== "webgpu") {
          throw new InputError(`--profile times WebGPU kernels; --backend ${o.backend} has none`);
        }
        say(out, paint(out, "bold", `WebGPU profile (${o.quick ? "quick" : "full"} sizes)`));
        try {
          await setBackend("webgpu");
        } catch (e) {
          throw new InputError(`--profile needs WebGPU: ${(e as Error).message.replace(/^setBackend: /, "")}`);
        }
        console.log(await profileReport({ quick: o.quick }));
        return;
      }
      interrupts.hold("finishing the current measurement");
      const stop = async (partial: string) => {
        if (!(await interrupts.boundary())) return;
        console.log(partial);
        console.log("interrupted; the rows above were measured in full");
        throw new Interrupted();
      };
      say(out, paint(out, "bold", `kernels and training step (${o.quick ? "quick" : "full"} sizes)`));
      const perf: string[] = [];
      for (const b of backends) {
        await stop(joinTables(perf));
        perf.push(await perfTable([b], { quick: o.quick }));
      }
      console.log(joinTables(perf));
      say(out, paint(out, "bold", "\ndecode: milliseconds per token against context, 4 x mha vs 4 x jet"));
      const rows: DecodeRow[] = [], notes: string[] = [];
      for (const b of backends) {
        for (const c of contexts) {
          await stop([...notes, formatDecode(rows)].join("\n"));
          try {
            rows.push(...await decodeTable(b, [c]));
          } catch (e) {
            notes.push(`${b}: skipped (${(e as Error).message})`);
            break;
          }
        }
      }
      console.log([...notes, formatDecode(rows)].join("\n"));
    };
  },
});
