// Fuzzing the safetensors reader: mutated, truncated or re-written checkpoints either decode to
// exactly what was saved or fail with an Error that names the problem; never a TypeError or a hang.

import fc from "fast-check";
import { type Checkpoint, type Tensor, tensor, treeLeaves, treePaths, zeros } from "../../mod.ts";
import { decodeSafetensors, encodeSafetensors } from "../../nn/checkpoint.ts";
import { joinSafetensors, splitSafetensors } from "../safetensors_bytes.ts";

function assert(ok: boolean, msg: string): asserts ok {
  if (!ok) throw new Error(msg);
}

const original = {
  embed: tensor([[0.5, -1.25, 3], [1e-30, -0, 65504]]),
  blocks: [
    { norm: tensor([1, 1, 1]), scale: tensor(2.5) },
    { ids: tensor([7, -2147483648, 2147483647], { dtype: "i32" }), mask: tensor([[true, false], [false, true]]) },
  ],
  empty: zeros([0, 3]),
};
const METADATA = {
  "jetfold.config": JSON.stringify({ vocab: 3, width: 2, heads: 1, blocks: [{ attn: "mha", ffn: "swiglu" }] }),
  "jetfold.step": "40",
  note: "ünï 🚀",
};
const BYTES = await encodeSafetensors(original, { metadata: METADATA });
const HEADER_END = 8 + splitSafetensors(BYTES).headerBytes;

/** A tensor's exact bits, so that -0 and the like compare exactly. */
async function bits(t: Tensor): Promise<string> {
  const d = await t.data();
  return `${t.dtype} [${t.shape}] ${new Uint8Array(d.buffer, d.byteOffset, d.byteLength).join(",")}`;
}

async function leafBits(tree: unknown): Promise<Map<string, string>> {
  const paths = treePaths(tree), leaves = treeLeaves(tree);
  return new Map(await Promise.all(paths.map(async (p, i) => [p, await bits(leaves[i])] as [string, string])));
}
const ORIGINAL_BITS = await leafBits(original);

const sorted = (m: Readonly<Record<string, string>>) => JSON.stringify(Object.entries(m).sort());

async function assertOriginal(ck: Checkpoint, what: string): Promise<void> {
  const got = await leafBits(ck.tree);
  assert(got.size === ORIGINAL_BITS.size, `${what}: decoded ${got.size} tensors, saved ${ORIGINAL_BITS.size}`);
  for (const [path, b] of ORIGINAL_BITS) assert(got.get(path) === b, `${what}: tensor "${path}" decoded differently`);
  assert(sorted(ck.metadata) === sorted(METADATA), `${what}: metadata decoded as ${JSON.stringify(ck.metadata)}`);
}

/** Decodes, requiring any failure to be a plain Error whose message says where and what. */
function attempt(bytes: Uint8Array, what: string, opts = {}): Checkpoint | string {
  try {
    return decodeSafetensors(bytes, opts);
  } catch (e) {
    const plain = e instanceof Error && Object.getPrototypeOf(e) === Error.prototype;
    assert(plain, `${what}: threw ${e instanceof Error ? e.constructor.name : typeof e}: ${e}`);
    const msg = (e as Error).message;
    const named = msg.startsWith("decodeSafetensors: ") && msg.length > 30 && !msg.includes("[object Object]");
    assert(named, `${what}: unhelpful message ${JSON.stringify(msg)}`);
    return msg;
  }
}

/** Either exactly the original, with and without a template, or a named error. */
async function originalOrError(bytes: Uint8Array, what: string): Promise<void> {
  for (const opts of [{}, { like: original }]) {
    const out = attempt(bytes, what, opts);
    if (typeof out !== "string") await assertOriginal(out, what);
  }
}

Deno.test("the fuzzed checkpoint decodes to exactly what was saved", async () => {
  await originalOrError(BYTES, "unchanged");
  assert(typeof attempt(BYTES, "unchanged") !== "string", "the unchanged checkpoint did not decode");
});

Deno.test("every single-bit flip anywhere in a checkpoint is an error; in the data it names the tensor", () => {
  const owner = (at: number) => {
    const header = JSON.parse(new TextDecoder().decode(BYTES.subarray(8, HEADER_END)));
    const rel = at - HEADER_END;
    return Object.entries(header).find(([name, info]) => {
      const [begin, end] = name === "__metadata__" ? [0, 0] : (info as { data_offsets: number[] }).data_offsets;
      return rel >= begin && rel < end;
    })?.[0];
  };
  for (let at = 0; at < BYTES.length; at++) {
    for (let bit = 0; bit < 8; bit++) {
      const bytes = BYTES.slice();
      bytes[at] ^= 1 << bit;
      const what = `bit ${bit} of byte ${at}`;
      const out = attempt(bytes, what);
      assert(typeof out === "string", `${what}: decoded without an error`);
      if (at >= HEADER_END) assert(out.includes(`tensor "${owner(at)}" is corrupt`), `${what}: ${out}`);
    }
  }
});

Deno.test("every truncation of a checkpoint, and any bytes appended, is an error that says so", () => {
  for (let n = 0; n < BYTES.length; n++) {
    const out = attempt(BYTES.subarray(0, n), `the first ${n} bytes`);
    assert(typeof out === "string" && out.includes("truncated"), `the first ${n} bytes: ${out}`);
  }
  for (const extra of [1, 8, 100]) {
    const longer = new Uint8Array(BYTES.length + extra);
    longer.set(BYTES);
    const out = attempt(longer, `${extra} bytes appended`);
    assert(typeof out === "string" && out.includes("cover only"), `${extra} bytes appended: ${out}`);
  }
});

const arbEdits = fc.array(fc.record({ at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }), {
  minLength: 1,
  maxLength: 8,
});

Deno.test("random byte changes decode to exactly what was saved or fail by name", async () => {
  await fc.assert(
    fc.asyncProperty(arbEdits, fc.boolean(), async (edits, inHeader) => {
      const bytes = BYTES.slice();
      // Half the runs aim at the header, where most of the parsing is.
      const span = inHeader ? HEADER_END : BYTES.length;
      for (const { at, value } of edits) bytes[at % span] = value;
      await originalOrError(bytes, `edits ${JSON.stringify(edits)}`);
    }),
    { numRuns: 300 },
  );
});

// Structural edits of the header's JSON, applied to the parsed header and written back with a
// correct length, so that they reach the checks past JSON.parse.
type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Edit = { pick: number; kind: "replace" | "delete" | "add" | "rename" | "bump"; value: Json; key: string };

function nodes(v: Json, path: (string | number)[] = [], out: (string | number)[][] = []): (string | number)[][] {
  out.push(path);
  if (Array.isArray(v)) v.forEach((x, i) => nodes(x, [...path, i], out));
  else if (typeof v === "object" && v !== null) { for (const [k, x] of Object.entries(v)) nodes(x, [...path, k], out); }
  return out;
}

function applyEdit(root: Json, given: Edit): Json {
  const edit = { ...given, value: structuredClone(given.value) }; // constants must not be shared, or cycles form
  const all = nodes(root), path = all[edit.pick % all.length];
  if (path.length === 0) return edit.kind === "replace" ? edit.value : root;
  const parent = path.slice(0, -1).reduce((node: Json, k) => (node as Record<string | number, Json>)[k], root) as
    | Json[]
    | Record<string, Json>;
  const last = path[path.length - 1];
  const at = parent as Record<string | number, Json>;
  const old = at[last];
  if (edit.kind === "replace") at[last] = edit.value;
  else if (edit.kind === "bump" && typeof old === "number") at[last] = old + (edit.pick % 2 === 0 ? 1 : -1);
  else if (edit.kind === "bump" && typeof old === "string") at[last] = old + edit.key;
  else if (Array.isArray(parent)) {
    if (edit.kind === "delete") parent.splice(last as number, 1);
    else parent.splice(last as number, 0, edit.value);
  } else if (edit.kind === "delete") delete at[last];
  else if (edit.kind === "add") at[edit.key] = edit.value;
  else if (edit.kind === "rename") (delete at[last], at[edit.key] = old);
  return root;
}

// The metadata strings that hold JSON are edited inside too, as a hand-edited checkpoint would be.
function editHeader(header: Json, edit: Edit, inside: string | null): Json {
  const meta = (header as Record<string, Json> | null)?.__metadata__ as Record<string, Json> | undefined;
  if (inside === null || typeof meta?.[inside] !== "string") return applyEdit(header, edit);
  meta[inside] = JSON.stringify(applyEdit(JSON.parse(meta[inside] as string), edit));
  return header;
}

const arbEdit: fc.Arbitrary<Edit> = fc.record({
  pick: fc.nat(),
  kind: fc.constantFrom("replace", "delete", "add", "rename", "bump"),
  value: fc.oneof(
    fc.jsonValue({ maxDepth: 2 }) as fc.Arbitrary<Json>,
    fc.constantFrom<Json>(0, -1, 1e300, 2 ** 53, "F32", "I32", "BOOL", [0, 0], [1], [0, 3], "", "0".repeat(64)),
  ),
  key: fc.constantFrom(
    "",
    "__proto__",
    "__metadata__",
    "embed",
    "dtype",
    "shape",
    "data_offsets",
    "jetfold.sha256",
    "x",
  ),
});
const arbInside = fc.constantFrom(null, null, "jetfold.sha256", "jetfold.config");
const DATA = BYTES.subarray(HEADER_END);
const HEADER = () => JSON.parse(new TextDecoder().decode(BYTES.subarray(8, HEADER_END)));

Deno.test("edits of the header's JSON decode to exactly what was saved or fail by name", async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(arbEdit, { minLength: 1, maxLength: 3 }), arbInside, async (edits, inside) => {
      const header = edits.reduce((h: Json, e) => editHeader(h, e, inside), HEADER());
      const what = `edits ${JSON.stringify(edits)} in ${inside ?? "the header"}`;
      // An edit that removes both checksums (or all metadata) leaves a file like another tool's,
      // which loads unverified by design; anything short of that must be caught.
      const meta = (header as Record<string, Json> | null)?.__metadata__ as Record<string, Json> | undefined;
      const sealed = typeof meta === "object" && meta !== null &&
        (Object.hasOwn(meta, "jetfold.sha256") || Object.hasOwn(meta, "jetfold.sha256.header"));
      if (sealed) await originalOrError(joinSafetensors(header, DATA), what);
      else attempt(joinSafetensors(header, DATA), what);
    }),
    { numRuns: 300 },
  );
});

Deno.test("without checksums, as other tools write them, edited checkpoints still fail only by name", async () => {
  const bare = HEADER();
  delete bare.__metadata__["jetfold.sha256"], delete bare.__metadata__["jetfold.sha256.header"];
  await fc.assert(
    fc.property(fc.array(arbEdit, { minLength: 1, maxLength: 3 }), arbEdits, (edits, bytes) => {
      const header = edits.reduce((h: Json, e) => applyEdit(h, e), structuredClone(bare));
      const what = `edits ${JSON.stringify(edits)}`;
      const file = joinSafetensors(header, DATA);
      attempt(file, what);
      attempt(file, what, { like: original });
      for (const { at, value } of bytes) file[at % file.length] = value;
      attempt(file, `${what} and bytes ${JSON.stringify(bytes)}`, { allowNonFinite: true });
    }),
    { numRuns: 300 },
  );
});
