import fc from "fast-check";
import { sha256Hex } from "../../nn/sha256.ts";

function assert(ok: boolean, msg: string): void {
  if (!ok) throw new Error(msg);
}

async function subtle(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

const text = (s: string) => new TextEncoder().encode(s);

Deno.test("sha256 gives the FIPS 180-4 and NIST example digests", () => {
  const vectors: [Uint8Array, string][] = [
    [text(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"],
    [text("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"],
    [
      text("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
    ],
    [
      text(
        "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
      ),
      "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1",
    ],
    [new Uint8Array(1_000_000).fill(0x61), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"],
  ];
  for (const [bytes, want] of vectors) {
    const got = sha256Hex(bytes);
    assert(got === want, `${bytes.length} bytes: got ${got}, expected ${want}`);
  }
});

Deno.test("sha256 matches crypto.subtle at every length around the block and padding boundaries", async () => {
  for (let n = 0; n <= 200; n++) {
    const bytes = Uint8Array.from({ length: n }, (_, i) => (i * 151 + n * 7) & 255);
    const [got, want] = [sha256Hex(bytes), await subtle(bytes)];
    assert(got === want, `${n} bytes: got ${got}, expected ${want}`);
  }
});

Deno.test("sha256 matches crypto.subtle on random bytes, and hashes only the view it is given", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.uint8Array({ maxLength: 3000 }),
      fc.nat({ max: 16 }),
      fc.nat({ max: 16 }),
      async (bytes, before, after) => {
        const padded = new Uint8Array(before + bytes.length + after).fill(0xa5);
        padded.set(bytes, before);
        const view = padded.subarray(before, before + bytes.length);
        const [got, want] = [sha256Hex(view), await subtle(bytes.slice())];
        assert(got === want, `${bytes.length} bytes at offset ${before}: got ${got}, expected ${want}`);
      },
    ),
    { numRuns: 200 },
  );
});
