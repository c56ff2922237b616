// Option checks for the optimizer and its schedules: each error names the op, the field and what is allowed.

import { Tensor } from "../core/mod.ts";

// `max` bounds above exclusively, `exclusive` makes `min` exclusive too.
/** Throws unless `v` is a finite number in range, naming the op and the field. */
export function checkNumber(
  op: string,
  name: string,
  v: unknown,
  rule: { min: number; max?: number; exclusive?: boolean; integer?: boolean; minText?: string; text?: string },
): void {
  const { min, max, exclusive = false, integer = false } = rule;
  const ok = typeof v === "number" && Number.isFinite(v) && (exclusive ? v > min : v >= min) &&
    (max === undefined || v < max) && (!integer || Number.isInteger(v));
  if (ok) return;
  const lo = `${exclusive ? ">" : ">="} ${rule.minText ?? min}`;
  const allowed = max === undefined ? `a${integer ? "n integer" : " number"} ${lo}` : `a number in [${min}, ${max})`;
  const got = typeof v === "number" ? String(v) : describe(v);
  throw new Error(`${op}: ${name} must be ${allowed}${rule.text ? ` ${rule.text}` : ""}, got ${got}`);
}

/** Throws on option names that an options object does not know. */
export function checkKnown(op: string, opts: unknown, names: readonly string[]): void {
  if (typeof opts !== "object" || opts === null) throw new Error(`${op}: expected an options object, got ${opts}`);
  for (const k of Object.keys(opts)) {
    if (!names.includes(k)) throw new Error(`${op}: unknown option "${k}"; the options are ${names.join(", ")}`);
  }
}

/** A short description of a value for error messages: a tensor's dtype and shape, else its kind. */
export function describe(v: unknown): string {
  if (v instanceof Tensor) return `a ${v.dtype} tensor of shape [${v.shape}]`;
  if (v === null || v === undefined) return String(v);
  if (Array.isArray(v)) return `an array of ${v.length}`;
  return typeof v === "object" ? "a record" : `${typeof v} ${String(v)}`;
}
