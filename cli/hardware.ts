// search --hardware-search: JetBlock geometries with the chosen placement's decoding state, each trained briefly
// (distilled where the supernet was), scored and timed on the backend in use; the fastest within a tolerance wins.

import {
  type BlockSpec,
  chooseGeometry,
  decodeLatency,
  evaluateAnswers,
  extractSubnet,
  foldIn,
  jetGeometries,
  type JetShape,
  jetSpec,
  mixer,
  type ModelConfig,
  modelConfig,
  type ModelParams,
  totalStateBytes,
  treeDispose,
  treeLeaves,
} from "../mod.ts";
import { bool, int, num } from "./args.ts";
import { InputError } from "./input.ts";
import { blockLabel, refuseIgnored, stepCount } from "./options.ts";
import type { Space } from "./space.ts";
import { type Ctx, evaluate, keyFor, trainModel } from "./phases.ts";
import type { Warm } from "./pipeline.ts";
import { say } from "./progress.ts";
import type { GeometrySummary } from "./report.ts";
import { stopIfInterrupted } from "./session.ts";

/** The options of the hardware-aware step. */
export const HARDWARE = {
  hardwareSearch: bool(
    "after the search: try JetBlock geometries (heads x key x value) with the same decoding state, each trained\n" +
      "briefly, and keep the fastest within --hardware-tolerance of the best loss",
  ),
  hardwareSteps: stepCount(30, "with --hardware-search: training steps of each geometry", { min: 1 }),
  hardwareCandidates: int(6, "with --hardware-search: geometries tried at most, the current one included", {
    min: 1,
    max: 64,
  }),
  hardwareTolerance: num(0.02, "with --hardware-search: loss (nats) a faster geometry may give up", { min: 0 }),
} as const;

/**
 * Refuses the step's options without --hardware-search, and the step asked for in a space with no JetBlock to
 * reshape (where it is on by default, as in demo, such a space just has nothing to try).
 */
export function checkHardware(o: { readonly hardwareSearch: boolean }, given: ReadonlySet<string>, space: Space): void {
  if (!o.hardwareSearch) {
    refuseIgnored(given, ["hardwareSteps", "hardwareCandidates", "hardwareTolerance"], "without --hardware-search");
  } else if (given.has("hardwareSearch") && !space.candidates.some((c) => c.attn === "jet")) {
    throw new InputError(`--hardware-search tries JetBlock geometries, and the ${space.name} space has no jet`);
  }
}

/** Values the step reads. */
export interface HardwareOptions {
  readonly hardwareSteps: number;
  readonly hardwareCandidates: number;
  readonly hardwareTolerance: number;
  readonly supernetSteps: number;
  readonly supernetLr: number;
  readonly warmup: number;
  readonly seqLen: number;
  readonly context: number;
}

/** What the step chose, and its table. */
export interface HardwareResult {
  readonly choice: readonly BlockSpec[];
  readonly model: { readonly config: ModelConfig; readonly params: ModelParams };
  readonly rows: readonly GeometrySummary[];
  readonly rule: string;
}

// The geometry of a trained JetBlock, read from its params: aLog is [heads], wq [width, heads x K], wv [width, heads x V].
function shapeOf(p: ModelParams["blocks"][number]["mixer"]): JetShape {
  const m = p as unknown as Record<string, { shape: readonly number[] }>;
  const heads = m.aLog.shape[0];
  return { heads, keyDim: m.wq.shape[1] / heads, valueDim: m.wv.shape[1] / heads };
}

const same = (a: JetShape, b: JetShape) => a.heads === b.heads && a.keyDim === b.keyDim && a.valueDim === b.valueDim;
const label = (s: JetShape) => `${s.heads}x${s.keyDim}x${s.valueDim}`;

// At most n geometries: the current one, and the others spread evenly over the enumeration's order.
function pick(all: readonly JetShape[], current: JetShape, n: number): JetShape[] {
  const others = all.filter((s) => !same(s, current));
  const m = Math.min(n - 1, others.length);
  const spread = Array.from({ length: m }, (_, i) => others[Math.floor((i * others.length) / m)]);
  return [current, ...spread];
}

/**
 * For the chosen placement: every JetBlock layer takes each geometry in turn (fresh JetBlock weights from the
 * seed, the rest from the supernet), trains `hardwareSteps` steps on the supernet's data beyond its own steps (with
 * the supernet's teacher where it had one, MLPs frozen), and is scored (held-out loss, or --eval's answer loss) and
 * timed (decode tokens/s after `seqLen` tokens). Null when the placement has no JetBlock.
 */
export async function hardwareSearch(
  ctx: Ctx,
  warm: Warm,
  choice: readonly BlockSpec[],
  o: HardwareOptions,
): Promise<HardwareResult | null> {
  const layers = choice.flatMap((b, i) => (b.attn === "jet" ? [i] : []));
  if (layers.length === 0) {
    say(ctx.out, "  hardware-aware step: the choice has no jet layer, nothing to try");
    return null;
  }
  const base = extractSubnet(warm.supernet, choice);
  const template = choice[layers[0]];
  const current = shapeOf(base.params.blocks[layers[0]].mixer);
  const target = mixer(base.config, template).stateBytes(1);
  const shapes = pick(
    jetGeometries(base.config, { stateBytes: target, like: template }),
    current,
    o.hardwareCandidates,
  );
  const rule = `the fastest within ${o.hardwareTolerance} nats of the best loss (ties: lower loss, then listed order)`;
  say(
    ctx.out,
    `  hardware-aware step: ${shapes.length} JetBlock geometries (heads x key x value) with ${target} bytes of ` +
      `state per layer, ${o.hardwareSteps} steps each; keeps ${rule}`,
  );
  const keep = treeLeaves(base.params);
  const tried: { shape: JetShape; blocks: BlockSpec[]; config: ModelConfig; params: ModelParams }[] = [];
  const rows: Omit<GeometrySummary, "chosen">[] = [];
  for (const shape of shapes) {
    const spec = jetSpec(shape, template);
    const blocks = choice.map((b) => (b.attn === "jet" ? spec : b));
    const config = modelConfig({ ...base.config, blocks });
    const key = foldIn(foldIn(foldIn(keyFor(ctx.seed, "geometry"), shape.heads), shape.keyDim), shape.valueDim);
    const params: ModelParams = {
      ...base.params,
      blocks: base.params.blocks.map((b, i) =>
        blocks[i].attn === "jet" ? { ...b, mixer: mixer(config, spec).init(foldIn(key, i)) } : b
      ),
    };
    const r = await trainModel(ctx, {
      label: `geometry ${label(shape)}`,
      stream: "supernet",
      phase: `geometry ${label(shape)}`,
      config,
      params,
      opt: null,
      start: o.supernetSteps,
      total: o.supernetSteps + o.hardwareSteps,
      lr: o.supernetLr,
      warmup: o.warmup,
      decaySteps: o.hardwareSteps,
      freezeMlp: true,
      keep,
      ...(warm.distill === null ? {} : { distill: warm.distill }),
    });
    await stopIfInterrupted(
      ctx,
      "the hardware-aware step",
      () => ({ ...base, step: 0, data: ctx.data.meta, opt: null }),
      "",
    );
    const ev = ctx.evalSet === undefined
      ? await evaluate(ctx, r.params, config)
      : await evaluateAnswers(r.params, config, ctx.evalSet);
    const ms = await decodeLatency(r.params, config, { context: o.seqLen });
    const row = {
      heads: shape.heads,
      keyDim: shape.keyDim,
      valueDim: shape.valueDim,
      stateBytes: totalStateBytes(blocks, { cfg: config, context: o.context }),
      tokensPerSecond: 1000 / ms,
      loss: ev.loss,
    };
    say(
      ctx.out,
      `    ${label(shape).padEnd(10)} loss ${row.loss.toFixed(3)}  ${row.tokensPerSecond.toFixed(1)} tokens/s` +
        (same(shape, current) ? "  (the searched geometry)" : ""),
    );
    rows.push(row);
    tried.push({ shape, blocks, config, params: r.params });
  }
  const best = chooseGeometry(rows, { tolerance: o.hardwareTolerance });
  const kept = new Set([...keep, ...treeLeaves(tried[best].params)]);
  tried.forEach((t, i) => i !== best && treeDispose(treeLeaves(t.params).filter((x) => !kept.has(x))));
  say(ctx.out, `  geometry: ${label(tried[best].shape)} in ${tried[best].blocks.map(blockLabel).join(", ")}`);
  return {
    choice: tried[best].blocks,
    model: { config: tried[best].config, params: tried[best].params },
    rows: rows.map((r, i) => ({ ...r, chosen: i === best })),
    rule,
  };
}
