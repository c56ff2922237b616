// What the user gives beyond flags: the error that reports bad input, and bounded reads of regular files.

/**
 * A problem with what the user gave (flags, files, configs): printed as one line, exit status 2. Messages quote what
 * the user typed, so control characters in them (a newline in a path, a terminal escape) are written as escapes
 * (`\n`, `\u001b`): the message stays one line and cannot drive the terminal.
 */
export class InputError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(escapeControls(message), options);
  }
}

const ESCAPES: Readonly<Record<string, string>> = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };

/** `text` with each C0 control character, DEL and C1 control written as an escape. */
export function escapeControls(text: string): string {
  return text.replace(
    // deno-lint-ignore no-control-regex
    /[\u0000-\u001f\u007f-\u009f]/g,
    (c) => ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/** Reads a JSON file of at most `limit` bytes; a missing, unreadable or malformed file is an InputError. */
export async function readJsonFile(path: string, what: string, limit: number): Promise<unknown> {
  const text = await readTextFile(path, what, limit);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new InputError(`${what} ${path}: not valid JSON (${(e as Error).message})`);
  }
}

/** Reads a UTF-8 text file of at most `limit` bytes; a missing or unreadable file is an InputError. */
export async function readTextFile(path: string, what: string, limit: number): Promise<string> {
  const bytes = await readBytes(path, what, limit);
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new InputError(`${what} ${path}: not UTF-8 text`);
  }
}

/** "12 bytes", "3.5 KiB", "256.0 MiB", "1.5 GiB". */
export function sizeText(n: number): string {
  if (n < 1024) return `${n} bytes`;
  const [unit, div] = n >= 2 ** 40
    ? ["TiB", 2 ** 40]
    : n >= 2 ** 30
    ? ["GiB", 2 ** 30]
    : n >= 2 ** 20
    ? ["MiB", 2 ** 20]
    : ["KiB", 1024];
  return `${(n / div).toFixed(1)} ${unit}`;
}

function readError(e: unknown, path: string, what: string): InputError {
  if (e instanceof InputError) return e;
  if (e instanceof Deno.errors.NotFound) return new InputError(`${what}: no such file: ${path}`);
  if (e instanceof Deno.errors.IsADirectory) return new InputError(`${what}: ${path} is a directory, not a file`);
  return new InputError(`${what}: cannot read ${path}: ${(e as Error).message}`);
}

/**
 * Reads the bytes of a regular file of at most `limit` bytes (a device such as /dev/zero, a pipe or
 * a directory is refused before it is opened); any problem is an InputError naming the file.
 */
export async function readBytes(path: string, what: string, limit: number): Promise<Uint8Array> {
  let file: Deno.FsFile | null = null;
  try {
    const info = await Deno.stat(path);
    if (info.isDirectory) throw new InputError(`${what}: ${path} is a directory, not a file`);
    if (!info.isFile) throw new InputError(`${what}: ${path} is not a regular file (a device, pipe or socket)`);
    const tooBig = (n: string) =>
      new InputError(`${what} ${path}: ${n} is more than the limit of ${sizeText(limit)} for ${what}`);
    if (info.size > limit) throw tooBig(sizeText(info.size));
    file = await Deno.open(path, { read: true });
    // Read to the end, never past the limit, even if the file grows while it is read.
    const chunks: Uint8Array[] = [];
    let total = 0;
    for (;;) {
      const chunk = new Uint8Array(Math.min(Math.max(info.size - total + 1, 2 ** 16), limit - total + 1, 2 ** 24));
      const n = await file.read(chunk);
      if (n === null) break;
      total += n;
      if (total > limit) throw tooBig("it");
      chunks.push(chunk.subarray(0, n));
    }
    if (chunks.length === 1) return chunks[0];
    const bytes = new Uint8Array(total);
    let at = 0;
    for (const c of chunks) bytes.set(c, (at += c.length) - c.length);
    return bytes;
  } catch (e) {
    throw readError(e, path, what);
  } finally {
    file?.close();
  }
}
