// An independent byte-level BPE (GPT-2's algorithm, written from its description) that the tests check the library by.

/** GPT-2's printable stand-in for each byte: printable Latin-1 bytes stand for themselves, the rest map to 256+. */
export function bytesToUnicode(): string[] {
  const out: string[] = new Array(256);
  let next = 256;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    out[b] = String.fromCodePoint(printable ? b : next++);
  }
  return out;
}

/** What the reference needs of a tokenizer.json. */
export interface ReferenceBpe {
  readonly vocab: Readonly<Record<string, number>>;
  /** Merges as pairs, best first. */
  readonly merges: readonly (readonly [string, string])[];
  /** Special tokens, split out of the text before anything else. */
  readonly special: ReadonlyMap<string, number>;
  /** The pre-tokenizer's split pattern, already in JavaScript syntax. */
  readonly split: RegExp;
  /** Apply NFC first (Qwen's normalizer). */
  readonly nfc: boolean;
}

const RANKS = new WeakMap<ReferenceBpe["merges"], Map<string, number>>();

function ranksOf(bpe: ReferenceBpe): Map<string, number> {
  let rank = RANKS.get(bpe.merges);
  if (rank === undefined) RANKS.set(bpe.merges, rank = new Map(bpe.merges.map(([a, b], i) => [`${a} ${b}`, i])));
  return rank;
}

/** Encodes by the textbook algorithm: split, map bytes, merge the best-ranked adjacent pair until none is left. */
export function referenceEncode(bpe: ReferenceBpe, text: string): number[] {
  const byteChar = bytesToUnicode();
  const rank = ranksOf(bpe);
  const ids: number[] = [];
  const encodePiece = (piece: string) => {
    let parts = [...new TextEncoder().encode(piece)].map((b) => byteChar[b]);
    while (parts.length > 1) {
      let best = -1, bestRank = Infinity;
      for (let i = 0; i + 1 < parts.length; i++) {
        const r = rank.get(`${parts[i]} ${parts[i + 1]}`);
        if (r !== undefined && r < bestRank) [best, bestRank] = [i, r];
      }
      if (best < 0) break;
      parts = [...parts.slice(0, best), parts[best] + parts[best + 1], ...parts.slice(best + 2)];
    }
    for (const p of parts) {
      const id = bpe.vocab[p];
      if (id === undefined) throw new Error(`reference BPE: ${JSON.stringify(p)} is not in the vocabulary`);
      ids.push(id);
    }
  };
  const specials = [...bpe.special.keys()].sort((a, b) => b.length - a.length);
  let rest = bpe.nfc ? text.normalize("NFC") : text;
  while (rest.length > 0) {
    let at = rest.length, which = "";
    for (const s of specials) {
      const i = rest.indexOf(s);
      if (i >= 0 && i < at) [at, which] = [i, s];
    }
    for (const m of rest.slice(0, at).matchAll(bpe.split)) encodePiece(m[0]);
    if (which === "") break;
    ids.push(bpe.special.get(which)!);
    rest = rest.slice(at + which.length);
  }
  return ids;
}
