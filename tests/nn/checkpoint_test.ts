// Tests of safetensors checkpoints: bit-exact round trips, templates, corrupt input, atomic writes, Python interop.

import fc from "fast-check";
import { type DType, type Tensor, tensor, treeLeaves, treePaths, zeros } from "../../mod.ts";
import { fromHost } from "../../core/creation.ts";
import { decodeSafetensors, encodeSafetensors, loadSafetensors, saveSafetensors } from "../../nn/checkpoint.ts";
import { assertThrowsMsg, forEachBackend } from "../helpers.ts";
import { joinSafetensors, splitSafetensors } from "../safetensors_bytes.ts";

const FIXTURE = decodeURIComponent(new URL("./fixtures/python_reference.safetensors", import.meta.url).pathname);

function assert(ok: boolean, msg: string): void {
  if (!ok) throw new Error(msg);
}

/** The raw bytes of a tensor, so that NaN payloads and -0 compare exactly. */
async function bits(t: Tensor): Promise<string> {
  const d = await t.data();
  return `${t.dtype} [${t.shape}] ${new Uint8Array(d.buffer, d.byteOffset, d.byteLength).join(",")}`;
}

async function assertSameLeaves(actual: unknown, expected: unknown): Promise<void> {
  const pa = treePaths(actual), pe = treePaths(expected);
  assert(pa.join("|") === pe.join("|"), `names ${JSON.stringify(pa)} != ${JSON.stringify(pe)}`);
  const a = treeLeaves(actual), e = treeLeaves(expected);
  for (let i = 0; i < a.length; i++) {
    const [x, y] = [await bits(a[i]), await bits(e[i])];
    assert(x === y, `tensor "${pa[i]}": got ${x}, expected ${y}`);
  }
}

/** Reads the JSON header of safetensors bytes (and checks the length prefix is 8-aligned). */
function headerOf(bytes: Uint8Array): Record<string, { dtype: string; data_offsets: [number, number] }> {
  const { header, headerBytes } = splitSafetensors<ReturnType<typeof headerOf>>(bytes);
  assert(headerBytes % 8 === 0, `header length ${headerBytes} is not a multiple of 8`);
  return header;
}

// Leaves of every dtype with random bits (so f32 covers NaN payloads, infinities, -0, subnormals).
const arbLeaf = fc.record({
  dtype: fc.constantFrom<DType>("f32", "i32", "bool"),
  shape: fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 3 }),
  words: fc.array(fc.integer({ min: 0, max: 2 ** 32 - 1 }), { minLength: 64, maxLength: 64 }),
}).map(({ dtype, shape, words }) => {
  const w = Uint32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => words[i % 64] ^ i);
  const data = dtype === "f32"
    ? new Float32Array(w.buffer)
    : dtype === "i32"
    ? new Int32Array(w.buffer)
    : Uint8Array.from(w, (x) => x & 1);
  return fromHost(data, shape, dtype);
});

// Non-empty containers and keys without dots or digits, so the names alone rebuild the structure.
const arbTree = fc.letrec<{ node: unknown }>((tie) => ({
  node: fc.oneof(
    { depthSize: "small" },
    arbLeaf,
    fc.array(tie("node"), { minLength: 1, maxLength: 3 }),
    fc.dictionary(fc.stringMatching(/^[a-z_]{1,4}$/), tie("node"), { minKeys: 1, maxKeys: 3 }),
  ),
})).node;

const arbMetadata = fc.dictionary(fc.oneof(fc.string(), fc.constant("__proto__")), fc.string({ unit: "grapheme" }), {
  maxKeys: 3,
});

Deno.test("random nested trees round trip bit for bit, with and without a template", async () => {
  await fc.assert(
    fc.asyncProperty(arbTree, arbMetadata, async (tree, metadata) => {
      const bytes = await encodeSafetensors(tree, { metadata });
      const plain = decodeSafetensors(bytes, { allowNonFinite: true }); // random bits include NaNs
      await assertSameLeaves(plain.tree, tree);
      await assertSameLeaves(decodeSafetensors(bytes, { like: tree, allowNonFinite: true }).tree, tree);
      assert(JSON.stringify(plain.metadata) === JSON.stringify(metadata), "metadata changed");
      // Every tensor starts at a multiple of its element size (the reader checked the tiling).
      for (const [name, info] of Object.entries(headerOf(bytes))) {
        const begin = info.data_offsets?.[0] ?? 0;
        assert(begin % (info.dtype === "BOOL" ? 1 : 4) === 0, `tensor "${name}" begins at byte ${begin}`);
      }
    }),
    { numRuns: 60 },
  );
});

Deno.test("the header lists the metadata, then tensors in data order, wider dtypes first, padded with spaces", async () => {
  const bytes = await encodeSafetensors([tensor([true, false, true]), tensor([1, 2]), { b: tensor(true) }]);
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  const text = new TextDecoder().decode(bytes.subarray(8, 8 + n));
  const metadata = JSON.stringify(JSON.parse(text).__metadata__); // the checksums (tested on their own)
  const expected = `{"__metadata__":${metadata},` + '"1":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},' +
    '"0":{"dtype":"BOOL","shape":[3],"data_offsets":[8,11]},"2.b":{"dtype":"BOOL","shape":[],"data_offsets":[11,12]}}';
  assert(text === expected.padEnd(Math.ceil(expected.length / 8) * 8, " "), `header ${JSON.stringify(text)}`);
  assert(bytes.length === 8 + n + 12, `${bytes.length} bytes`);
});

Deno.test("special floats, integer extremes and booleans survive exactly", async () => {
  const floats = new Float32Array(
    new Uint32Array([0x80000000, 0x7f800000, 0xff800000, 0x7fc00001, 0xffc12345, 0x7f800001, 1]).buffer,
  );
  const tree = {
    f: fromHost(floats, [7], "f32"),
    i: tensor([2147483647, -2147483648, 0, -1], { dtype: "i32" }),
    b: tensor([[true, false], [false, true]]),
    s: tensor(-0),
    z: zeros([0, 3]),
  };
  const { tree: back } = decodeSafetensors(await encodeSafetensors(tree), { allowNonFinite: true });
  await assertSameLeaves(back, tree);
});

Deno.test("a bare tensor and an empty tree round trip", async () => {
  const bare = tensor([1, 2, 3]);
  await assertSameLeaves(decodeSafetensors(await encodeSafetensors(bare)).tree, bare);
  const empty = decodeSafetensors(await encodeSafetensors({}));
  assert(JSON.stringify(empty.tree) === "{}" && JSON.stringify(empty.metadata) === "{}", "empty tree");
});

Deno.test("metadata values must be strings", async () => {
  const w = { w: tensor([1]) };
  for (const [bad, got] of [[3, "number 3"], [{ d: 1 }, "object"], [null, "null"], [["x"], "an array"]] as const) {
    const metadata = { "jetfold.config": bad } as unknown as Record<string, string>;
    await assertThrowsMsg(() => encodeSafetensors(w, { metadata }), `"jetfold.config" must be a string, got ${got}`);
  }
  const config = JSON.stringify({ dModel: 64, blocks: ["jet", "mha"], name: "ünï 🚀" });
  const { metadata } = decodeSafetensors(await encodeSafetensors(w, { metadata: { "jetfold.config": config } }));
  assert(metadata["jetfold.config"] === config, "config string changed");
});

Deno.test("loading with a template returns its structure, including nulls and empty containers", async () => {
  const like = { layers: [{ w: zeros([2, 2]), conv: null }, { w: zeros([2, 2]), conv: zeros([3]) }], extra: [] };
  const saved = { layers: [{ w: tensor([[1, 2], [3, 4]]) }, { w: tensor([[5, 6], [7, 8]]), conv: tensor([9, 9, 9]) }] };
  const { tree } = decodeSafetensors(await encodeSafetensors(saved), { like });
  assert(tree.layers[0].conv === null && Array.isArray(tree.extra) && tree.extra.length === 0, "structure lost");
  await assertSameLeaves(tree, saved);
});

Deno.test("loading with a template names every mismatch and returns nothing", async () => {
  const bytes = await encodeSafetensors({ w: zeros([3, 2]), ids: zeros([4], { dtype: "i32" }), c: zeros([1]) });
  const like = { w: zeros([2, 3]), ids: zeros([4]), b: zeros([1]) };
  const before = tensor(0).id;
  await assertThrowsMsg(
    () => decodeSafetensors(bytes, { like }),
    "does not match the template",
    `tensor "w": expected shape [2, 3] f32, found [3, 2] f32`,
    `tensor "ids": expected shape [4] f32, found [4] i32`,
    `missing tensors "b"`,
    `unexpected tensors "c"`,
  );
  assert(tensor(0).id === before + 1, "a failed load created tensors");
});

Deno.test("corrupt or truncated input fails with a message that names the problem", async () => {
  const f32 = (shape: number[], data_offsets: number[]) => ({ dtype: "F32", shape, data_offsets });
  const good = await encodeSafetensors({ w: tensor([1, 2, 3]) });
  const cases: [Uint8Array, ...string[]][] = [
    [new Uint8Array(5), "truncated: 5 bytes is shorter than the 8-byte header length"],
    [joinSafetensors("{}").subarray(0, 9), "truncated: the header length is 2 bytes but only 1 follow"],
    [good.subarray(0, good.length - 4), "truncated", `tensor "w" ends at byte 12 but the data section has 8`],
    [joinSafetensors({ w: f32([4], [0, 16]) }, new Uint8Array(8)), "truncated", `"w" ends at byte 16`],
    [joinSafetensors("{not json"), "the header is not valid UTF-8 JSON"],
    [joinSafetensors(new Uint8Array([0x7b, 0xff, 0x7d])), "not valid UTF-8 JSON"],
    [joinSafetensors("[1, 2]"), "the header must be a JSON object, got an array"],
    [joinSafetensors("42"), "must be a JSON object, got 42"],
    [
      joinSafetensors({ w: { dtype: "F16", shape: [1], data_offsets: [0, 2] } }, new Uint8Array(2)),
      `tensor "w": unsupported dtype "F16"`,
      "supported: F32, I32, BOOL",
    ],
    [
      joinSafetensors({ w: f32([2, 3], [0, 20]) }, new Uint8Array(20)),
      "shape [2, 3] of F32 needs 24 bytes but data_offsets [0, 20] hold 20",
    ],
    [joinSafetensors({ a: f32([2], [0, 8]), b: f32([2], [4, 12]) }, new Uint8Array(12)), `tensors "a" and "b" overlap`],
    [
      joinSafetensors({ a: f32([1], [0, 4]), b: f32([1], [8, 12]) }, new Uint8Array(12)),
      "bytes 4 to 8 of the data section belong to no tensor",
    ],
    [
      joinSafetensors({ a: f32([1], [0, 4]) }, new Uint8Array(12)),
      "the data section has 12 bytes but the tensors cover only 4",
    ],
    [joinSafetensors({ a: f32([-1], [0, 0]) }), "shape must be a list of non-negative integers, got [-1]"],
    [joinSafetensors({ a: f32([1], [4]) }, new Uint8Array(4)), "data_offsets must be [begin, end]"],
    [joinSafetensors({ __metadata__: { step: 3 } }), `__metadata__ "step" must be a string, got number 3`],
    [
      joinSafetensors({ a: f32([1], [0, 4]), "a.b": f32([1], [4, 8]) }, new Uint8Array(8)),
      `tensor names "a" and "a.b" collide`,
    ],
  ];
  for (const [bytes, ...fragments] of cases) await assertThrowsMsg(() => decodeSafetensors(bytes), ...fragments);
});

Deno.test("saving rejects trees whose names would be ambiguous", async () => {
  const t = tensor([1]);
  await assertThrowsMsg(() => encodeSafetensors({ "a.b": t, a: { b: t } }), `two tensors are named "a.b"`);
  await assertThrowsMsg(() => encodeSafetensors({ a: t, "a.b": t }), "collide");
  await assertThrowsMsg(() => encodeSafetensors({ __metadata__: t }), `no tensor may be named "__metadata__"`);
});

Deno.test("files: saves replace atomically, leave no temporary files, and failures keep the old file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jetfold_checkpoint_" });
  try {
    const path = `${dir}/model.safetensors`;
    await saveSafetensors(path, { w: tensor([1, 2]) }, { metadata: { step: "1" } });
    await saveSafetensors(path, { w: tensor([3, 4]) }, { metadata: { step: "2" } });
    const names = () => [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assert(names().join() === "model.safetensors", `left behind: ${names()}`);
    const { tree, metadata } = await loadSafetensors(path, { like: { w: zeros([2]) } });
    assert(metadata.step === "2" && (await tree.w.data()).join() === "3,4", "second save not visible");
    const old = await Deno.readFile(path);
    const bad = { "k": 1 } as unknown as Record<string, string>;
    await assertThrowsMsg(() => saveSafetensors(path, { w: tensor([5]) }, { metadata: bad }), "saveSafetensors");
    assert((await Deno.readFile(path)).join() === old.join(), "a failed save changed the file");
    // Renaming over a non-empty directory fails after the temporary file was written.
    await Deno.mkdir(`${dir}/busy`);
    await Deno.writeTextFile(`${dir}/busy/keep`, "x");
    await assertThrowsMsg(() => saveSafetensors(`${dir}/busy`, { w: tensor([5]) }), "could not write", `${dir}/busy`);
    assert(names().join() === "busy,model.safetensors", `left behind: ${names()}`);
    await assertThrowsMsg(
      () => loadSafetensors(`${dir}/absent.safetensors`),
      `no such file: ${dir}/absent.safetensors`,
    );
    await assertThrowsMsg(() => loadSafetensors(path, { like: { v: zeros([2]) } }), `${path}:`, `missing tensors "v"`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// Written by the Python `safetensors` package (0.8.0, the reference implementation) with
//   from safetensors.numpy import save_file
//   save_file({"embed.weight": np.array([[0.5, -0.0, np.inf], [-np.inf, 1e-45, 3.4028235e38]], np.float32),
//              "layers.0.scale": np.array(-1.25, np.float32),
//              "layers.1.ids": np.array([-2147483648, 0, 2147483647], np.int32),
//              "layers.1.mask": np.array([[True, False], [False, True]]),
//              "nan": np.array([0x7FC00001, 0xFFC00000], np.uint32).view(np.float32),
//              "empty": np.zeros((0, 4), np.float32)}, path,
//             metadata={"jetfold.config": '{"dModel":8}', "producer": "safetensors 0.8.0"})
// It lays data out by dtype and name, not in jetfold's order, and its header is padded to 8 bytes.
forEachBackend("a file written by Python's safetensors loads with the expected values", async () => {
  // It has no checksums, so it loads unverified; it holds infinities and NaNs on purpose.
  await assertThrowsMsg(() => loadSafetensors(FIXTURE), `tensor "embed.weight" holds Infinity at index [0, 2]`);
  const { tree, metadata } = await loadSafetensors(FIXTURE, { allowNonFinite: true });
  assert(metadata["jetfold.config"] === '{"dModel":8}' && metadata.producer === "safetensors 0.8.0", "metadata");
  const f32 = (words: number[], shape: number[]) =>
    fromHost(new Float32Array(Uint32Array.from(words).buffer), shape, "f32");
  const expected = {
    embed: { weight: f32([0x3f000000, 0x80000000, 0x7f800000, 0xff800000, 0x00000001, 0x7f7fffff], [2, 3]) },
    empty: zeros([0, 4]),
    layers: [
      { scale: tensor(-1.25) },
      { ids: tensor([-2147483648, 0, 2147483647], { dtype: "i32" }), mask: tensor([[true, false], [false, true]]) },
    ],
    nan: f32([0x7fc00001, 0xffc00000], [2]),
  };
  await assertSameLeaves(tree, expected);
  await assertSameLeaves((await loadSafetensors(FIXTURE, { like: expected, allowNonFinite: true })).tree, expected);
  headerOf(await Deno.readFile(FIXTURE));
});

// Node's Buffer (which NATS and other npm clients return) is a Uint8Array whose slice() is a view, not a copy.
class ViewSlicing extends Uint8Array {
  override slice(start?: number, end?: number): Uint8Array<ArrayBuffer> {
    return this.subarray(start, end);
  }
}

Deno.test("decodeSafetensors reads bytes whose slice() is a view, at any offset, into tensors of their own", async () => {
  const bytes = await encodeSafetensors({
    b: tensor([true, false]),
    w: tensor([1.5, -2, 3]),
    n: tensor([7, 8], { dtype: "i32" }),
  });
  for (const offset of [0, 1, 3]) {
    const backing = new Uint8Array(bytes.length + offset + 5).fill(0xee);
    backing.set(bytes, offset);
    const view = new ViewSlicing(backing.buffer, offset, bytes.length);
    const { tree } = decodeSafetensors<Record<string, Tensor>>(view);
    backing.fill(0); // the tensors must not share the caller's memory
    if (JSON.stringify(await tree.w.array()) !== "[1.5,-2,3]") {
      throw new Error(`offset ${offset}: w ${await tree.w.array()}`);
    }
    if (JSON.stringify(await tree.n.array()) !== "[7,8]") {
      throw new Error(`offset ${offset}: n ${await tree.n.array()}`);
    }
    if (JSON.stringify((await tree.b.array() as unknown[]).map(Number)) !== "[1,0]") {
      throw new Error(`offset ${offset}: b ${await tree.b.array()}`);
    }
  }
});
