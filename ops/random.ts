// Samplers that need ops: categorical draws by the Gumbel-max trick.

import { type Key, type Tensor, uniform } from "../core/mod.ts";
import { argmax } from "./reduce.ts";

/**
 * Draws class indices (i32) from unnormalized log-probabilities along an axis (the last by default).
 *
 * @example
 * ```ts
 * import { ops, randomKey, tensor } from "../mod.ts";
 * const ids = ops.categorical(randomKey(0), tensor([[0, 1, 2], [2, 1, 0]])); // shape [2]
 * ```
 */
export function categorical(key: Key, logits: Tensor, opts: { readonly axis?: number } = {}): Tensor {
  const u = uniform(key, logits.shape, { minval: 2 ** -24, maxval: 1 });
  const gumbel = u.log().neg().log().neg();
  return argmax(logits.add(gumbel), { axis: opts.axis ?? -1 });
}
