// Test support: the raw parts of safetensors bytes (the JSON header and the data section), to read
// headers and to make edited or hand-made files, independently of the library's reader.

/** The header as parsed JSON, its byte length (the 8-byte prefix's value), and the data section. */
export function splitSafetensors<H = Record<string, unknown>>(
  bytes: Uint8Array,
): { header: H; headerBytes: number; data: Uint8Array } {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))) as H;
  return { header, headerBytes: n, data: bytes.subarray(8 + n) };
}

/** Safetensors bytes from a header (an object to serialize, or raw header text or bytes) and a data section. */
export function joinSafetensors(header: unknown, data: Uint8Array = new Uint8Array(0)): Uint8Array<ArrayBuffer> {
  const h = header instanceof Uint8Array
    ? header
    : new TextEncoder().encode(typeof header === "string" ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}
