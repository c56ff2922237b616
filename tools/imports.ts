// Finds a module's static imports and re-exports, and which of them are type-only (erased at runtime).

/** One static `import ... from "x"`, `import "x"` or `export ... from "x"` statement. */
export interface ImportStatement {
  /** The specifier exactly as written between the quotes. */
  readonly specifier: string;
  /** True when the statement brings in only types, so the compiled module does not load it. */
  readonly typeOnly: boolean;
}

interface Token {
  readonly kind: "name" | "string" | "punct";
  readonly text: string;
  /** Brace depth before the token; import and export declarations sit at depth 0. */
  readonly depth: number;
}

// After these a `/` starts a regular expression rather than a division.
const EXPRESSION_KEYWORDS = new Set([
  "return",
  "typeof",
  "case",
  "do",
  "else",
  "in",
  "of",
  "new",
  "delete",
  "void",
  "throw",
  "yield",
  "await",
]);

// Only as much of a lexer as finding top-level statements needs: comments, strings, template
// literals and regular expressions are skipped so that text inside them is never read as code.
function tokenize(src: string): Token[] {
  const out: Token[] = [];
  const templates: number[] = []; // the depth at each open `${`, so its `}` resumes the template text
  let depth = 0;
  let i = 0;
  const skipTemplateText = () => {
    while (i < src.length && src[i] !== "`" && !(src[i] === "$" && src[i + 1] === "{")) i += src[i] === "\\" ? 2 : 1;
    if (src[i] === "`") {
      i++;
    } else if (i < src.length) {
      templates.push(depth);
      depth++;
      i += 2;
    }
  };
  const regexAllowed = () => {
    const p = out.at(-1);
    if (p === undefined) return true;
    if (p.kind === "name") return EXPRESSION_KEYWORDS.has(p.text);
    return p.kind === "punct" && !")]}".includes(p.text);
  };
  while (i < src.length) {
    const c = src[i];
    if (/\s/.test(c)) i++;
    else if (src.startsWith("//", i)) i = src.indexOf("\n", i) < 0 ? src.length : src.indexOf("\n", i);
    else if (src.startsWith("/*", i)) i = src.indexOf("*/", i + 2) < 0 ? src.length : src.indexOf("*/", i + 2) + 2;
    else if (c === '"' || c === "'") {
      let j = i + 1;
      while (j < src.length && src[j] !== c && src[j] !== "\n") j += src[j] === "\\" ? 2 : 1;
      out.push({ kind: "string", text: src.slice(i + 1, j), depth });
      i = j + 1;
    } else if (c === "`") {
      out.push({ kind: "string", text: "", depth });
      i++;
      skipTemplateText();
    } else if (c === "}" && templates.at(-1) === depth - 1) {
      depth = templates.pop()!;
      i++;
      skipTemplateText();
    } else if (c === "/" && regexAllowed()) {
      let j = i + 1, inClass = false;
      while (j < src.length && src[j] !== "\n" && (inClass || src[j] !== "/")) {
        if (src[j] === "[") inClass = true;
        else if (src[j] === "]") inClass = false;
        j += src[j] === "\\" ? 2 : 1;
      }
      out.push({ kind: "string", text: "", depth });
      i = j + 1;
    } else if (/[\w$]/.test(c)) {
      let j = i;
      while (j < src.length && /[\w$]/.test(src[j])) j++;
      out.push({ kind: "name", text: src.slice(i, j), depth });
      i = j;
    } else {
      if (c === "}") depth = Math.max(0, depth - 1);
      out.push({ kind: "punct", text: c, depth });
      if (c === "{") depth++;
      i++;
    }
  }
  return out;
}

// `{ type A, type B as C }` is type-only; `{}` is not (it still loads the module), nor is `{ type }`
// (a value named "type") or `{ type as t }` (that value renamed).
function onlyTypeSpecifiers(clause: readonly Token[]): boolean {
  if (clause[0]?.text !== "{" || clause.at(-1)?.text !== "}") return false;
  const items: Token[][] = [[]];
  for (const t of clause.slice(1, -1)) t.text === "," ? items.push([]) : items.at(-1)!.push(t);
  const named = items.filter((item) => item.length > 0); // a trailing comma leaves an empty item
  return named.length > 0 && named.every((item) => item[0].text === "type" && (item.length === 2 || item.length === 4));
}

/**
 * The static import and re-export statements of a TypeScript module, in source order. Dynamic
 * `import()` is left out: it does not take part in the order in which modules are evaluated.
 *
 * @example
 * ```ts
 * scanImports('import type { A } from "./a.ts";\nimport { b } from "./b.ts";');
 * // [{ specifier: "./a.ts", typeOnly: true }, { specifier: "./b.ts", typeOnly: false }]
 * ```
 */
export function scanImports(src: string): ImportStatement[] {
  const tokens = tokenize(src);
  const out: ImportStatement[] = [];
  tokens.forEach((t, i) => {
    if (t.depth !== 0 || t.kind !== "name" || (t.text !== "import" && t.text !== "export")) return;
    if (tokens[i - 1]?.text === ".") return; // a property that happens to be called import or export
    const next = tokens[i + 1];
    if (t.text === "import" && next?.kind === "string") {
      out.push({ specifier: next.text, typeOnly: false });
      return;
    }
    if (t.text === "import" && (next?.text === "(" || next?.text === ".")) return; // import() or import.meta
    if (t.text === "export" && !["*", "{", "type"].includes(next?.text)) return; // a local declaration
    // The clause ends at a depth-0 `from` followed by the specifier; `from` inside braces is a name.
    let j = i + 1;
    while (j < tokens.length && ![";", "=", "import", "export"].includes(tokens[j].text)) {
      if (tokens[j].text === "from" && tokens[j].depth === 0 && tokens[j + 1]?.kind === "string") break;
      j++;
    }
    if (tokens[j]?.text !== "from") return; // `export { a, b };` or `import x = require(...)`
    const clause = tokens.slice(i + 1, j);
    // `import type from "x"` and `import type, { a } from "x"` import a value named "type".
    const typeKeyword = clause[0]?.text === "type" &&
      (t.text === "export" || (clause.length > 1 && clause[1].text !== ","));
    out.push({ specifier: tokens[j + 1].text, typeOnly: typeKeyword || onlyTypeSpecifiers(clause) });
  });
  return out;
}
