// Real model geometries with random weights: load time, peak memory, prefill and decode tokens/s per backend.
// Usage: deno run -A bench/pretrained.ts [--models jet2b,qwen0.5b] [--contexts 256,4096] [--backends cpu,wasm,webgpu]
//        [--layers N] [--decode-tokens 8] [--keep] [--dir DIR] [--synthetic 4096]
// Each (model, backend) runs in a subprocess of its own, so its peak memory (VmHWM) is its own. The full
// Jet-Nemotron-2B geometry holds 8 GB of f32 weights: scale it down with --layers on a small machine.
// --dir DIR writes the random-weight directory of one model there (once) and reuses it, so that the
// writing, whose memory is the parent's, is not repeated; --backends none then only writes it.
// --synthetic C1,C2: those contexts are not prefilled; their decoding state is built directly (a 16-token
// prefill into caches preallocated for the context, every cache value then replaced by a random one, the
// position set to the context): a decode step's cost depends on the caches' sizes, not their values.
// The weights are written streaming (bench/random_weights.ts): one chunk of one tensor in memory at a time.

import * as jf from "../mod.ts";
import { writeRandomModel } from "./random_weights.ts";

type Json = Record<string, unknown>;

// The official configs' geometry (NVlabs Jet-Nemotron jetlm_2B.json; Qwen2.5-0.5B's config.json).
const JET_2B: Json = {
  architectures: ["JetNemotronForCausalLM"],
  efficient_attention_config: {
    jet: {
      conv_size: 4,
      dconv_generator_reduction: 8,
      expand_v: 2.6666666667,
      head_dim: 96,
      norm_eps: "1e-5",
      num_heads: 12,
    },
    swa: { window_size: 1152 },
  },
  hidden_size: 1536,
  intermediate_size: 8960,
  layer_types: [
    ...Array(14).fill("jet"),
    "attn",
    ...Array(4).fill("jet"),
    "attn",
    "swa",
    "swa",
    ...Array(6).fill("jet"),
  ],
  num_attention_heads: 12,
  num_hidden_layers: 28,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-6,
  rope_theta: 1e6,
  tie_word_embeddings: true,
  vocab_size: 151936,
};
const QWEN_05B: Json = {
  architectures: ["Qwen2ForCausalLM"],
  hidden_size: 896,
  intermediate_size: 4864,
  num_attention_heads: 14,
  num_hidden_layers: 24,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-6,
  rope_theta: 1e6,
  tie_word_embeddings: true,
  vocab_size: 151936,
};
const MODELS: Readonly<Record<string, Json>> = { "jet2b": JET_2B, "qwen0.5b": QWEN_05B };

function option(name: string, fallback: string): string {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 && i + 1 < Deno.args.length ? Deno.args[i + 1] : fallback;
}

// N of the model's layers, spread over its depth so that a scaled-down hybrid keeps its mix of kinds.
function scaled(c: Json, layers: number | null): Json {
  const all = c.num_hidden_layers as number;
  if (layers === null || layers >= all) return c;
  const pick = Array.from({ length: layers }, (_, i) => Math.round((i * (all - 1)) / Math.max(1, layers - 1)));
  const types = c.layer_types as string[] | undefined;
  return { ...c, num_hidden_layers: layers, ...(types ? { layer_types: pick.map((i) => types[i]) } : {}) };
}

// Peak resident memory of this process (Linux's VmHWM), else the current RSS.
function peakBytes(): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(Deno.readTextFileSync("/proc/self/status"));
    if (m) return Number(m[1]) * 1024;
  } catch { /* not Linux */ }
  return Deno.memoryUsage().rss;
}

interface Row {
  model: string;
  backend: string;
  layers: number;
  params: number;
  loadSeconds: number;
  /** Peak resident memory once loaded, and at the end (after prefill and decode at every context). */
  loadPeakBytes: number;
  peakBytes: number;
  perContext: { context: number; prefillTps: number | null; decodeTps: number }[];
  /** Why the run failed, if it did (e.g. WebGPU's refusal of a tensor over its binding limit). */
  error?: string;
}

// A decoding state at `context` without its prefill: a short prompt into caches preallocated for the context,
// every float cache value then random (same shapes, so the same decode cost), the position set to the context.
function syntheticState(params: jf.ModelParams, config: jf.ModelConfig, context: number, k: number) {
  const prompt = jf.randint(jf.randomKey(1), [1, 16], { minval: 0, maxval: config.vocab });
  const [logits, state] = jf.prefill(params, prompt, config, { capacity: context + k });
  const [leaves, def] = jf.treeFlatten(state.layers);
  const fresh = leaves.map((t, i) => t.dtype === "f32" ? jf.normal(jf.randomKey(100 + i), t.shape).mul(0.1) : t);
  const layers = jf.treeUnflatten(def, fresh) as typeof state.layers;
  return [logits, { ...state, layers, pos: context }] as const;
}

// One model directory on one backend: load it, then prefill and decode at each context.
async function measure(
  dir: string,
  name: string,
  backend: jf.BackendName,
  contexts: number[],
  k: number,
  synthetic: number[],
): Promise<Row> {
  await jf.setBackend(backend);
  const t0 = performance.now();
  const { config, params } = await jf.loadPretrained(dir);
  await jf.realize(jf.treeLeaves(params)); // on the device, where the backend has one
  const loadSeconds = (performance.now() - t0) / 1000, loadPeakBytes = peakBytes();
  const perContext = [];
  for (const context of contexts) {
    const prompt = jf.randint(jf.randomKey(context), [1, context], { minval: 0, maxval: config.vocab });
    let t = performance.now();
    const fake = synthetic.includes(context);
    let [logits, state] = fake
      ? syntheticState(params, config, context, k)
      : jf.prefill(params, prompt, config, { capacity: context + k });
    await jf.realize([logits, ...jf.treeLeaves(state.layers)]);
    const prefillTps = fake ? null : context / ((performance.now() - t) / 1000);
    // Decoding as generate does: argmax on the device, the caches realized every token, no readback.
    let start = 0;
    for (let i = 0; i < k; i++) {
      if (i === 1) start = performance.now(); // the first step compiles on WebGPU: not counted
      const next = jf.ops.argmax(logits, { axis: -1 }).reshape([1, 1]);
      [logits, state] = jf.decodeStep(params, next, state, config);
      await jf.realize([logits, ...jf.treeLeaves(state.layers)]);
    }
    await logits.data();
    t = performance.now();
    perContext.push({ context, prefillTps, decodeTps: (k - 1) / ((t - start) / 1000) });
    jf.treeDispose([logits, ...jf.treeLeaves(state.layers)]);
  }
  const count = jf.paramCount(params);
  return {
    model: name,
    backend,
    layers: config.blocks.length,
    params: count,
    loadSeconds,
    loadPeakBytes,
    peakBytes: peakBytes(),
    perContext,
  };
}

async function main(): Promise<void> {
  const contexts = option("contexts", "256,4096").split(",").map(Number);
  const k = Number(option("decode-tokens", "8"));
  const one = option("one", "");
  const syntheticText = option("synthetic", "");
  const synthetic = syntheticText === "" ? [] : syntheticText.split(",").map(Number);
  if (one !== "") {
    // A child: measure one directory on one backend, and print the row as JSON.
    const backend = option("backend", "cpu") as jf.BackendName;
    const row = await measure(one, option("name", "?"), backend, contexts, k, synthetic);
    console.log(JSON.stringify(row));
    return;
  }
  const models = option("models", "jet2b,qwen0.5b").split(",");
  const backends = option("backends", "cpu,wasm,webgpu").split(",").filter((b) => b !== "none");
  const given = option("dir", "");
  if (given !== "" && models.length !== 1) throw new Error("--dir holds one model: name it with --models");
  const layersText = option("layers", "");
  const layers = layersText === "" ? null : Number(layersText);
  const rows: Row[] = [];
  for (const name of models) {
    if (!Object.hasOwn(MODELS, name)) throw new Error(`unknown model ${name} (${Object.keys(MODELS).join(", ")})`);
    const dir = given !== "" ? given : await Deno.makeTempDir({ prefix: `jetfold-bench-${name}-` });
    try {
      // Random weights of the real geometry, saved as BF16 (as the official checkpoints are).
      const { cfg } = (await import("../nn/hf_config.ts")).fromHfConfig(scaled(MODELS[name], layers), "bench");
      const written = await Deno.stat(`${dir}/config.json`).then(() => true, () => false);
      if (!written) {
        const t = performance.now();
        await writeRandomModel(dir, cfg, 0);
        console.error(
          `${name}: wrote ${dir} in ${((performance.now() - t) / 1000).toFixed(1)} s, peak ${gib(peakBytes())}`,
        );
      }
      for (const backend of backends) {
        const args = ["run", "-A", import.meta.filename!, "--one", dir, "--name", name, "--backend", backend];
        const out = await new Deno.Command(Deno.execPath(), {
          args: [...args, "--contexts", contexts.join(","), "--decode-tokens", String(k), "--synthetic", syntheticText],
          stderr: "piped",
        }).output();
        const errText = new TextDecoder().decode(out.stderr);
        await Deno.stderr.write(out.stderr);
        const line = new TextDecoder().decode(out.stdout).trim().split("\n").at(-1) ?? "";
        const row: Row = out.code === 0 ? JSON.parse(line) : {
          model: name,
          backend,
          layers: cfg.blocks.length,
          params: 0,
          loadSeconds: NaN,
          loadPeakBytes: NaN,
          peakBytes: NaN,
          perContext: [],
          error: /Error: (.*)/.exec(errText)?.[1] ?? `status ${out.code}: ${line}`,
        };
        rows.push(row);
        console.error(`${name} ${backend}: ${JSON.stringify(row)}`);
      }
    } finally {
      if (given === "" && !Deno.args.includes("--keep")) await Deno.remove(dir, { recursive: true });
    }
  }
  console.log(table(rows, contexts, synthetic));
}

const gib = (bytes: number) => `${(bytes / 2 ** 30).toFixed(2)} GiB`;

function table(rows: Row[], contexts: number[], synthetic: number[]): string {
  const head = ["model", "backend", "layers", "parameters", "load", "peak loaded", "peak memory"];
  for (const c of contexts) {
    head.push(`prefill ${c}`, synthetic.includes(c) ? `decode at ${c} (synthetic context)` : `decode at ${c}`);
  }
  const lines = [`| ${head.join(" | ")} |`, `| ${head.map(() => "---").join(" | ")} |`];
  for (const r of rows) {
    if (r.error !== undefined) {
      lines.push(`| ${r.model} | ${r.backend} | ${r.layers} | failed: ${r.error.replaceAll("|", "/")} |`);
      continue;
    }
    const cells = [
      r.model,
      r.backend,
      String(r.layers),
      `${(r.params / 1e6).toFixed(1)}M`,
      `${r.loadSeconds.toFixed(1)} s`,
      gib(r.loadPeakBytes),
      gib(r.peakBytes),
    ];
    for (const p of r.perContext) {
      cells.push(p.prefillTps === null ? "-" : `${p.prefillTps.toFixed(1)} tok/s`, `${p.decodeTps.toFixed(2)} tok/s`);
    }
    lines.push(`| ${cells.join(" | ")} |`);
  }
  return lines.join("\n");
}

if (import.meta.main) await main();
