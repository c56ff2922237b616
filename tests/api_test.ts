// The public API: mod.ts exports what README's "API in brief" names, and none of the library's internals.

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

async function apiSection(): Promise<string> {
  const readme = await Deno.readTextFile(new URL("README.md", ROOT));
  const start = readme.indexOf("## API in brief");
  assert.ok(start >= 0, 'README.md has no "## API in brief" section');
  return readme.slice(start, readme.indexOf("\n## ", start + 1));
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
