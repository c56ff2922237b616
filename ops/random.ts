// Samplers that need ops: categorical draws by the Gumbel-max trick.

import { type Key, type Tensor, uniform } from "../core/mod.ts";
import { argmax } from "./reduce.ts";

/**
 * Draws class indices (i32) from unnormalized log-probabilities along an axis (the last by default).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ops, randomKey, tensor } from "../mod.ts";
 * // Logits this far apart leave the noise no say: each row draws its largest.
 * const ids = ops.categorical(randomKey(0), tensor([[0, 100, 0], [100, 0, 0]]));
 * assert.deepEqual(await ids.data(), Int32Array.of(1, 0));
 * // The same key draws the same classes.
 * const logits = tensor([[0, 1, 2, 3]]);
 * assert.deepEqual(await ops.categorical(randomKey(5), logits).data(), await ops.categorical(randomKey(5), logits).data());
 * ```
 */
export function categorical(key: Key, logits: Tensor, opts: { readonly axis?: number } = {}): Tensor {
  const u = uniform(key, logits.shape, { minval: 2 ** -24, maxval: 1 });
  const gumbel = u.log().neg().log().neg();
  return argmax(logits.add(gumbel), { axis: opts.axis ?? -1 });
}
