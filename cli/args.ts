// Command-line options: typed specs, flag parsing, --config files, help text; bad input is an InputError.

import { InputError, readJsonFile } from "./input.ts";

export { InputError };

/** One option: how to read it from a flag string or a JSON value, its default and its help. */
export interface Spec<T> {
  readonly kind: "int" | "number" | "string" | "bool" | "choice";
  readonly default: T;
  readonly help: string;
  /** Shown in help instead of the default (e.g. "the run's planned total"). */
  readonly defaultText?: string;
  /** The value's name in help (FILE, DIR, 0|1|2). */
  readonly meta?: string;
  /** A switch that is on by default: its flag is `--no-<name>` and turns it off. */
  readonly negated?: boolean;
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

/** Bounds of a number option. */
export interface Range {
  readonly min?: number;
  readonly max?: number;
}

function numberSpec(kind: "int" | "number", def: number | null, help: string, range: Range, extra: object) {
  const min = range.min ?? 0, max = range.max ?? (kind === "int" ? Number.MAX_SAFE_INTEGER : Infinity);
  const bounded = max !== Number.MAX_SAFE_INTEGER && max !== Infinity;
  const noun = kind === "int" ? "an integer" : "a number";
  const what = bounded ? `${noun} in ${min}..${max}` : `${noun} >= ${min}`;
  const check = (v: number, where: string, got: string) => {
    if (kind === "int" && Number.isInteger(v) && !Number.isSafeInteger(v) && v > 0 && !bounded) {
      throw new InputError(`${where} must be at most ${Number.MAX_SAFE_INTEGER} (2^53 - 1), got ${got}`);
    }
    const whole = kind === "number" || Number.isSafeInteger(v);
    if (!Number.isFinite(v) || !whole || v < min || v > max) {
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

/** Options of an integer option: its bounds (`min` 0 and any safe integer by default) and help. */
export interface IntOptions extends Range {
  readonly defaultText?: string;
}

/** An integer option (a safe integer, `min` 0 by default). */
export function int(def: number, help: string, opts?: IntOptions): Spec<number>;
/** An integer option that may be left unset (null). */
export function int(def: null, help: string, opts?: IntOptions): Spec<number | null>;
export function int(def: number | null, help: string, opts: IntOptions = {}) {
  return numberSpec("int", def, help, opts, { defaultText: opts.defaultText }) as Spec<number | null>;
}

/** A non-negative, finite number option. */
export function num(def: number, help: string, range: Range = {}): Spec<number> {
  return numberSpec("number", def, help, range, {}) as Spec<number>;
}

/**
 * A string option (a path, a prompt); null when unset. It is never empty, and a path (`meta` FILE
 * or DIR) holds no NUL character.
 */
export function str(
  def: string | null,
  help: string,
  opts: { defaultText?: string; meta?: string } = {},
): Spec<string | null> {
  const isPath = opts.meta === "FILE" || opts.meta === "DIR";
  const check = (v: string, where: string) => {
    if (v === "") throw new InputError(`${where} must not be empty`);
    if (isPath && v.includes("\0")) throw new InputError(`${where}: a path cannot hold a NUL character`);
    return v;
  };
  const fromJson = (v: unknown, where: string) => {
    if (typeof v === "string") return check(v, where);
    if (v === null && def === null) return v;
    throw new InputError(`${where} must be a string, got ${show(v)}`);
  };
  return { kind: "string", default: def, help, ...opts, fromFlag: check, fromJson };
}

/** A switch: `--quiet` sets it. With `on`, it is on by default and `--no-<name>` turns it off. */
export function bool(help: string, opts: { readonly on?: boolean } = {}): Spec<boolean> {
  const fromJson = (v: unknown, where: string) => {
    if (typeof v === "boolean") return v;
    throw new InputError(`${where} must be true or false, got ${show(v)}`);
  };
  const on = opts.on ?? false;
  return { kind: "bool", default: on, help, fromFlag: () => !on, fromJson, ...(on ? { negated: true } : {}) };
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

// The flag that sets an option: `--no-hardware-search` for a switch that is on by default.
const flagFor = (key: string, spec: Spec<unknown>) => (spec.negated ? `--no-${flagOf(key).slice(2)}` : flagOf(key));

/** The options every command takes. */
export const COMMON = {
  backend: choice(["auto", "webgpu", "wasm", "cpu"], null, "where to compute", {
    defaultText: "$JETFOLD_BACKEND or auto",
  }),
  seed: int(0, "seed of every random choice (init, data, paths)"),
  out: str(null, "run directory to write", { defaultText: "runs/<command>-<time>", meta: "DIR" }),
  config: str(null, "JSON file of options (keys as below in camelCase); flags override it", { meta: "FILE" }),
  quiet: bool("print only the results, no progress"),
} as const;

/**
 * What `parse` returns: the values; `given`, the keys set on the command line or by the `--config`
 * file to something other than their default (a field at its default counts as not given, so a run's
 * config.json, which records every option, can be reused); and whether help was asked for.
 */
export interface Parsed<S extends Specs> {
  readonly values: Values<S>;
  readonly given: ReadonlySet<string>;
  readonly help: boolean;
}

/**
 * Parses `argv` against `specs`: defaults, then the `--config` file, then flags (`--key value` or
 * `--key=value`). Throws InputError naming the flag or field on any problem, an option given twice
 * included.
 */
export async function parse<S extends Specs>(command: string, argv: readonly string[], specs: S): Promise<Parsed<S>> {
  const byFlag = new Map(Object.entries(specs).map(([k, spec]) => [flagFor(k, spec), k]));
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
    if (Object.hasOwn(fromFlags, key)) throw new InputError(`${flag} is given twice; give it once`);
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
  if (help) return { values: values as Values<S>, given: new Set(), help };
  const path = (fromFlags.config ?? null) as string | null;
  const fromFile = path === null ? {} : await readConfig(path, specs);
  Object.assign(values, fromFile, fromFlags);
  const fromFileGiven = Object.keys(fromFile).filter((k) => fromFile[k] !== specs[k].default);
  return { values: values as Values<S>, given: new Set([...fromFileGiven, ...Object.keys(fromFlags)]), help };
}

/** The most bytes a `--config` file may hold. */
export const CONFIG_LIMIT = 2 ** 20;

/** Reads and validates a JSON config file against `specs` (extra "command" and "version" keys are allowed). */
export async function readConfig(path: string, specs: Specs): Promise<Record<string, unknown>> {
  const json = await readJsonFile(path, "--config", CONFIG_LIMIT);
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new InputError(
      `--config ${path}: expected a JSON object of options, got ${Array.isArray(json) ? "an array" : show(json)}`,
    );
  }
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(json)) {
    if (key === "command" || key === "version") continue;
    if (!Object.hasOwn(specs, key) || key === "config") {
      const known = Object.keys(specs).filter((k) => k !== "config").join(", ");
      throw new InputError(`--config ${path}: unknown field ${JSON.stringify(key)} (fields: ${known})`);
    }
    out[key] = specs[key].fromJson(value, `--config ${path}: field ${JSON.stringify(key)}`);
  }
  return out;
}

/** The help text of a command: usage, summary and one line per option with its default. */
export function helpText(command: string, summary: string, specs: Specs): string {
  const rows = Object.entries(specs).map(([key, s]) => {
    const meta = s.meta ?? (s.kind === "int" ? "N" : s.kind === "number" ? "X" : "VALUE");
    const flag = s.kind === "bool" ? flagFor(key, s) : `${flagOf(key)} ${meta}`;
    const def = s.defaultText ?? (s.kind === "bool" ? null : s.default === null ? null : String(s.default));
    return [flag, def === null ? s.help : `${s.help} (default ${def})`];
  });
  const width = Math.max(...rows.map(([f]) => f.length)) + 2;
  // A help text of several lines continues under its first line, not at the left margin.
  const lines = rows.map(([f, h]) => `  ${f.padEnd(width)}${h.replaceAll("\n", `\n${" ".repeat(width + 2)}`)}`);
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
