// Which implementation serves each mixer kind.

import { attention } from "./attention.ts";
import { jetBlock } from "./jet.ts";
import { linearAttention } from "./linear_attention.ts";
import type { Mixer } from "./mixer.ts";
import type { MixerKind } from "./spec.ts";

/** The mixer implementation of each `BlockSpec.attn`. */
// deno-lint-ignore no-explicit-any
export const MIXERS: { readonly [K in MixerKind]: Mixer<any, any> } = {
  mha: attention,
  swa: attention,
  linear: linearAttention,
  jet: jetBlock,
};
