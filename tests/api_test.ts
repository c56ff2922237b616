// The public API: mod.ts exports what README's "API in brief" names and no internals, and every exported value
// has an @example that asserts (those examples run as doc tests in `deno task test`).

import assert from "node:assert/strict";
import * as jf from "../mod.ts";

const ROOT = new URL("../", import.meta.url);

// Helpers that library modules export to each other (and did once leak through mod.ts).
const INTERNALS = [
  "checkNumber",
  "checkKnown",
  "checkBlock",
  "checkConfig",
  "headDim",
  "rebuild",
  "slotOf",
  "stableKey",
  "mixerInput",
  "ffnResidual",
  "logitsOf",
  "generatorHidden",
  "attentionMask",
  "sampleToken",
  "CONFIG_DEFAULTS",
  "MIXERS",
  "DELTA_RULE_CHUNK",
  "FUSED_SCAN_LIMIT",
  "unitLowerInverse",
  "apply",
  "scalarLike",
  "randomBits",
  "checkDType",
];

// Values whose examples live in files another change is rewriting (the mixer API); each is removed from here
// once its example asserts. The test fails for a name listed here that no longer needs to be.
const PENDING = new Set([
  "attention",
  "dense",
  "rope",
  "causalConv",
  "initFfn",
  "applyFfn",
  "initBlock",
  "initModel",
  "forward",
  "lossFn",
  "prefill",
  "decodeStep",
  "linearAttention",
  "initDynamicConv",
  "dynamicConv",
  "jetBlock",
  "initSupernet",
  "extractSubnet",
  "mergeSubnet",
  "forwardPath",
  "samplePath",
]);

async function apiSection(): Promise<string> {
  const readme = await Deno.readTextFile(new URL("README.md", ROOT));
  const start = readme.indexOf("## API in brief");
  assert.ok(start >= 0, 'README.md has no "## API in brief" section');
  return readme.slice(start, readme.indexOf("\n## ", start + 1));
}

interface DocNode {
  readonly name: string;
  readonly declarations: readonly {
    readonly kind: string;
    readonly jsDoc?: { readonly tags?: readonly { readonly kind: string; readonly doc?: string }[] };
    readonly def?: { readonly elements?: readonly DocNode[] };
  }[];
}

// Every exported value (ops.* included) with the text of its @example blocks, from `deno doc --json mod.ts`.
async function valueExamples(): Promise<Map<string, string>> {
  const out = await new Deno.Command(Deno.execPath(), { args: ["doc", "--json", "mod.ts"], cwd: ROOT }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const doc = JSON.parse(new TextDecoder().decode(out.stdout));
  const symbols: DocNode[] = doc.nodes[new URL("mod.ts", ROOT).href].symbols;
  const examples = new Map<string, string>();
  const visit = (s: DocNode, prefix: string) => {
    for (const d of s.declarations) {
      if (d.kind === "namespace") d.def?.elements?.forEach((e) => visit(e, `${s.name}.`));
      else if (d.kind !== "interface" && d.kind !== "typeAlias") {
        const text = (d.jsDoc?.tags ?? []).filter((t) => t.kind === "example").map((t) => t.doc ?? "").join("\n");
        examples.set(prefix + s.name, text);
      }
    }
  };
  symbols.forEach((s) => visit(s, ""));
  return examples;
}

Deno.test("every value mod.ts exports is named in README's API in brief", async () => {
  const named = new Set([...(await apiSection()).matchAll(/`([A-Za-z_$][\w$]*)/g)].map((m) => m[1]));
  const missing = [...Object.keys(jf), ...Object.keys(jf.ops)].filter((name) => !named.has(name));
  assert.deepEqual(missing, [], `exported from mod.ts but not in README's API in brief: ${missing.join(", ")}`);
});

Deno.test("mod.ts exports none of the library's internal helpers", () => {
  const leaked = INTERNALS.filter((name) => name in jf || name in jf.ops);
  assert.deepEqual(leaked, [], `internal helpers exported from mod.ts: ${leaked.join(", ")}`);
});

Deno.test("every exported value has an @example code block that asserts its result", async () => {
  const examples = await valueExamples();
  assert.ok(examples.size > 100, `expected the values of mod.ts and ops.*, found ${examples.size}`);
  const asserts = (text: string) => /```ts\n/.test(text) && /\bassert\b/.test(text);
  const missing = [...examples].filter(([name, text]) => !asserts(text) && !PENDING.has(name)).map(([n]) => n);
  assert.deepEqual(missing, [], `no asserting @example: ${missing.join(", ")}`);
  const done = [...PENDING].filter((name) => !examples.has(name) || asserts(examples.get(name)!));
  assert.deepEqual(done, [], `remove from PENDING (its example asserts now, or it is gone): ${done.join(", ")}`);
});
