// Command-line options: typed specs, flag parsing, --config files, help text; bad input is an InputError.

/** A problem with what the user gave (flags, files, configs): printed as one line, exit status 2. */
export class InputError extends Error {}

/** One option: how to read it from a flag string or a JSON value, its default and its help. */
export interface Spec<T> {
  readonly kind: "int" | "number" | "string" | "bool" | "choice";
  readonly default: T;
  readonly help: string;
  /** Shown in help instead of the default (e.g. "the run's planned total"). */
  readonly defaultText?: string;
  /** The value's name in help (FILE, DIR, 0|1|2). */
  readonly meta?: string;
  /** Reads a flag's text (bool flags get "true"). */
  fromFlag(text: string, where: string): T;
  /** Reads a value from a JSON config file. */
  fromJson(value: unknown, where: string): T;
}

// deno-lint-ignore no-explicit-any
export type Specs = Record<string, Spec<any>>;
/** The parsed values of a spec table. */
export type Values<S extends Specs> = { -readonly [K in keyof S]: S[K] extends Spec<infer T> ? T : never };

const show = (v: unknown) => (typeof v === "string" ? JSON.stringify(v) : v === null ? "null" : String(v));

function numberSpec(kind: "int" | "number", def: number | null, help: string, min: number, extra: object) {
  const what = kind === "int" ? `an integer >= ${min}` : `a number >= ${min}`;
  const check = (v: number, where: string, got: string) => {
    if (!Number.isFinite(v) || v < min || (kind === "int" && !Number.isInteger(v))) {
      throw new InputError(`${where} must be ${what}, got ${got}`);
    }
    return v;
  };
  return {
    kind,
    default: def,
    help,
    ...extra,
    fromFlag: (text: string, where: string) => {
      const ok = kind === "int" ? /^[+-]?\d+$/.test(text) : /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(text);
      return check(ok ? Number(text) : NaN, where, JSON.stringify(text));
    },
    fromJson: (v: unknown, where: string) => {
      if (v === null && def === null) return null;
      return check(typeof v === "number" ? v : NaN, where, show(v));
    },
  };
}

/** An integer option (`min` defaults to 0). */
export function int(def: number, help: string, opts?: { min?: number; defaultText?: string }): Spec<number>;
/** An integer option that may be left unset (null). */
export function int(def: null, help: string, opts?: { min?: number; defaultText?: string }): Spec<number | null>;
export function int(def: number | null, help: string, opts: { min?: number; defaultText?: string } = {}) {
  return numberSpec("int", def, help, opts.min ?? 0, { defaultText: opts.defaultText }) as Spec<number | null>;
}

/** A non-negative number option. */
export function num(def: number, help: string): Spec<number> {
  return numberSpec("number", def, help, 0, {}) as Spec<number>;
}

/** A string option (a path, a prompt); null when unset. */
export function str(
  def: string | null,
  help: string,
  opts: { defaultText?: string; meta?: string } = {},
): Spec<string | null> {
  const fromJson = (v: unknown, where: string) => {
    if (typeof v === "string" || (v === null && def === null)) return v;
    throw new InputError(`${where} must be a string, got ${show(v)}`);
  };
  return { kind: "string", default: def, help, ...opts, fromFlag: (t) => t, fromJson };
}

/** A switch: `--quiet` sets it. */
export function bool(help: string): Spec<boolean> {
  const fromJson = (v: unknown, where: string) => {
    if (typeof v === "boolean") return v;
    throw new InputError(`${where} must be true or false, got ${show(v)}`);
  };
  return { kind: "bool", default: false, help, fromFlag: () => true, fromJson };
}

/** One of a fixed set of words. */
export function choice<const C extends string>(
  values: readonly C[],
  def: NoInfer<C> | null,
  help: string,
  opts: { defaultText?: string } = {},
): Spec<C | null> {
  const read = (v: unknown, where: string) => {
    if (values.includes(v as C) || (v === null && def === null)) return v as C;
    throw new InputError(`${where} must be one of ${values.join(", ")}; got ${show(v)}`);
  };
  return { kind: "choice", default: def, help, meta: values.join("|"), ...opts, fromFlag: read, fromJson: read };
}

/** Flag spelling of an option key: `pretrainSteps` -> `--pretrain-steps`. */
export function flagOf(key: string): string {
  return `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

/** The options every command takes. */
export const COMMON = {
  backend: choice(["auto", "webgpu", "cpu"], null, "where to compute", { defaultText: "$JETFOLD_BACKEND or auto" }),
  seed: int(0, "seed of every random choice (init, data, paths)"),
  out: str(null, "run directory to write", { defaultText: "runs/<command>-<time>", meta: "DIR" }),
  config: str(null, "JSON file of options (keys as below in camelCase); flags override it", { meta: "FILE" }),
  quiet: bool("print only the results, no progress"),
} as const;

/** What `parse` returns: the values and the keys given explicitly (by flag or config file). */
export interface Parsed<S extends Specs> {
  readonly values: Values<S>;
  readonly flags: ReadonlySet<string>;
  readonly help: boolean;
}

/**
 * Parses `argv` against `specs`: defaults, then the `--config` file, then flags (`--key value` or
 * `--key=value`). Throws InputError naming the flag or field on any problem.
 */
export async function parse<S extends Specs>(command: string, argv: readonly string[], specs: S): Promise<Parsed<S>> {
  const byFlag = new Map(Object.keys(specs).map((k) => [flagOf(k), k]));
  const fromFlags: Record<string, unknown> = {};
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "-h" || arg === "--help") {
      help = true;
      continue;
    }
    if (!arg.startsWith("--")) {
      throw new InputError(`unexpected argument ${JSON.stringify(arg)} (options start with --; see ${command} --help)`);
    }
    const eq = arg.indexOf("=");
    const flag = eq < 0 ? arg : arg.slice(0, eq);
    const key = byFlag.get(flag);
    if (key === undefined) throw new InputError(`unknown option ${flag} for ${command} (see ${command} --help)`);
    const spec = specs[key];
    let text: string;
    if (spec.kind === "bool") {
      if (eq >= 0) throw new InputError(`${flag} is a switch and takes no value`);
      text = "true";
    } else if (eq >= 0) {
      text = arg.slice(eq + 1);
    } else {
      if (i + 1 >= argv.length) throw new InputError(`${flag} needs a value`);
      text = argv[++i];
    }
    fromFlags[key] = spec.fromFlag(text, flag);
  }
  const values: Record<string, unknown> = Object.fromEntries(Object.entries(specs).map(([k, s]) => [k, s.default]));
  if (help) return { values: values as Values<S>, flags: new Set(), help };
  const path = (fromFlags.config ?? null) as string | null;
  const fromFile = path === null ? {} : await readConfig(path, specs);
  Object.assign(values, fromFile, fromFlags);
  return { values: values as Values<S>, flags: new Set([...Object.keys(fromFile), ...Object.keys(fromFlags)]), help };
}

/** Reads and validates a JSON config file against `specs` (extra "command" and "version" keys are allowed). */
export async function readConfig(path: string, specs: Specs): Promise<Record<string, unknown>> {
  const json = await readJsonFile(path, "--config");
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new InputError(
      `--config ${path}: expected a JSON object of options, got ${Array.isArray(json) ? "an array" : show(json)}`,
    );
  }
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(json)) {
    if (key === "command" || key === "version") continue;
    const spec = specs[key];
    if (spec === undefined || key === "config") {
      const known = Object.keys(specs).filter((k) => k !== "config").join(", ");
      throw new InputError(`--config ${path}: unknown field ${JSON.stringify(key)} (fields: ${known})`);
    }
    out[key] = spec.fromJson(value, `--config ${path}: field ${JSON.stringify(key)}`);
  }
  return out;
}

/** Reads a JSON file, turning a missing, unreadable or malformed file into an InputError. */
export async function readJsonFile(path: string, what: string): Promise<unknown> {
  const text = await readTextFile(path, what);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new InputError(`${what} ${path}: not valid JSON (${(e as Error).message})`);
  }
}

/** Reads a UTF-8 text file, turning a missing or unreadable file into an InputError. */
export async function readTextFile(path: string, what: string): Promise<string> {
  const bytes = await readBytes(path, what);
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new InputError(`${what} ${path}: not UTF-8 text`);
  }
}

/** Reads a file's bytes, turning a missing or unreadable file into an InputError. */
export async function readBytes(path: string, what: string): Promise<Uint8Array> {
  try {
    return await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new InputError(`${what}: no such file: ${path}`);
    if (e instanceof Deno.errors.IsADirectory) throw new InputError(`${what}: ${path} is a directory, not a file`);
    throw new InputError(`${what}: cannot read ${path}: ${(e as Error).message}`);
  }
}

/** The help text of a command: usage, summary and one line per option with its default. */
export function helpText(command: string, summary: string, specs: Specs): string {
  const rows = Object.entries(specs).map(([key, s]) => {
    const meta = s.meta ?? (s.kind === "int" ? "N" : s.kind === "number" ? "X" : "VALUE");
    const flag = s.kind === "bool" ? flagOf(key) : `${flagOf(key)} ${meta}`;
    const def = s.defaultText ?? (s.kind === "bool" ? null : s.default === null ? null : String(s.default));
    return [flag, def === null ? s.help : `${s.help} (default ${def})`];
  });
  const width = Math.max(...rows.map(([f]) => f.length)) + 2;
  const lines = rows.map(([f, h]) => `  ${f.padEnd(width)}${h}`);
  return [
    `Usage: deno run -A cli.ts ${command} [options]`,
    "",
    summary,
    "",
    "Options:",
    ...lines,
    "  -h, --help".padEnd(width + 2) + "print this help",
  ]
    .join("\n");
}
