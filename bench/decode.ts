// Decode cost against context: a stack of mha layers against a stack of jet layers of equal width.
// Usage: deno run -A bench/decode.ts [backends=webgpu,wasm,cpu] [contexts=256,1024,4096,8192]

import * as jf from "../mod.ts";

const WIDTH = 128, HEADS = 4, LAYERS = 4, VOCAB = 256, STEPS = 6;

/** One row of the decode table. */
export interface DecodeRow {
  backend: string;
  kind: string;
  context: number;
  msPerToken: number;
  cacheBytes: number;
}

// The caches after `context` tokens. Their contents do not change the cost, so the KV caches are
// filled with zeros of the right length instead of running a long prefill.
function stateAt(params: jf.ModelParams, cfg: jf.ModelConfig, context: number): jf.DecodeState {
  const [, state] = jf.prefill(params, jf.tensor([[1, 2, 3, 4]], { dtype: "i32" }), cfg);
  const layers = state.layers.map((l, i) => {
    if (cfg.blocks[i].attn !== "mha") return l;
    const shape = [1, cfg.kvHeads, context, WIDTH / HEADS];
    return { ...l, mixer: { k: jf.zeros(shape).add(0), v: jf.zeros(shape).add(0) } };
  });
  return { layers, pos: context };
}

/** Milliseconds per generated token at each context, for each kind of stack, on one backend. */
export async function decodeTable(backend: jf.BackendName, contexts: readonly number[]): Promise<DecodeRow[]> {
  const info = await jf.setBackend(backend);
  const rows: DecodeRow[] = [];
  for (const kind of ["mha", "jet"] as const) {
    const cfg = jf.modelConfig({
      vocab: VOCAB,
      width: WIDTH,
      heads: HEADS,
      blocks: Array(LAYERS).fill(jf.block(kind)),
    });
    const params = jf.initModel(jf.randomKey(0), cfg);
    await jf.realize(jf.treeLeaves(params));
    for (const context of contexts) {
      let state = stateAt(params, cfg, context);
      await jf.realize(jf.treeLeaves(state.layers));
      let token = jf.tensor([[7]], { dtype: "i32" });
      let t0 = 0;
      for (let i = 0; i < STEPS + 2; i++) {
        if (i === 2) {
          await token.data(); // the warm-up steps are done on the device
          t0 = performance.now();
        }
        const [logits, next] = jf.decodeStep(params, token, state, cfg);
        token = jf.ops.argmax(logits).reshape([1, 1]);
        await jf.realize([token, ...jf.treeLeaves(next.layers)]);
        state = next;
      }
      await token.data();
      const ms = (performance.now() - t0) / STEPS;
      const cacheBytes = jf.totalStateBytes(cfg.blocks, { cfg, context });
      rows.push({ backend: info.name, kind, context, msPerToken: ms, cacheBytes });
    }
  }
  return rows;
}

/** Formats rows as a table. */
export function formatDecode(rows: readonly DecodeRow[]): string {
  const head = "| backend | stack | context | ms/token | cache |";
  const sep = "|---------|-------|---------|----------|-------|";
  const fmtBytes = (b: number) => (b >= 2 ** 20 ? `${(b / 2 ** 20).toFixed(1)} MiB` : `${(b / 1024).toFixed(1)} KiB`);
  const lines = rows.map((r) =>
    `| ${r.backend} | ${LAYERS} x ${r.kind} | ${r.context} | ${r.msPerToken.toFixed(1)} | ${fmtBytes(r.cacheBytes)} |`
  );
  return [head, sep, ...lines].join("\n");
}

/** The decode table for several backends; a backend that cannot start is reported in a line. */
export async function decodeReport(backends: readonly jf.BackendName[], contexts: readonly number[]): Promise<string> {
  const rows: DecodeRow[] = [], notes: string[] = [];
  for (const b of backends) {
    try {
      rows.push(...await decodeTable(b, contexts));
    } catch (e) {
      notes.push(`${b}: skipped (${(e as Error).message})`);
    }
  }
  return [...notes, formatDecode(rows)].join("\n");
}

if (import.meta.main) {
  const backends = (Deno.args[0] ?? "webgpu,wasm,cpu").split(",") as jf.BackendName[];
  const contexts = (Deno.args[1] ?? "256,1024,4096,8192").split(",").map(Number);
  console.log(await decodeReport(backends, contexts));
}
