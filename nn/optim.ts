// AdamW as a pure optimizer over pytrees; its schedules and clipping come from schedule.ts.

import { Tensor, tensor, type Tree, type TreeDef, treeFlatten, treePaths } from "../core/mod.ts";
import { checkKnown, checkNumber, describe } from "./checks.ts";
import { clipByGlobalNorm, constantSchedule, type Schedule } from "./schedule.ts";

export type { Schedule };

/** Chooses leaves by their dotted path (as from `treePaths`), e.g. `layers.0.ffn.w1`. */
export type LeafMask = (path: string, param: Tensor) => boolean;

/** Options of `adamw`. */
export interface AdamWOptions {
  /**
   * Learning rate: a non-negative number or a `Schedule`, which is given the number of updates
   * already applied (0 at the first update, so a warmup from 0 makes the first update a no-op).
   */
  readonly lr: number | Schedule;
  /** Decay of the first moment, in [0, 1); 0.9 by default. */
  readonly b1?: number;
  /** Decay of the second moment, in [0, 1); 0.999 by default. */
  readonly b2?: number;
  /** Added to the root of the second moment; 1e-8 by default. */
  readonly eps?: number;
  /** Decoupled weight decay: each step also does `p -= lr * weightDecay * p`; 0.01 by default. */
  readonly weightDecay?: number;
  /** Which leaves are trained (false: frozen, returned as is, no moments kept); all f32 leaves by default. */
  readonly mask?: LeafMask;
  /** Which trained leaves decay; by default those with at least 2 axes (not norms or biases). */
  readonly weightDecayMask?: LeafMask;
  /** Scales the trained leaves' grads down to this global L2 norm when it is exceeded. */
  readonly clipNorm?: number;
}

/** AdamW's state, a pytree of tensors: updates applied (i32 scalar) and the moments (null where frozen). */
export interface AdamWState {
  /** Number of updates applied so far, an i32 scalar. */
  readonly count: Tensor;
  /** First moments, shaped like the params, with null at frozen leaves. */
  readonly mu: Tree;
  /** Second moments, shaped like the params, with null at frozen leaves. */
  readonly nu: Tree;
}

/** A pure optimizer: `update` returns new params and state and changes nothing it is given. */
export interface Optimizer<S> {
  /** The state before the first update. */
  init<P>(params: P): S;
  /** One step. `grads` has the params' structure; it may hold null where a leaf is frozen. */
  update<P>(grads: NoInfer<P> | Tree, state: S, params: P): { readonly params: P; readonly state: S };
}

const OPTION_NAMES = ["lr", "b1", "b2", "eps", "weightDecay", "mask", "weightDecayMask", "clipNorm"];

/**
 * AdamW (Loshchilov & Hutter, "Decoupled Weight Decay Regularization"), in the PyTorch/optax
 * convention where the decay is scaled by the learning rate:
 * `m = b1 m + (1-b1) g`, `v = b2 v + (1-b2) g^2`, `p -= lr (m/(1-b1^t)) / (sqrt(v/(1-b2^t)) + eps) + lr wd p`.
 * Everything, the schedule and bias corrections included, is computed lazily on the device from
 * `state.count`, so a step reads nothing back. Frozen leaves come back as the same tensor objects:
 * when disposing old params, skip leaves that are also in the new ones.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { adamw, grad, tensor } from "../mod.ts";
 * const opt = adamw({ lr: 0.1 });
 * let params = { w: tensor([1, -2]) };
 * let state = opt.init(params);
 * const g = grad((p: typeof params) => p.w.square().sum())(params);
 * ({ params, state } = opt.update(g, state, params));
 * // Adam's first step moves each weight by lr against its gradient's sign (a 1-D leaf does not decay).
 * const [w0, w1] = await params.w.data();
 * assert.ok(Math.abs(w0 - 0.9) < 1e-6 && Math.abs(w1 + 1.9) < 1e-6);
 * assert.equal(await state.count.item(), 1);
 *
 * // A mask freezes leaves by path: they come back as the very same tensors, with no moments kept.
 * const partial = adamw({ lr: 0.1, mask: (path) => path !== "b" });
 * const p = { a: tensor([1]), b: tensor([1]) };
 * const next = partial.update({ a: tensor([1]), b: tensor([1]) }, partial.init(p), p);
 * assert.equal(next.params.b, p.b);
 * assert.notEqual(next.params.a, p.a);
 * ```
 */
export function adamw(opts: AdamWOptions): Optimizer<AdamWState> {
  const o = checkOptions(opts);
  const trainedAt = (op: string, paths: readonly string[], ps: readonly Tensor[]) =>
    ps.map((p, i) => p.dtype === "f32" && maskValue(op, "mask", o.mask, paths[i], p));
  return {
    init<P>(params: P): AdamWState {
      const [ps, def] = treeFlatten(params, { op: "adamw.init" });
      const trained = trainedAt("adamw.init", treePaths(params), ps);
      const zero = () => rebuild(def, ps.map((p, i) => (trained[i] ? tensor(0).broadcastTo(p.shape) : null)));
      return { count: tensor(0, { dtype: "i32" }), mu: zero(), nu: zero() };
    },
    update<P>(grads: NoInfer<P> | Tree, state: AdamWState, params: P) {
      const op = "adamw.update";
      const [ps, def] = treeFlatten(params, { op: `${op} (params)` });
      const paths = treePaths(params);
      const trained = trainedAt(op, paths, ps);
      const count = checkCount(op, state);
      const [gs, mus, nus] = ([["grads", grads], ["state.mu", state.mu], ["state.nu", state.nu]] as const).map(
        ([name, tree]) => {
          const xs = align(op, name, def, tree);
          ps.forEach((p, i) => trained[i] && checkLeaf(op, name, paths[i], p, xs[i]));
          return xs as Tensor[];
        },
      );
      const idx = ps.flatMap((_, i) => (trained[i] ? [i] : []));
      let g = idx.map((i) => gs[i]);
      if (o.clipNorm !== undefined) g = clipByGlobalNorm(g, o.clipNorm).grads;
      // The schedule sees the updates already applied (0 at the first); bias corrections the new count.
      const next = count.add(1), t = next.cast("f32");
      const lr = o.lr(count.cast("f32"));
      const stepSize = lr.div(oneMinusPow(o.b1, t)), rootBc2 = oneMinusPow(o.b2, t).sqrt();
      const shrink = lr.mul(-o.weightDecay).add(1);
      const newP: Tensor[] = [...ps], newMu: (Tensor | null)[] = ps.map(() => null), newNu = [...newMu];
      idx.forEach((i, k) => {
        const m = mus[i].mul(o.b1).add(g[k].mul(1 - o.b1));
        const v = nus[i].mul(o.b2).add(g[k].square().mul(1 - o.b2));
        const adam = m.mul(stepSize).div(v.sqrt().div(rootBc2).add(o.eps));
        const decays = o.weightDecay > 0 && maskValue(op, "weightDecayMask", o.weightDecayMask, paths[i], ps[i]);
        newP[i] = (decays ? ps[i].mul(shrink) : ps[i]).sub(adam);
        [newMu[i], newNu[i]] = [m, v];
      });
      const newState: AdamWState = { count: next, mu: rebuild(def, newMu), nu: rebuild(def, newNu) };
      return { params: rebuild(def, newP) as P, state: newState };
    },
  };
}

// 1 - b^t on the device, as -expm1(t ln b) with a series near 0: 1 - pow(b, t) in f32 loses about
// four digits to cancellation when b = 0.999 and t is small, i.e. in exactly the first steps.
function oneMinusPow(b: number, t: Tensor): Tensor {
  if (b === 0) return tensor(1);
  const x = t.mul(Math.log(b));
  const series = x.mul(x.mul(x.mul(x.mul(1 / 24).add(1 / 6)).add(0.5)).add(1));
  return x.gt(-0.05).where(series, x.exp().sub(1)).neg();
}

// Like treeUnflatten, but a leaf slot may hold null (frozen leaves have no moments).
function rebuild(def: TreeDef, values: readonly (Tensor | null)[]): Tree {
  let i = 0;
  const go = (d: TreeDef): Tree => {
    if (d.kind === "leaf") return values[i++];
    if (d.kind === "none") return d.value;
    if (d.kind === "array") return d.items.map(go);
    return Object.fromEntries(d.keys.map((k, j) => [k, go(d.items[j])]));
  };
  return go(def);
}

// The leaves of `tree` at the params' leaf positions; a missing or null subtree gives nulls.
function align(op: string, name: string, def: TreeDef, tree: unknown): (Tensor | null)[] {
  const out: (Tensor | null)[] = [];
  const nulls = (d: TreeDef): void => {
    if (d.kind === "leaf") out.push(null);
    else if (d.kind === "array" || d.kind === "record") d.items.forEach(nulls);
  };
  const go = (d: TreeDef, v: unknown, path: string): void => {
    const where = path === "" ? "at the root" : `at "${path}"`;
    const join = (k: string) => (path === "" ? k : `${path}.${k}`);
    if (v === null || v === undefined) return nulls(d);
    if (d.kind === "leaf") {
      if (!(v instanceof Tensor)) {
        throw new Error(`${op}: ${name} ${where} is ${describe(v)}, but params has a tensor there`);
      }
      out.push(v);
    } else if (d.kind === "none") {
      throw new Error(`${op}: ${name} ${where} is ${describe(v)}, but params has ${d.value} there`);
    } else if (d.kind === "array") {
      if (!Array.isArray(v) || v.length !== d.items.length) {
        throw new Error(`${op}: ${name} ${where} is ${describe(v)}, but params has an array of ${d.items.length}`);
      }
      d.items.forEach((x, i) => go(x, v[i], join(String(i))));
    } else {
      const keys = typeof v === "object" && !Array.isArray(v) && !(v instanceof Tensor) ? Object.keys(v) : null;
      const extra = keys?.filter((k) => !d.keys.includes(k));
      if (keys === null || extra!.length > 0) {
        const got = keys === null ? describe(v) : `a record with keys not in params (${extra!.join(", ")})`;
        throw new Error(`${op}: ${name} ${where} is ${got}; params has keys ${d.keys.join(", ")}`);
      }
      d.items.forEach((x, i) => go(x, (v as Record<string, unknown>)[d.keys[i]], join(d.keys[i])));
    }
  };
  go(def, tree, "");
  return out;
}

function checkLeaf(op: string, name: string, path: string, p: Tensor, x: Tensor | null): void {
  const what = `${op}: ${name} at "${path}"`;
  if (x === null) throw new Error(`${what} is missing, but that param is trained (its mask is true)`);
  if (x.dtype !== "f32" || x.shape.join() !== p.shape.join()) {
    throw new Error(`${what} is ${x.dtype} [${x.shape}], but the param is ${p.dtype} [${p.shape}]`);
  }
}

function checkCount(op: string, state: AdamWState): Tensor {
  const c = (state as { count?: unknown } | null)?.count;
  if (!(c instanceof Tensor) || c.dtype !== "i32" || c.ndim !== 0) {
    throw new Error(`${op}: state must be adamw's { count, mu, nu } with count an i32 scalar; got ${describe(c)}`);
  }
  return c;
}

function maskValue(op: string, name: string, mask: LeafMask, path: string, p: Tensor): boolean {
  const r = mask(path, p);
  if (typeof r !== "boolean") throw new Error(`${op}: ${name}("${path}") returned ${describe(r)}, not a boolean`);
  return r;
}

// Defaults filled in and every option checked, so update() needs no more checks of its own.
function checkOptions(opts: AdamWOptions) {
  const op = "adamw";
  checkKnown(op, opts, OPTION_NAMES);
  const { lr, b1 = 0.9, b2 = 0.999, eps = 1e-8, weightDecay = 0.01, clipNorm } = opts;
  const { mask = () => true, weightDecayMask = (_: string, p: Tensor) => p.ndim >= 2 } = opts;
  if (typeof lr !== "function") checkNumber(op, "lr", lr, { min: 0, text: "or a schedule (step) => Tensor" });
  checkNumber(op, "b1", b1, { min: 0, max: 1 });
  checkNumber(op, "b2", b2, { min: 0, max: 1 });
  checkNumber(op, "eps", eps, { min: 0 });
  checkNumber(op, "weightDecay", weightDecay, { min: 0 });
  if (clipNorm !== undefined) checkNumber(op, "clipNorm", clipNorm, { min: 0, exclusive: true });
  for (const [name, f] of [["mask", mask], ["weightDecayMask", weightDecayMask]] as const) {
    if (typeof f !== "function") {
      throw new Error(`${op}: ${name} must be a function (path, param) => boolean, got ${describe(f)}`);
    }
  }
  const schedule = typeof lr === "function" ? lr : constantSchedule(lr);
  const lrAt = (step: Tensor): Tensor => {
    const out = schedule(step) as unknown;
    if (typeof out === "number") return tensor(out);
    if (!(out instanceof Tensor) || out.dtype !== "f32" || out.ndim !== 0) {
      throw new Error(`${op}: the lr schedule must return an f32 scalar tensor, got ${describe(out)}`);
    }
    return out;
  };
  return { lr: lrAt, b1, b2, eps, weightDecay, mask, weightDecayMask, clipNorm };
}
