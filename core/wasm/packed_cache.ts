// Packed copies of long-lived matmul B operands (weights), by their arrays, which are never written
// once they hold a tensor's value: decoding multiplies by every weight once per token, and packing
// them again each time cost more than the products. A copy is kept the second time an array is
// packed the same way (a training step's weights are new arrays every step, and copying them would
// be wasted), while the copies' bytes stay within a budget; a collected array's bytes are freed.

interface Entry {
  readonly key: string;
  readonly panels: Float32Array | null;
  readonly held: { bytes: number };
}

/** Kept packed panels of B operands, at most `budget` bytes of them. */
export class PackedCache {
  readonly #budget: number;
  readonly #entries = new WeakMap<object, Entry>();
  #bytes = 0;
  readonly #collected = new FinalizationRegistry<{ bytes: number }>((held) => this.#bytes -= held.bytes);

  constructor(budget: number) {
    this.#budget = budget;
  }

  /** Bytes of packed panels kept now. */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Fills `dst` with the first `len` floats of `src` packed as `key` says: from the kept copy, or by
   * `pack`, keeping a copy when `src` was packed the same way before and the budget allows.
   */
  fill(dst: Float32Array, src: object, key: string, len: number, pack: () => void): void {
    const hit = this.#entries.get(src);
    if (hit?.key === key && hit.panels !== null) return void dst.set(hit.panels);
    pack();
    const held = hit?.held ?? { bytes: 0 };
    if (hit === undefined) this.#collected.register(src, held);
    this.#bytes -= held.bytes; // a copy packed another way is dropped
    const keep = hit?.key === key && this.#bytes + 4 * len <= this.#budget;
    held.bytes = keep ? 4 * len : 0;
    this.#bytes += held.bytes;
    this.#entries.set(src, { key, panels: keep ? dst.slice(0, len) : null, held });
  }
}
