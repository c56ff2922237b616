// The performance table: matmul, a fused elementwise chain and a training step, per backend.
// Usage: deno run -A bench/table.ts [backends=webgpu,wasm,cpu] [--quick]

import * as jf from "../mod.ts";
import { trainStep } from "./train_step.ts";

async function timeIt(make: () => jf.Tensor, reps: number): Promise<number> {
  await make().sum().data(); // compile and warm up
  const t0 = performance.now();
  const outs = Array.from({ length: reps }, make);
  await jf.realize(outs);
  await outs[reps - 1].sum().data(); // waits for all the device work queued before it
  return (performance.now() - t0) / reps;
}

async function matmul(n: number): Promise<string> {
  const a = jf.normal(jf.randomKey(1), [n, n]), b = jf.normal(jf.randomKey(2), [n, n]);
  await jf.realize([a, b]);
  const ms = await timeIt(() => a.matmul(b), n >= 1024 ? 3 : 6);
  return `${(2 * n ** 3 / ms / 1e6).toFixed(2)} GFLOP/s`;
}

async function elementwise(n: number): Promise<string> {
  const x = jf.uniform(jf.randomKey(3), [n]);
  await jf.realize([x]);
  const ms = await timeIt(() => x.mul(1.5).add(0.25).maximum(0.5).sqrt().mul(x), 3);
  return `${(8 * n / ms / 1e6).toFixed(2)} GB/s`;
}

/**
 * Measures matmul, the fused elementwise chain and the training step on each backend and returns
 * the table as markdown; a backend that cannot start is reported in a line before the table.
 */
export async function perfTable(wanted: readonly jf.BackendName[], opts: { quick?: boolean } = {}): Promise<string> {
  const quick = opts.quick ?? false;
  const rows: string[][] = [];
  const notes: string[] = [];
  for (const name of wanted) {
    let info: jf.BackendInfo;
    try {
      info = await jf.setBackend(name);
    } catch (e) {
      notes.push(`${name}: skipped (${(e as Error).message})`);
      continue;
    }
    const sizes = quick ? [256] : [256, 512, 1024];
    const row = [info.name, info.adapter ?? "-"];
    for (const n of sizes) row.push(await matmul(n));
    row.push(await elementwise(quick ? 1 << 20 : 1 << 24));
    const step = await trainStep(name, quick ? 2 : 10);
    row.push(`${step.msPerStep.toFixed(0)} ms (${step.tokensPerSec.toFixed(0)} tok/s)`);
    rows.push(row);
  }
  const head = ["backend", "adapter", ...(quick ? ["matmul 256"] : ["matmul 256", "matmul 512", "matmul 1024"])];
  head.push(quick ? "elementwise 1M" : "elementwise 16M", "train step");
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(" | ")} |`;
  const sep = `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`;
  return [...notes, line(head), sep, ...rows.map(line)].join("\n");
}

if (import.meta.main) {
  const quick = Deno.args.includes("--quick");
  const wanted = (Deno.args.find((a) => !a.startsWith("--")) ?? "webgpu,wasm,cpu").split(",") as jf.BackendName[];
  console.log(await perfTable(wanted, { quick }));
}
