// scanImports: which statements load a module at runtime, and text that only looks like an import.

import { deepStrictEqual } from "node:assert/strict";
import { scanImports } from "../../tools/imports.ts";

// [source, expected typeOnly of its one statement]
const CASES: readonly (readonly [string, boolean])[] = [
  ['import type { A } from "./m.ts";', true],
  ['import type A from "./m.ts";', true],
  ['import type * as m from "./m.ts";', true],
  ['import { type A, type B as C } from "./m.ts";', true],
  ['import {\n  type A,\n  type B,\n} from "./m.ts";', true],
  ['export type { A } from "./m.ts";', true],
  ['export type * from "./m.ts";', true],
  ['export { type A } from "./m.ts";', true],
  ['import { type A, b } from "./m.ts";', false],
  ['import { type } from "./m.ts";', false],
  ['import { type as t } from "./m.ts";', false],
  ['import type from "./m.ts";', false],
  ['import type, { type A } from "./m.ts";', false],
  ['import {} from "./m.ts";', false],
  ['import "./m.ts";', false],
  ['import * as m from "./m.ts";', false],
  ['import m, { type A } from "./m.ts";', false],
  ['import { from } from "./m.ts";', false],
  ['export * from "./m.ts";', false],
  ['export * as m from "./m.ts";', false],
  ['export { a, type B } from "./m.ts";', false],
];

Deno.test("an import is type-only exactly when every name it brings in is a type", () => {
  for (const [src, typeOnly] of CASES) deepStrictEqual(scanImports(src), [{ specifier: "./m.ts", typeOnly }], src);
});

Deno.test("imports inside comments, strings, templates and regexes are not statements", () => {
  const src = [
    "// import { a } from './no1.ts';",
    "/* export * from './no2.ts'; */",
    "/**\n * ```ts\n * import { b } from './no3.ts';\n * ```\n */",
    "const s = 'import { c } from \"./no4.ts\"';",
    "const t = `\nimport { d } from './no5.ts';\n${`nested ${1 + 2}`} import './no6.ts';\n`;",
    "const r = /import '.\\/no7.ts'/g, q = 4 / 2 / 1;",
    'import { yes } from "./yes.ts";',
  ].join("\n");
  deepStrictEqual(scanImports(src), [{ specifier: "./yes.ts", typeOnly: false }]);
});

Deno.test("dynamic imports, import.meta and local exports are not static imports", () => {
  const src = [
    'const m = await import("./dynamic.ts");',
    "const here = import.meta.url;",
    "const a = 1;",
    "export { a };",
    "export type T = { from: string };",
    "export const obj = { import: 1, export: 2 };",
    "obj.import;",
  ].join("\n");
  deepStrictEqual(scanImports(src), []);
});

Deno.test("statements sharing a specifier are reported one by one", () => {
  const src = 'import { type A } from "./m.ts";\nimport { b } from "./m.ts";';
  deepStrictEqual(scanImports(src), [{ specifier: "./m.ts", typeOnly: true }, {
    specifier: "./m.ts",
    typeOnly: false,
  }]);
});
