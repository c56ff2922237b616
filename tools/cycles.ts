// Fails when the project's own modules import values from each other in a cycle (type-only imports are erased).

import { relative } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { scanImports } from "./imports.ts";

/** Module -> the modules it imports values from. Every module is a key, even one that imports nothing. */
export type ImportGraph = ReadonlyMap<string, readonly string[]>;

/**
 * The strongly connected components that contain a cycle: two or more modules, or one that imports
 * itself. Members are sorted, and so are the components (by their first member).
 *
 * @example
 * ```ts
 * findCycles(new Map([["a", ["b"]], ["b", ["a"]], ["c", ["a"]]])); // [["a", "b"]]
 * ```
 */
export function findCycles(graph: ImportGraph): string[][] {
  // Tarjan's algorithm; the recursion is as deep as the longest import chain, a few dozen here.
  const index = new Map<string, number>(), low = new Map<string, number>();
  const stack: string[] = [], onStack = new Set<string>(), components: string[][] = [];
  const visit = (v: string) => {
    index.set(v, index.size);
    low.set(v, index.get(v)!);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) !== index.get(v)) return;
    const component: string[] = [];
    while (component.at(-1) !== v) {
      const w = stack.pop()!;
      onStack.delete(w);
      component.push(w);
    }
    if (component.length > 1 || graph.get(v)?.includes(v)) components.push(component.sort());
  };
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) visit(v);
  return components.sort((a, b) => a[0].localeCompare(b[0]));
}

/**
 * A shortest import chain from `start` back to itself, staying inside `members` (one component),
 * e.g. `["a", "b", "a"]`; empty when there is none.
 *
 * @example
 * ```ts
 * shortestCycle(new Map([["a", ["b"]], ["b", ["a"]]]), ["a", "b"], "a"); // ["a", "b", "a"]
 * ```
 */
export function shortestCycle(graph: ImportGraph, members: readonly string[], start: string): string[] {
  const inside = new Set(members), cameFrom = new Map<string, string>();
  let frontier = [start];
  while (frontier.length > 0) {
    const next: string[] = [];
    for (const v of frontier) {
      for (const w of graph.get(v) ?? []) {
        if (!inside.has(w) || cameFrom.has(w)) continue;
        cameFrom.set(w, v);
        if (w === start) {
          const back = [start];
          for (let u = v; u !== start; u = cameFrom.get(u)!) back.push(u);
          return [...back, start].reverse();
        }
        next.push(w);
      }
    }
    frontier = next;
  }
  return [];
}

interface DenoInfo {
  readonly modules: readonly {
    readonly specifier: string;
    readonly local?: string;
    readonly dependencies?: readonly { readonly specifier: string; readonly code?: { readonly specifier: string } }[];
  }[];
}

// deno info takes one root, so a data: module that imports every entry stands in for all of them.
async function denoInfo(cwd: string, entries: readonly string[]): Promise<DenoInfo> {
  const root = "data:application/typescript," +
    encodeURIComponent(entries.map((e) => `import ${JSON.stringify(pathToFileURL(e).href)};`).join("\n"));
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), { args: ["info", "--json", root], cwd })
    .output();
  if (code !== 0) throw new Error(`deno info failed:\n${new TextDecoder().decode(stderr)}`);
  return JSON.parse(new TextDecoder().decode(stdout));
}

/**
 * The value-import graph among local (file:, not node_modules) modules. deno info resolves the
 * specifiers; the sources say which statements are type-only, since deno info counts
 * `import { type A }` as code and merges statements that share a specifier.
 */
export async function valueImportGraph(cwd: string, entries: readonly string[]): Promise<ImportGraph> {
  const local = (url: string) => url.startsWith("file:") && !url.includes("/node_modules/");
  const graph = new Map<string, string[]>();
  for (const m of (await denoInfo(cwd, entries)).modules) {
    if (!local(m.specifier) || m.local === undefined) continue;
    const values = new Set(
      scanImports(await Deno.readTextFile(m.local)).filter((s) => !s.typeOnly).map((s) => s.specifier),
    );
    const targets = (m.dependencies ?? []).filter((d) => values.has(d.specifier) && d.code && local(d.code.specifier));
    graph.set(m.specifier, [...new Set(targets.map((d) => d.code!.specifier))].sort());
  }
  return graph;
}

async function tsFiles(path: string): Promise<string[]> {
  if (!(await Deno.stat(path)).isDirectory) return [path];
  const out: string[] = [];
  for await (const e of Deno.readDir(path)) {
    if (e.isDirectory || e.name.endsWith(".ts")) out.push(...(await tsFiles(`${path}/${e.name}`)));
  }
  return out;
}

if (import.meta.main) {
  // With arguments (files or folders), those relative to the working directory; else the project's own.
  const base = Deno.args.length > 0 ? Deno.cwd() : fileURLToPath(new URL("..", import.meta.url));
  const given = Deno.args.length > 0 ? Deno.args : ["mod.ts", "cli.ts", "core", "ops", "nn", "search", "cli"];
  const entries = (await Promise.all(given.map((p) => tsFiles(`${base}/${p}`)))).flat();
  const graph = await valueImportGraph(base, entries);
  const name = (url: string) => relative(base, fileURLToPath(url));
  const cycles = findCycles(graph);
  if (cycles.length === 0) {
    console.log(`no value-import cycles among ${graph.size} modules`);
    Deno.exit(0);
  }
  for (const members of cycles) {
    console.log(`value-import cycle among ${members.length} module(s):`);
    console.log(`  ${shortestCycle(graph, members, members[0]).map(name).join(" -> ")}`);
    // Every edge inside the component, since breaking the shortest chain alone may leave others.
    for (const m of members) {
      const inside = graph.get(m)!.filter((w) => members.includes(w));
      console.log(`    ${name(m)} imports ${inside.map(name).join(", ")}`);
    }
  }
  console.log(`${cycles.length} value-import cycle(s) among ${graph.size} modules`);
  Deno.exit(1);
}
