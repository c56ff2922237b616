// The few path helpers hub/ and text/ need, on "/" (which Deno accepts on every OS): node:path is not reachable from
// mod.ts, which must load from a URL with no dependencies but relative ones.

/** Joins path parts with "/", dropping empty parts and doubled or trailing separators. */
export function join(...parts: readonly string[]): string {
  const joined = parts.filter((p) => p !== "").join("/").replace(/[\\/]+/g, "/");
  return joined.length > 1 ? joined.replace(/\/$/, "") : joined;
}

/** The folder part of a path: "a/b/c.json" -> "a/b"; "c.json" -> ".". */
export function dirname(path: string): string {
  const trimmed = path.replace(/[\\/]+$/, "");
  const at = Math.max(trimmed.lastIndexOf("/"), trimmed.lastIndexOf("\\"));
  return at < 0 ? "." : at === 0 ? "/" : trimmed.slice(0, at);
}

/** The last part of a path: "a/b/c.json" -> "c.json". */
export function basename(path: string): string {
  const trimmed = path.replace(/[\\/]+$/, "");
  return trimmed.slice(Math.max(trimmed.lastIndexOf("/"), trimmed.lastIndexOf("\\")) + 1);
}

/** The local path of a file: URL ("file:///C:/x" is "C:/x" on Windows). */
export function fileUrlPath(url: URL): string {
  const path = decodeURIComponent(url.pathname);
  return Deno.build.os === "windows" && /^\/[A-Za-z]:/.test(path) ? path.slice(1) : path;
}
