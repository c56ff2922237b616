// Block and model descriptions: immutable values, validated with errors that name the field.

/** Token mixers: full attention, sliding-window attention, linear attention, the JetBlock. */
export type MixerKind = "mha" | "swa" | "linear" | "jet";
/** Channel mixers: SwiGLU, or a GELU-gated MLP. */
export type FfnKind = "swiglu" | "gated";

/**
 * Geometry of an attention layer (`mha`, `swa`) where it differs from jetfold's defaults, as in a
 * pretrained model: `headDim` (default `width / heads`, even for RoPE) and `bias` (q/k/v biases;
 * default none).
 */
export interface AttentionGeometry {
  /** Size of each query/key/value head. */
  readonly headDim?: number;
  /** Whether the q, k and v projections add a bias. */
  readonly bias?: boolean;
}

/**
 * Geometry of a JetBlock (`jet`) independent of attention's, as in the official model (12 heads,
 * key head 96, value head 256, generator hidden value width / 8, norm eps 1e-5). Defaults: `heads`
 * the config's, `keyDim = valueDim = width / heads`, `generatorHidden = max(8, ceil(width / 8))`,
 * `normEps` the config's.
 */
export interface JetGeometry {
  /** Heads of the gated delta rule. */
  readonly heads?: number;
  /** Key (and query) size per head. */
  readonly keyDim?: number;
  /** Value size per head; the value width is `heads * valueDim`. */
  readonly valueDim?: number;
  /** Hidden units of the dynamic conv's kernel generator. */
  readonly generatorHidden?: number;
  /** Epsilon of the gated RMSNorm on each head's output. */
  readonly normEps?: number;
}

/**
 * One layer's architecture. `window` is required for `swa` (tokens each position may attend to,
 * itself included) and ignored otherwise; `conv` adds a causal depthwise convolution before the
 * mixer. Attention and JetBlock specs may carry their own geometry (`AttentionGeometry`,
 * `JetGeometry`); without it they follow the config's sizes.
 */
export type BlockSpec =
  | ({ readonly attn: "mha"; readonly ffn: FfnKind; readonly conv?: boolean } & AttentionGeometry)
  | (
    & { readonly attn: "swa"; readonly window: number; readonly ffn: FfnKind; readonly conv?: boolean }
    & AttentionGeometry
  )
  | { readonly attn: "linear"; readonly ffn: FfnKind; readonly conv?: boolean }
  | ({ readonly attn: "jet"; readonly ffn: FfnKind; readonly conv?: boolean } & JetGeometry);

/**
 * The block specs whose mixer is of kind `K` (for `"swa"`, the member with a window). Mixers are
 * typed by it, so `attention(cfg, block("jet"))` is a type error.
 */
export type BlockSpecOf<K extends MixerKind> = BlockSpec & { readonly attn: K };

/** Sizes and per-layer blocks of a model. */
export interface ModelConfig {
  /** Vocabulary size (the embedding is tied with the output head). */
  readonly vocab: number;
  /** Model width (embedding size). */
  readonly width: number;
  /** Query heads of attention mixers; `width` must divide by it. */
  readonly heads: number;
  /** Key/value heads (grouped-query attention); divides `heads`. 1 is multi-query. */
  readonly kvHeads: number;
  /** Hidden size of the FFNs. */
  readonly ffnHidden: number;
  /** One spec per layer. */
  readonly blocks: readonly BlockSpec[];
  /** Kernel width of the causal convolutions (block `conv` and the JetBlock's dynamic conv). */
  readonly convWidth: number;
  /** RMSNorm epsilon. */
  readonly normEps: number;
  /** RoPE base. */
  readonly ropeTheta: number;
  /**
   * Linear RoPE scaling (Hugging Face's `rope_scaling: { type: "linear", factor }`): positions are divided by it
   * before rotating. Absent, positions are used as they are.
   */
  readonly ropeScale?: number;
  /** `false` gives the model its own output head (`ModelParams.head`); absent or `true`, the embedding is the head. */
  readonly tied?: boolean;
}

// Defaults for everything but vocab, width, heads and blocks (kvHeads and ffnHidden follow heads and width).
const CONFIG_DEFAULTS = { convWidth: 4, normEps: 1e-6, ropeTheta: 10000 } as const;

/**
 * A block spec, checked.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { block } from "../mod.ts";
 * assert.deepEqual(block("swa", { window: 64 }), { attn: "swa", window: 64, ffn: "swiglu", conv: false });
 * assert.ok(Object.isFrozen(block("jet", { conv: true, ffn: "gated" })));
 * assert.throws(() => block("swa"), /window must be a positive integer for swa/);
 * // The official JetBlock geometry: its own heads and head sizes (value width 12 * 256 = 3072).
 * const jet = block("jet", { heads: 12, keyDim: 96, valueDim: 256, generatorHidden: 384, normEps: 1e-5 });
 * assert.equal(jet.valueDim, 256);
 * assert.throws(() => block("mha", { keyDim: 96 }), /keyDim applies only to jet blocks/);
 * ```
 */
export function block<K extends MixerKind>(
  attn: K,
  opts:
    & { readonly ffn?: FfnKind; readonly conv?: boolean; readonly window?: number }
    & AttentionGeometry
    & JetGeometry = {},
): BlockSpecOf<K> {
  const ffn = opts.ffn ?? "swiglu", conv = opts.conv ?? false, kind: MixerKind = attn;
  // Geometry fields appear only when given, so default specs stay exactly as they were.
  const geometry = Object.fromEntries(
    GEOMETRY_FIELDS.filter((f) => opts[f] !== undefined).map((f) => [f, opts[f]]),
  );
  const spec =
    (kind === "swa"
      ? { attn: kind, window: opts.window ?? NaN, ffn, conv, ...geometry }
      : { attn: kind, ffn, conv, ...geometry }) as BlockSpec;
  checkBlock(spec, "block");
  // The spec's attn is `attn`, so it is of kind K; TypeScript cannot follow that through the branch.
  return Object.freeze(spec) as BlockSpecOf<K>;
}

const MIXERS: readonly MixerKind[] = ["mha", "swa", "linear", "jet"];
const FFNS: readonly FfnKind[] = ["swiglu", "gated"];

const ATTENTION_FIELDS = ["headDim", "bias"] as const;
const JET_FIELDS = ["heads", "keyDim", "valueDim", "generatorHidden", "normEps"] as const;
const GEOMETRY_FIELDS = [...ATTENTION_FIELDS, ...JET_FIELDS] as const;
const BLOCK_FIELDS = ["attn", "ffn", "conv", "window", ...GEOMETRY_FIELDS] as const;
const CONFIG_FIELDS = [
  "vocab",
  "width",
  "heads",
  "kvHeads",
  "ffnHidden",
  "blocks",
  "convWidth",
  "normEps",
  "ropeTheta",
  "ropeScale",
  "tied",
] as const satisfies readonly (keyof ModelConfig)[];

function fail(where: string, msg: string): never {
  throw new Error(`${where}: ${msg}`);
}

// A value as an error message shows it: strings say they are strings, since "4" and 4 read alike.
function shown(v: unknown): string {
  if (typeof v === "string") return `the string ${JSON.stringify(v)}`;
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (typeof v === "object" && v !== null) return "an object";
  if (typeof v === "number") return String(v); // JSON.stringify would show NaN as null
  return JSON.stringify(v) ?? String(v);
}

// Rejects what is not a plain record, and fields it does not know (a typo would otherwise be ignored).
function checkFields(value: unknown, fields: readonly string[], what: string, where: string): void {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    fail(where, `expected ${what} object, got ${shown(value)}`);
  }
  const unknown = Object.keys(value).find((k) => !fields.includes(k));
  if (unknown !== undefined) {
    fail(where, `unknown field ${JSON.stringify(unknown)}; the fields of ${what} are ${fields.join(", ")}`);
  }
}

/** Throws unless `spec` is a valid BlockSpec; `where` prefixes the message (e.g. "blocks[2]"). */
export function checkBlock(spec: unknown, where: string): asserts spec is BlockSpec {
  checkFields(spec, BLOCK_FIELDS, "a block spec", where);
  const s = spec as Record<string, unknown>;
  if (!MIXERS.includes(s.attn as MixerKind)) {
    fail(where, `attn must be one of ${MIXERS.join(", ")}; got ${JSON.stringify(s.attn)}`);
  }
  if (!FFNS.includes(s.ffn as FfnKind)) {
    fail(where, `ffn must be one of ${FFNS.join(", ")}; got ${JSON.stringify(s.ffn)}`);
  }
  if (s.conv !== undefined && typeof s.conv !== "boolean") {
    fail(where, `conv must be a boolean, got ${shown(s.conv)}`);
  }
  // Only swa uses a window, but one given elsewhere must still be a window.
  if ((s.attn === "swa" || s.window !== undefined) && !(Number.isSafeInteger(s.window) && (s.window as number) >= 1)) {
    fail(where, `window must be a positive integer${s.attn === "swa" ? " for swa" : ""}, got ${shown(s.window)}`);
  }
  checkGeometry(s, where);
}

function checkGeometry(s: Record<string, unknown>, where: string): void {
  const attention = s.attn === "mha" || s.attn === "swa";
  for (const f of ATTENTION_FIELDS) {
    if (s[f] !== undefined && !attention) fail(where, `${f} applies only to mha and swa blocks, not ${s.attn}`);
  }
  for (const f of JET_FIELDS) {
    if (s[f] !== undefined && s.attn !== "jet") fail(where, `${f} applies only to jet blocks, not ${s.attn}`);
  }
  for (const f of ["headDim", "heads", "keyDim", "valueDim", "generatorHidden"]) {
    if (s[f] !== undefined && !(Number.isSafeInteger(s[f]) && (s[f] as number) >= 1)) {
      fail(where, `${f} must be a positive integer, got ${shown(s[f])}`);
    }
  }
  if (s.headDim !== undefined && (s.headDim as number) % 2 !== 0) {
    fail(where, `headDim must be even for RoPE, got ${s.headDim}`);
  }
  if (s.bias !== undefined && typeof s.bias !== "boolean") fail(where, `bias must be a boolean, got ${shown(s.bias)}`);
  const eps = s.normEps;
  if (eps !== undefined && !(typeof eps === "number" && Number.isFinite(eps) && eps > 0)) {
    fail(where, `normEps must be a positive number, got ${shown(eps)}`);
  }
}

/**
 * A complete, validated, frozen model config. Omitted sizes default to `kvHeads = heads`,
 * `ffnHidden = 4 * width`, `convWidth = 4`, `normEps = 1e-6` and `ropeTheta = 10000`. As strict
 * for parsed JSON (a checkpoint's `jetfold.config`) as for code: unknown fields, a string where a
 * number belongs or `blocks` that is not an array are errors naming the field and what it allows.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { block, modelConfig } from "../mod.ts";
 * const cfg = modelConfig({ vocab: 256, width: 64, heads: 4, blocks: [block("mha"), block("jet")] });
 * assert.deepEqual([cfg.kvHeads, cfg.ffnHidden, cfg.convWidth, cfg.ropeTheta], [4, 256, 4, 10000]);
 * assert.throws(() => modelConfig({ ...cfg, heads: 3 }), /heads \(3\) must divide width \(64\)/);
 * assert.throws(() => modelConfig(JSON.parse('{"vocab":256,"width":64,"heads":4,"blocks":"mha,mha"}')), /blocks/);
 * ```
 */
export function modelConfig(
  c: Partial<ModelConfig> & Pick<ModelConfig, "vocab" | "width" | "heads" | "blocks">,
): ModelConfig {
  // The given fields are checked before defaults hide them or copying turns a string into a record.
  checkFields(c, CONFIG_FIELDS, "a model config", "modelConfig");
  checkBlocks(c.blocks, "modelConfig");
  const cfg: ModelConfig = {
    ...CONFIG_DEFAULTS,
    kvHeads: c.heads,
    // Only a number is multiplied (an object whose toString is not a function would throw here);
    // checkConfig refuses anything else by name.
    ffnHidden: typeof c.width === "number" ? 4 * c.width : c.width,
    ...c,
    blocks: Object.freeze(c.blocks.map((b) => Object.freeze({ ...b }))),
  };
  checkConfig(cfg);
  return Object.freeze(cfg);
}

function checkBlocks(blocks: unknown, where: string): void {
  if (!Array.isArray(blocks) || blocks.length === 0) {
    fail(where, `blocks must be a non-empty array of block specs, got ${shown(blocks)}`);
  }
  blocks.forEach((b, i) => checkBlock(b, `${where}: blocks[${i}]`));
}

/** Throws unless `cfg` is a complete, consistent ModelConfig, naming the field and the allowed values. */
export function checkConfig(cfg: unknown): asserts cfg is ModelConfig {
  const where = "modelConfig";
  checkFields(cfg, CONFIG_FIELDS, "a model config", where);
  const c = cfg as Record<string, unknown>;
  for (const name of ["vocab", "width", "heads", "kvHeads", "ffnHidden", "convWidth"]) {
    const v = c[name];
    if (!Number.isSafeInteger(v) || (v as number) < 1) {
      fail(where, `${name} must be a positive integer, got ${shown(v)}`);
    }
  }
  const finite = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);
  if (!finite(c.normEps) || !(c.normEps > 0)) fail(where, `normEps must be a positive number, got ${shown(c.normEps)}`);
  if (!finite(c.ropeTheta) || !(c.ropeTheta > 1)) {
    fail(where, `ropeTheta must be a number greater than 1, got ${shown(c.ropeTheta)}`);
  }
  if (c.ropeScale !== undefined && !(finite(c.ropeScale) && c.ropeScale > 0)) {
    fail(where, `ropeScale must be a positive number, got ${shown(c.ropeScale)}`);
  }
  if (c.tied !== undefined && typeof c.tied !== "boolean") fail(where, `tied must be a boolean, got ${shown(c.tied)}`);
  const { width, heads, kvHeads } = c as { width: number; heads: number; kvHeads: number };
  checkBlocks(c.blocks, where);
  const blocks = c.blocks as readonly BlockSpec[];
  // width/heads is the head size only of the blocks that do not state their own.
  if (blocks.some(usesConfigHeads)) {
    if (width % heads !== 0) fail(where, `heads (${heads}) must divide width (${width})`);
    if ((width / heads) % 2 !== 0) fail(where, `the head size width/heads (${width / heads}) must be even for RoPE`);
  }
  if (heads % kvHeads !== 0) fail(where, `kvHeads (${kvHeads}) must divide heads (${heads})`);
  blocks.forEach((b, i) => {
    if (b.attn === "jet" && b.heads !== undefined && (b.keyDim === undefined || b.valueDim === undefined)) {
      if (width % b.heads !== 0) fail(where, `blocks[${i}]: jet heads (${b.heads}) must divide width (${width})`);
    }
  });
}

function usesConfigHeads(b: BlockSpec): boolean {
  if (b.attn === "mha" || b.attn === "swa") return b.headDim === undefined;
  if (b.attn === "jet") return b.heads === undefined && (b.keyDim === undefined || b.valueDim === undefined);
  return true;
}

/** Head size of the attention-like mixers: the spec's own `headDim` where it has one, else `width / heads`. */
export function headDim(cfg: ModelConfig, spec?: BlockSpec): number {
  return spec !== undefined && (spec.attn === "mha" || spec.attn === "swa") && spec.headDim !== undefined
    ? spec.headDim
    : cfg.width / cfg.heads;
}

/** A JetBlock's sizes, its spec's geometry filled in with the defaults (see `JetGeometry`). */
export function jetGeometry(cfg: ModelConfig, spec?: BlockSpec): Required<JetGeometry> {
  const g: JetGeometry = spec?.attn === "jet" ? spec : {};
  const heads = g.heads ?? cfg.heads, E = cfg.width / heads;
  const valueDim = g.valueDim ?? E;
  return {
    heads,
    keyDim: g.keyDim ?? E,
    valueDim,
    generatorHidden: g.generatorHidden ?? Math.max(8, Math.ceil(cfg.width / 8)),
    normEps: g.normEps ?? cfg.normEps,
  };
}
