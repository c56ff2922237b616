// Files where there is a file system (Deno), and a clear error where there is none (a browser).

/**
 * Throws unless this runtime can read and write files: `fn` names the function that needs them,
 * `instead` says what to use without a file system (in a browser).
 */
export function needFiles(fn: string, instead: string): void {
  const deno = (globalThis as { Deno?: { readFile?: unknown } }).Deno;
  if (typeof deno?.readFile !== "function") {
    throw new Error(`${fn} works on files, and there is no file system here (a browser?): ${instead}`);
  }
}
