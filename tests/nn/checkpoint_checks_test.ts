import { tensor, treeLeaves, zeros } from "../../mod.ts";
import { decodeSafetensors, encodeSafetensors, loadSafetensors, saveSafetensors } from "../../nn/checkpoint.ts";
import { assertThrowsMsg } from "../helpers.ts";
import { joinSafetensors, splitSafetensors } from "../safetensors_bytes.ts";

function assert(ok: boolean, msg: string): void {
  if (!ok) throw new Error(msg);
}

type Header = Record<string, unknown> & { __metadata__: Record<string, string> };

/** `bytes` with its header changed by `edit` (the data section stays as it is). */
function edited(bytes: Uint8Array, edit: (h: Header) => void): Uint8Array {
  const { header, data } = splitSafetensors<Header>(bytes);
  edit(header);
  return joinSafetensors(header, data);
}

async function sha256(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  return Array.from(
    new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
}

const model = () => ({
  embed: tensor([[0.5, -1], [2, 3]]),
  layers: [{ scale: tensor([1, 2, 3]) }, { ids: tensor([4, 5], { dtype: "i32" }), on: tensor([true, false]) }],
});
const META = { "jetfold.config": '{"width":2}', step: "12" };

Deno.test("saving records the SHA-256 of every tensor's bytes and of the rest of the header", async () => {
  const bytes = await encodeSafetensors(model(), { metadata: META });
  const { header, data } = splitSafetensors<Header>(bytes);
  const meta = header.__metadata__;
  const sums = JSON.parse(meta["jetfold.sha256"]);
  const tensors = Object.entries(header).filter(([k]) => k !== "__metadata__") as [
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] },
  ][];
  assert(Object.keys(sums).sort().join() === tensors.map(([k]) => k).sort().join(), `names ${Object.keys(sums)}`);
  for (const [name, info] of tensors) {
    const want = await sha256(data.slice(...info.data_offsets));
    assert(sums[name] === want, `tensor "${name}": recorded ${sums[name]}, its bytes hash to ${want}`);
  }
  // The header checksum covers the other entries and each tensor's name, dtype and shape, sorted by name.
  const byName = (a: [string, ...unknown[]], b: [string, ...unknown[]]) => (a[0] < b[0] ? -1 : 1);
  const canonical = JSON.stringify([
    Object.entries(META).sort(byName),
    tensors.map(([name, info]) => [name, info.dtype, info.shape] as [string, string, number[]]).sort(byName),
  ]);
  const want = await sha256(new TextEncoder().encode(canonical));
  assert(meta["jetfold.sha256.header"] === want, `header checksum ${meta["jetfold.sha256.header"]}, expected ${want}`);
  // Loading verifies them and returns only the caller's metadata.
  const { metadata } = decodeSafetensors(bytes);
  assert(JSON.stringify(metadata) === JSON.stringify(META), `metadata ${JSON.stringify(metadata)}`);
});

Deno.test("the loaded metadata can be saved again, and checksum keys cannot be set by callers", async () => {
  const { tree, metadata } = decodeSafetensors(await encodeSafetensors(model(), { metadata: META }));
  const again = decodeSafetensors(await encodeSafetensors(tree, { metadata }));
  assert(JSON.stringify(again.metadata) === JSON.stringify(META), "metadata changed on a second save");
  for (const key of ["jetfold.sha256", "jetfold.sha256.header", "jetfold.sha256.v2"]) {
    await assertThrowsMsg(
      () => encodeSafetensors(model(), { metadata: { ...META, [key]: "x" } }),
      `encodeSafetensors: metadata "${key}" is reserved for the checksums`,
    );
  }
});

Deno.test("a changed byte of a tensor's data is an error naming that tensor", async () => {
  const bytes = await encodeSafetensors(model(), { metadata: META });
  const { header, data } = splitSafetensors<Header>(bytes);
  const start = bytes.length - data.length;
  for (const [name, info] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    const [begin, end] = (info as { data_offsets: [number, number] }).data_offsets;
    for (let at = begin; at < end; at++) {
      const bad = bytes.slice();
      bad[start + at] ^= 0x10;
      await assertThrowsMsg(() => decodeSafetensors(bad), `tensor "${name}" is corrupt`, "SHA-256");
    }
  }
});

Deno.test("a changed header is an error even where the layout stays valid", async () => {
  const bytes = await encodeSafetensors(model(), { metadata: META });
  const header = "the header does not match its checksum";
  const cases: [(h: Header) => void, ...string[]][] = [
    [(h) => (h.__metadata__.step = "13"), header, "the metadata"],
    [(h) => (h.__metadata__.extra = "x"), header],
    [(h) => delete (h.__metadata__ as Record<string, string>).step, header],
    [(h) => ((h.embed as { shape: number[] }).shape = [4]), header, "dtype or shape"],
    [(h) => ((h["layers.1.ids"] as { dtype: string }).dtype = "F32"), header],
    [(h) => (h["layers.0.x"] = h["layers.0.scale"]), "overlap"],
    [
      (h) => ((h["layers.0.renamed"] = h["layers.0.scale"]), delete h["layers.0.scale"]),
      `tensor "layers.0.renamed" has no checksum in "jetfold.sha256"`,
    ],
    [
      (h) => (h.__metadata__["jetfold.sha256"] = h.__metadata__["jetfold.sha256"].replace('"embed"', '"embeds"')),
      `tensor "embed" has no checksum`,
    ],
    [(h) => delete (h.__metadata__ as Record<string, string>)["jetfold.sha256.header"], `has "jetfold.sha256" but not`],
    [(h) => delete (h.__metadata__ as Record<string, string>)["jetfold.sha256"], `has "jetfold.sha256.header" but not`],
    [(h) => (h.__metadata__["jetfold.sha256"] = "[1]"), `"jetfold.sha256" must be a JSON object`, "an array"],
    [(h) => (h.__metadata__["jetfold.sha256"] = "{"), "must be a JSON object of SHA-256 hex digests", "not JSON"],
    [(h) => (h.__metadata__["jetfold.sha256"] = '{"embed":"abc"}'), `tensor "embed" has "abc"`],
  ];
  for (const [edit, ...fragments] of cases) {
    await assertThrowsMsg(() => decodeSafetensors(edited(bytes, edit)), "decodeSafetensors: ", ...fragments);
  }
  // Both key names damaged would look like a file without checksums; a near miss is caught.
  const renamed = edited(bytes, (h) => {
    const m = h.__metadata__ as Record<string, string>;
    m[" etfold.sha256"] = m["jetfold.sha256"], m["jetfold.sha256.heade"] = m["jetfold.sha256.header"];
    delete m["jetfold.sha256"], delete m["jetfold.sha256.header"];
  });
  await assertThrowsMsg(() => decodeSafetensors(renamed), `key " etfold.sha256" looks like a damaged checksum key`);
  // Without both checksums the file is like one from another tool: it loads, unverified.
  const bare = edited(bytes, (h) => {
    const m = h.__metadata__ as Record<string, string>;
    delete m["jetfold.sha256"], delete m["jetfold.sha256.header"];
    m.step = "13";
    m["jetfold.sha1"] = "another tool's key, not a near miss";
  });
  assert(decodeSafetensors(bare).metadata.step === "13", "a file without checksums did not load");
});

Deno.test("non-finite f32 values are refused with the tensor's name and first bad index, unless allowed", async () => {
  for (const [bad, text] of [[NaN, "NaN"], [Infinity, "Infinity"], [-Infinity, "-Infinity"]] as const) {
    const tree = { ok: tensor([1, 2]), w: tensor([[1, 2, 3], [4, bad, bad]]) };
    const bytes = await encodeSafetensors(tree); // saving a diverged model is allowed (e.g. to inspect it)
    const like = { ok: zeros([2]), w: zeros([2, 3]) };
    const before = tensor(0).id;
    await assertThrowsMsg(
      () => decodeSafetensors(bytes),
      `decodeSafetensors: tensor "w" holds ${text} at index [1, 1]`,
      "allowNonFinite: true",
    );
    await assertThrowsMsg(() => decodeSafetensors(bytes, { like }), "[1, 1]");
    assert(tensor(0).id === before + 1, "a refused load created tensors");
    const { tree: back } = decodeSafetensors(bytes, { allowNonFinite: true });
    const values = await treeLeaves(back)[1].data();
    assert(Object.is(values[4], bad) && Object.is(values[5], bad), `loaded ${values}`);
  }
  const scalar = await encodeSafetensors({ s: tensor(NaN) });
  await assertThrowsMsg(() => decodeSafetensors(scalar), `tensor "s" holds NaN at index []`);
  // Integers and booleans cannot be non-finite; extremes load.
  const ints = await encodeSafetensors({ i: tensor([2147483647, -2147483648], { dtype: "i32" }), b: tensor([true]) });
  decodeSafetensors(ints);
});

Deno.test("files: loading refuses a corrupt or non-finite checkpoint, naming the file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jetfold_checks_" });
  try {
    const path = `${dir}/model.safetensors`;
    await saveSafetensors(path, model(), { metadata: META });
    const bytes = await Deno.readFile(path);
    bytes[bytes.length - 1] ^= 1;
    await Deno.writeFile(path, bytes);
    await assertThrowsMsg(() => loadSafetensors(path), `loadSafetensors: ${path}: tensor "`, "is corrupt");
    await saveSafetensors(path, { w: tensor([0, Infinity]) });
    await assertThrowsMsg(() => loadSafetensors(path), `${path}: tensor "w" holds Infinity at index [1]`);
    const { tree } = await loadSafetensors(path, { allowNonFinite: true, like: { w: zeros([2]) } });
    assert((await tree.w.data())[1] === Infinity, "allowNonFinite did not load the value");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
