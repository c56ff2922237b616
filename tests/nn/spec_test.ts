import fc from "fast-check";
import { block, checkConfig, modelConfig } from "../../nn/mod.ts";
import { assertThrowsMsg } from "../helpers.ts";

function assert(ok: boolean, msg: string): void {
  if (!ok) throw new Error(msg);
}

const base = { vocab: 64, width: 16, heads: 4, blocks: [block("mha"), block("swa", { window: 8 })] };
const saved = JSON.stringify(modelConfig(base)); // what a checkpoint's jetfold.config holds

/** modelConfig of the saved config's JSON with some fields replaced, as a checkpoint would hold it. */
const parsed = (fields: Record<string, unknown>) =>
  modelConfig(JSON.parse(JSON.stringify({ ...JSON.parse(saved), ...fields })));

Deno.test("a config survives JSON, as a checkpoint stores it, unchanged", () => {
  const back = modelConfig(JSON.parse(saved));
  assert(JSON.stringify(back) === saved, `${JSON.stringify(back)} != ${saved}`);
  assert(Object.isFrozen(back) && Object.isFrozen(back.blocks[1]), "not frozen");
});

Deno.test("modelConfig names a field of the wrong type and what it allows", async () => {
  const cases: [Record<string, unknown>, ...string[]][] = [
    [{ normEps: "0.5" }, `normEps must be a positive number, got the string "0.5"`],
    [{ ropeTheta: "10000" }, `ropeTheta must be a number greater than 1, got the string "10000"`],
    [{ normEps: null }, "normEps must be a positive number, got null"],
    [{ width: "16" }, `width must be a positive integer, got the string "16"`],
    [{ vocab: 1e300 }, "vocab must be a positive integer, got 1e+300"],
    [{ heads: 2.5 }, "heads must be a positive integer, got 2.5"],
    [{ kvHeads: [2] }, "kvHeads must be a positive integer, got an array of 1"],
    [{ convWidth: true }, "convWidth must be a positive integer, got true"],
    [{ ffnHidden: { n: 3 } }, "ffnHidden must be a positive integer, got an object"],
    [{ blocks: "mha,mha" }, `blocks must be a non-empty array of block specs, got the string "mha,mha"`],
    [{ blocks: { 0: { attn: "mha", ffn: "swiglu" } } }, "blocks must be a non-empty array", "got an object"],
    [{ blocks: [] }, "blocks must be a non-empty array of block specs, got an array of 0"],
    [{ blocks: ["mha"] }, `blocks[0]: expected a block spec object, got the string "mha"`],
    [
      { blocks: [{ attn: "mha", ffn: "swiglu", conv: "yes" }] },
      `blocks[0]: conv must be a boolean, got the string "yes"`,
    ],
    [
      { blocks: [{ attn: "swa", ffn: "swiglu", window: "8" }] },
      `window must be a positive integer for swa, got the string "8"`,
    ],
    [{ blocks: [{ attn: "mha", ffn: "swiglu", window: 0 }] }, "blocks[0]: window must be a positive integer, got 0"],
    [{ blocks: [{ attn: "mha", ffn: "relu" }] }, "blocks[0]: ffn must be one of swiglu, gated"],
    [
      { blocks: [block("mha"), { attn: "mha", ffn: "swiglu", kind: "x" }] },
      `blocks[1]: unknown field "kind"`,
      "attn, ffn, conv, window",
    ],
    [{ dModel: 64 }, `unknown field "dModel"; the fields of a model config are vocab, width, heads, kvHeads`],
  ];
  for (const [fields, ...fragments] of cases) {
    await assertThrowsMsg(() => parsed(fields), "modelConfig: ", ...fragments);
  }
  await assertThrowsMsg(() => modelConfig(JSON.parse("null")), "modelConfig: expected a model config object, got null");
  await assertThrowsMsg(() => modelConfig(JSON.parse("[1]")), "expected a model config object, got an array of 1");
  await assertThrowsMsg(() => modelConfig(JSON.parse('{"__proto__": 1}')), `unknown field "__proto__"`);
});

Deno.test("checkConfig holds a spread config to the same rules", async () => {
  const cfg = modelConfig(base);
  checkConfig(cfg);
  await assertThrowsMsg(() => checkConfig({ ...cfg, extra: 1 }), `unknown field "extra"`);
  await assertThrowsMsg(() => checkConfig({ ...cfg, normEps: "1e-6" }), "normEps must be a positive number");
  await assertThrowsMsg(
    () => checkConfig({ ...cfg, normEps: Infinity }),
    "normEps must be a positive number, got Infinity",
  );
});

Deno.test("any JSON in place of a config field is accepted or refused by name, never a TypeError", async () => {
  const fields = ["vocab", "width", "heads", "kvHeads", "ffnHidden", "blocks", "convWidth", "normEps", "ropeTheta"];
  await fc.assert(
    fc.property(fc.constantFrom(...fields, "other"), fc.jsonValue(), (field, value) => {
      try {
        parsed({ [field]: value });
      } catch (e) {
        const ok = e instanceof Error && e.constructor === Error && e.message.startsWith("modelConfig: ") &&
          e.message.includes(field === "other" ? `"other"` : field);
        assert(ok, `${field} = ${JSON.stringify(value)}: ${e}`);
      }
    }),
    { numRuns: 300 },
  );
});

Deno.test("a width whose toString is not a function is refused by name (it was multiplied first)", () => {
  try {
    parsed({ width: { toString: 0 } });
  } catch (e) {
    assert(e instanceof Error && e.constructor === Error && e.message.includes("width"), `${e}`);
    return;
  }
  throw new Error("accepted");
});
