// The hardware-aware step of PostNAS: JetBlock geometries of one decoding-state size, and the rule that picks one.

import { block, type BlockSpec, mixer, type ModelConfig } from "../nn/mod.ts";

/** A JetBlock geometry: heads, key (and query) size per head, value size per head. */
export interface JetShape {
  /** Heads of the gated delta rule. */
  readonly heads: number;
  /** Key (and query) size per head. */
  readonly keyDim: number;
  /** Value size per head. */
  readonly valueDim: number;
}

/** Options of `jetGeometries`. */
export interface JetGeometryOptions {
  /** The decoding-state bytes every geometry must have exactly (one JetBlock layer, one sequence). */
  readonly stateBytes: number;
  /** Head counts to try (default 1 to twice the config's heads). */
  readonly heads?: readonly number[];
  /** Sizes are multiples of this (default 4). */
  readonly multiple?: number;
  /** Largest key or value size per head (default twice the width). */
  readonly maxDim?: number;
  /** Geometry fields the candidates keep from this spec (its generator size, norm epsilon, ffn, conv). */
  readonly like?: BlockSpec;
}

/**
 * The jet block spec of a geometry, keeping `like`'s other fields (ffn, conv, generator size, norm epsilon).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { block, jetSpec } from "../mod.ts";
 * const spec = jetSpec({ heads: 2, keyDim: 8, valueDim: 16 }, block("jet", { conv: true }));
 * assert.deepEqual(spec, block("jet", { conv: true, heads: 2, keyDim: 8, valueDim: 16 }));
 * ```
 */
export function jetSpec(shape: JetShape, like?: BlockSpec): BlockSpec {
  const base = like?.attn === "jet" ? like : undefined;
  const { attn: _attn, ...rest } = base ?? { attn: "jet" as const };
  return block("jet", { ...rest, heads: shape.heads, keyDim: shape.keyDim, valueDim: shape.valueDim });
}

/**
 * Every JetBlock geometry whose decoding state is exactly `stateBytes`, in order of heads then key size. A JetBlock
 * keeps a K x V state per head and the conv's last W-1 value inputs, so for each head count and key size at most one
 * value size fits; each candidate is checked against the mixer's own `stateBytes`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { block, jetGeometries, jetSpec, modelConfig, stateBytes } from "../mod.ts";
 * const cfg = modelConfig({ vocab: 16, width: 32, heads: 4, blocks: [block("jet")] });
 * const target = stateBytes(block("jet"), { cfg, context: 1 }); // 4 heads of 8 x 8
 * const shapes = jetGeometries(cfg, { stateBytes: target });
 * assert.ok(shapes.some((s) => s.heads === 4 && s.keyDim === 8 && s.valueDim === 8)); // the default is one of them
 * assert.ok(shapes.every((s) => stateBytes(jetSpec(s), { cfg, context: 1 }) === target));
 * ```
 */
export function jetGeometries(cfg: ModelConfig, opts: JetGeometryOptions): JetShape[] {
  const { stateBytes: target, multiple = 4, maxDim = 2 * cfg.width } = opts;
  const heads = opts.heads ?? Array.from({ length: 2 * cfg.heads }, (_, i) => i + 1);
  if (!(Number.isInteger(target) && target > 0)) {
    throw new Error(`jetGeometries: stateBytes must be a positive integer, got ${target}`);
  }
  if (!(Number.isInteger(multiple) && multiple >= 1)) {
    throw new Error(`jetGeometries: multiple must be a positive integer, got ${multiple}`);
  }
  const taps = cfg.convWidth - 1, out: JetShape[] = [];
  for (const H of heads) {
    for (let K = multiple; K <= maxDim; K += multiple) {
      // 4 bytes x H heads x V x (K + W - 1): the one V that could fit.
      const per = 4 * H * (K + taps);
      if (target % per !== 0) continue;
      const V = target / per;
      if (V % multiple !== 0 || V > maxDim || V < 1) continue;
      const shape = { heads: H, keyDim: K, valueDim: V };
      const spec = jetSpec(shape, opts.like);
      if (mixer(cfg, spec).stateBytes(1) === target) out.push(shape);
    }
  }
  return out;
}

/** One measured geometry, as `chooseGeometry` reads it. */
export interface GeometryScore {
  /** Proxy loss after the short distillation (lower is better). */
  readonly loss: number;
  /** Measured decoding throughput. */
  readonly tokensPerSecond: number;
}

/**
 * The index of the geometry to keep: among those whose loss is within `tolerance` of the best loss, the fastest;
 * ties go to the lower loss, then the earlier row. A pure function of the table.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { chooseGeometry } from "../mod.ts";
 * const rows = [
 *   { loss: 1.00, tokensPerSecond: 50 },
 *   { loss: 1.01, tokensPerSecond: 80 }, // within 0.02 of the best, and faster
 *   { loss: 1.20, tokensPerSecond: 200 }, // fastest, but too far behind
 * ];
 * assert.equal(chooseGeometry(rows, { tolerance: 0.02 }), 1);
 * assert.equal(chooseGeometry(rows, { tolerance: 0 }), 0);
 * ```
 */
export function chooseGeometry(rows: readonly GeometryScore[], opts: { readonly tolerance: number }): number {
  if (rows.length === 0) throw new Error("chooseGeometry: no geometries");
  if (!(opts.tolerance >= 0)) throw new Error(`chooseGeometry: tolerance must be >= 0, got ${opts.tolerance}`);
  rows.forEach((r, i) => {
    if (!Number.isFinite(r.loss) || !Number.isFinite(r.tokensPerSecond)) {
      throw new Error(`chooseGeometry: row ${i} has loss ${r.loss} and ${r.tokensPerSecond} tokens/s`);
    }
  });
  const best = Math.min(...rows.map((r) => r.loss));
  let pick = -1;
  rows.forEach((r, i) => {
    if (r.loss > best + opts.tolerance) return;
    const p = rows[pick];
    if (
      pick < 0 || r.tokensPerSecond > p.tokensPerSecond ||
      (r.tokensPerSecond === p.tokensPerSecond && r.loss < p.loss)
    ) pick = i;
  });
  return pick;
}
