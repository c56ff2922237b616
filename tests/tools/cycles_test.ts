// The cycle finder on synthetic graphs, and the value-import graph deno info and the scanner build.

import { deepStrictEqual } from "node:assert/strict";
import { findCycles, type ImportGraph, shortestCycle, valueImportGraph } from "../../tools/cycles.ts";

const graph = (edges: Record<string, string[]>): ImportGraph => new Map(Object.entries(edges));

Deno.test("an acyclic graph has no cycles", () => {
  deepStrictEqual(findCycles(graph({ a: ["b", "c"], b: ["c"], c: [] })), []);
});

Deno.test("two modules importing each other form one cycle, and a self-import is a cycle too", () => {
  const g = graph({ a: ["b"], b: ["a", "c"], c: ["c"], d: ["a"] });
  deepStrictEqual(findCycles(g), [["a", "b"], ["c"]]);
  deepStrictEqual(shortestCycle(g, ["c"], "c"), ["c", "c"]);
});

Deno.test("separate cycles are separate components, and the shortest chain is the one printed", () => {
  // a -> b -> c -> d -> a, with a shortcut c -> a; x <-> y apart.
  const g = graph({ a: ["b"], b: ["c"], c: ["d", "a"], d: ["a"], x: ["y"], y: ["x", "a"] });
  deepStrictEqual(findCycles(g), [["a", "b", "c", "d"], ["x", "y"]]);
  deepStrictEqual(shortestCycle(g, ["a", "b", "c", "d"], "a"), ["a", "b", "c", "a"]);
  deepStrictEqual(shortestCycle(g, ["a", "b", "c", "d"], "d"), ["d", "a", "b", "c", "d"]);
});

Deno.test("type-only imports and dynamic imports leave no edge in the value-import graph", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jetfold-cycles-test-" });
  try {
    const files: Record<string, string> = {
      "a.ts": 'import { b } from "./b.ts";\nimport { c } from "./c.ts";\nexport type A = 1;\nexport const a = b + c;\n',
      "b.ts": 'import type { A } from "./a.ts";\nexport const b: A = 1;\n',
      "c.ts":
        'import { type A } from "./a.ts";\nexport const c: A = 1;\nexport const later = () => import("./a.ts");\n',
      "d.ts": 'export { a } from "./a.ts";\nimport "./d.ts";\n',
    };
    for (const [name, src] of Object.entries(files)) await Deno.writeTextFile(`${dir}/${name}`, src);
    const g = await valueImportGraph(dir, Object.keys(files).map((name) => `${dir}/${name}`));
    const names = new Map([...g].map(([k, vs]) => [k.split("/").at(-1)!, vs.map((v) => v.split("/").at(-1)!)]));
    deepStrictEqual(
      names,
      new Map([["a.ts", ["b.ts", "c.ts"]], ["b.ts", []], ["c.ts", []], ["d.ts", ["a.ts", "d.ts"]]]),
    );
    deepStrictEqual(findCycles(g).map((c) => c.map((m) => m.split("/").at(-1))), [["d.ts"]]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
