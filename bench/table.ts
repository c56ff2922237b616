// The performance table: matmul (with the variant the WebGPU tuner chose), a fused elementwise chain and a training step (with its host
// encode time on WebGPU), per backend; and the WebGPU profile of a training step and a matmul.
// Usage: deno run -A bench/table.ts [backends=webgpu,wasm,cpu] [--quick] [--profile]

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

// GFLOP/s of an n^3 matmul; on WebGPU also the kernel variant the device's tuner chose for it.
async function matmul(n: number, webgpu: boolean): Promise<string> {
  const a = jf.normal(jf.randomKey(1), [n, n]), b = jf.normal(jf.randomKey(2), [n, n]);
  await jf.realize([a, b]);
  const ms = await timeIt(() => a.matmul(b), n >= 4096 ? 1 : n >= 1024 ? 3 : 6);
  const rate = `${(2 * n ** 3 / ms / 1e6).toFixed(2)} GFLOP/s`;
  if (!webgpu) return rate;
  // One more (already tuned and compiled) run, profiled only to read its matmul kernel's variant.
  const run = await jf.profileKernels(() => a.matmul(b).sum().data());
  // (The sum's kernel has a variant too: only the matmul's is wanted.)
  const kernels = run.submits.flatMap((s) => s.kernels).filter((k) => k.label.startsWith("matmul"));
  const variants = kernels.flatMap((k) => (k.variant ? [k.variant] : []));
  return `${rate} (${[...new Set(variants)].join(", ") || "?"})`;
}

async function elementwise(n: number): Promise<string> {
  const x = jf.uniform(jf.randomKey(3), [n]);
  await jf.realize([x]);
  const ms = await timeIt(() => x.mul(1.5).add(0.25).maximum(0.5).sqrt().mul(x), 3);
  return `${(8 * n / ms / 1e6).toFixed(2)} GB/s`;
}

// The reference backend would take minutes for these; they are measured on the others.
const LARGE = [2048, 4096];

/**
 * Measures matmul, the fused elementwise chain and the training step on each backend and returns
 * the table as markdown; a backend that cannot start is reported in a line before the table. On
 * WebGPU the training step also reports its host encode time (lowering, planning and encoding,
 * median over the measured steps) and the bind groups it created per step.
 */
export async function perfTable(wanted: readonly jf.BackendName[], opts: { quick?: boolean } = {}): Promise<string> {
  const quick = opts.quick ?? false;
  const rows: string[][] = [];
  const notes: string[] = [];
  const sizes = quick ? [256] : [256, 512, 1024, ...LARGE];
  for (const name of wanted) {
    let info: jf.BackendInfo;
    try {
      info = await jf.setBackend(name);
    } catch (e) {
      notes.push(`${name}: skipped (${(e as Error).message})`);
      continue;
    }
    const row = [info.name, info.adapter ?? "-"];
    for (const n of sizes) {
      row.push(info.name === "cpu" && LARGE.includes(n) ? "-" : await matmul(n, info.name === "webgpu"));
    }
    row.push(await elementwise(quick ? 1 << 20 : 1 << 24));
    const steps = quick ? 2 : 10;
    const step = await trainStep(name, steps);
    row.push(`${step.msPerStep.toFixed(0)} ms (${step.tokensPerSec.toFixed(0)} tok/s)`);
    if (info.name === "webgpu") {
      const host = (await jf.hostEncodeTimes()).slice(-steps).sort((a, b) => a - b);
      const bindGroups = jf.stats().bindGroups / steps; // trainStep reset the counters before its steady steps
      row.push(
        `${host[host.length >> 1].toFixed(1)} ms, ${step.dispatchesPerStep} dispatches, ${bindGroups} bind groups`,
      );
    } else {
      row.push("-");
    }
    rows.push(row);
  }
  const head = ["backend", "adapter", ...sizes.map((n) => `matmul ${n}`)];
  head.push(quick ? "elementwise 1M" : "elementwise 16M", "train step", "host encode / step");
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(" | ")} |`;
  const sep = `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`;
  return [...notes, line(head), sep, ...rows.map(line)].join("\n");
}

/**
 * The WebGPU profile of one steady training step and of a matmul (1024, or 256 when quick), as
 * `formatProfile` prints them: per-kernel device time from timestamp queries where the adapter has
 * them, else per-submit wall time.
 */
export async function profileReport(opts: { quick?: boolean; top?: number } = {}): Promise<string> {
  await jf.setBackend("webgpu");
  await trainStep("webgpu", 1); // compiles the step's kernels, so the profile holds no first-run costs
  const step = await jf.profileKernels(() => trainStep("webgpu", 1));
  const n = opts.quick ? 256 : 1024;
  const a = jf.normal(jf.randomKey(1), [n, n]), b = jf.normal(jf.randomKey(2), [n, n]);
  await jf.realize([a, b]);
  await a.matmul(b).sum().data();
  const mm = await jf.profileKernels(() => a.matmul(b).sum().data());
  return [
    "training step (two warm-up steps, one measured step and the loss read; all recorded):",
    jf.formatProfile(step, { top: opts.top ?? 15 }),
    "",
    `matmul ${n} (and its sum):`,
    jf.formatProfile(mm, { top: 5 }),
  ].join("\n");
}

if (import.meta.main) {
  const quick = Deno.args.includes("--quick");
  const wanted = (Deno.args.find((a) => !a.startsWith("--")) ?? "webgpu,wasm,cpu").split(",") as jf.BackendName[];
  if (Deno.args.includes("--profile")) console.log(await profileReport({ quick }));
  else console.log(await perfTable(wanted, { quick }));
}
