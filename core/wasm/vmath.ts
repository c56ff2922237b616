// exp and tanh over f32 arrays in Wasm SIMD, four lanes at a time: a polynomial after range
// reduction, in f32 (within a few ulps of the correctly rounded result; the spec table's f32
// tolerance allows far more). The engine's Math.exp and Math.tanh cost 10-30 ns an element here.

import { Func, I32, instantiate, moduleBytes, V128 } from "./asm.ts";
import { kernelMemory, reserve } from "./memory.ts";

// SIMD opcodes (after the 0xfd prefix).
const LOAD = 0x00, STORE = 0x0b, AND = 0x4e, ANDNOT = 0x4f, OR = 0x50, BITSELECT = 0x52;
const F_LT = 0x43, F_LE = 0x45, F_ABS = 0xe0, F_ADD = 0xe4, F_SUB = 0xe5, F_MUL = 0xe6, F_DIV = 0xe7;
const F_PMIN = 0xea, F_PMAX = 0xeb;
const F_NEAREST = 0x6a, I_TRUNC_SAT = 0xf8, I_ADD = 0xae, I_SUB = 0xb1, I_SHL = 0xab, I_SHR_S = 0xac;
const MEM16 = [4, 0] as const;

const f32Bits = (v: number) => [...new Uint8Array(Float32Array.of(v).buffer)];
const i32Bits = (v: number) => [...new Uint8Array(Int32Array.of(v).buffer)];

// Pushes a constant vector of four equal lanes.
function splat(f: Func, v: number): Func {
  return f.v128([0, 1, 2, 3].flatMap(() => f32Bits(v)));
}

// Taylor coefficients of e^r to r^7, highest first: |r| <= ln(2)/2 after the reduction.
const EXP_POLY = [1 / 5040, 1 / 720, 1 / 120, 1 / 24, 1 / 6, 1 / 2, 1, 1];
// tanh's odd series in s = x^2 (times x), highest first, for |x| < 0.25.
const TANH_POLY = [62 / 2835, -17 / 315, 2 / 15, -1 / 3, 1];
const TANH_SMALL = 0.25;

// Horner's rule on the value in local `x`, leaving the polynomial's value on the stack.
function horner(f: Func, x: string, coefs: readonly number[]): void {
  splat(f, coefs[0]);
  for (const c of coefs.slice(1)) {
    f.get(x).simd(F_MUL);
    splat(f, c).simd(F_ADD);
  }
}

// e^v for the vector on the stack, result on the stack: e^v = 2^h 2^(k-h) e^r with k = nearest(v / ln 2),
// h = k >> 1 (two factors, so subnormal results and the largest normal ones are both in reach) and
// r = v - k ln 2 in two parts (Cody and Waite). v is clamped to [-104, 88.8], where e^v rounds to
// 0 and overflows to Infinity in f32; NaN passes through (pmin and pmax keep a NaN first operand).
// Lanes at -104 or below (masked scores: their e^v rounds to 0) are computed as e^0 and zeroed at
// the end: scaling them to 0 is an underflow, which costs x86 a microcode assist a lane (Wasm keeps
// subnormals, so the engine cannot flush them), and made a masked softmax twice as slow.
function expOf(f: Func): void {
  // Locals: v, k, h, r, d (see SCRATCH).
  splat(f, -104).simd(F_PMAX);
  splat(f, 88.8).simd(F_PMIN).set("v");
  f.get("v");
  splat(f, -104).simd(F_LE).set("d");
  f.get("v").get("d").simd(ANDNOT).set("v");
  f.get("v");
  splat(f, Math.LOG2E).simd(F_MUL).simd(F_NEAREST).set("k");
  f.get("v").get("k");
  splat(f, 0.693359375).simd(F_MUL).simd(F_SUB).get("k");
  splat(f, -2.12194440e-4).simd(F_MUL).simd(F_SUB).set("r");
  horner(f, "r", EXP_POLY);
  const bias = () => f.v128([0, 1, 2, 3].flatMap(() => i32Bits(127)));
  f.get("k").simd(I_TRUNC_SAT).set("k"); // k as i32 lanes from here on
  f.get("k").i32(1).simd(I_SHR_S).set("h");
  f.get("h");
  bias();
  f.simd(I_ADD).i32(23).simd(I_SHL).simd(F_MUL); // times 2^h
  f.get("k").get("h").simd(I_SUB);
  bias();
  f.simd(I_ADD).i32(23).simd(I_SHL).simd(F_MUL); // times 2^(k-h)
  f.get("d").simd(ANDNOT);
}

// One exported function per operation: (ptr, vectors) rewrites `vectors` f32x4 values in place.
function unary(body: (f: Func) => void): Func {
  const f = new Func(["p", "n"]).local("end", I32);
  for (const l of SCRATCH) f.local(l, V128);
  f.get("n").i32(16).op(0x6c).get("p").op(0x6a).set("end");
  f.code.push(0x02, 0x40); // block: skip when there is nothing to do
  f.get("n").op(0x45, 0x0d, 0); // i32.eqz; br_if 0
  f.loopWhile("p", "end", () => {
    f.get("p").simd(LOAD, MEM16).set("x");
    f.get("p");
    body(f);
    f.simd(STORE, MEM16);
    f.bump("p", 16);
  });
  f.code.push(0x0b);
  return f;
}

function expFunc(): Func {
  return unary((f) => {
    f.get("x");
    expOf(f);
  });
}

/** The v128 locals that `emitExp` and `emitTanh` use as scratch: a function calling them declares these. */
export const SCRATCH = ["x", "v", "k", "h", "r", "a", "s", "t", "d"] as const;

/** Replaces the f32x4 on top of the stack by its exp (declare `SCRATCH` first). */
export function emitExp(f: Func): void {
  expOf(f);
}

/** Replaces the f32x4 on top of the stack by its tanh (declare `SCRATCH` first). */
export function emitTanh(f: Func): void {
  f.set("x");
  tanhOf(f);
}

// tanh: x (1 + s P(s)) for |x| < 0.25, s = x^2; else sign(x) (1 - e) / (1 + e), e = e^(-2|x|).
function tanhFunc(): Func {
  return unary(tanhOf);
}

function tanhOf(f: Func): void {
  f.get("x").simd(F_ABS).set("a");
  f.get("x").get("x").simd(F_MUL).set("s");
  horner(f, "s", TANH_POLY);
  f.get("x").simd(F_MUL).set("t"); // the small-argument value, sign included
  f.get("a");
  splat(f, -2).simd(F_MUL);
  expOf(f);
  f.set("r");
  splat(f, 1).get("r").simd(F_SUB);
  splat(f, 1).get("r").simd(F_ADD).simd(F_DIV); // (1 - e) / (1 + e), not negative
  f.get("x").v128([0, 1, 2, 3].flatMap(() => i32Bits(-0x80000000))).simd(AND).simd(OR);
  f.set("r");
  f.get("t").get("r").get("a");
  splat(f, TANH_SMALL).simd(F_LT).simd(BITSELECT);
}

/** Operations the module has. */
export type VOp = "exp" | "tanh";

/** The Wasm SIMD exp and tanh over arrays, on memory of their own. */
export class VMath {
  readonly #memory: WebAssembly.Memory;
  readonly #fns: Record<VOp, (p: number, n: number) => void>;

  private constructor(memory: WebAssembly.Memory, fns: Record<VOp, (p: number, n: number) => void>) {
    this.#memory = memory;
    this.#fns = fns;
  }

  /** Compiles the module; throws where the runtime has no WebAssembly SIMD. */
  static create(): VMath {
    const memory = kernelMemory();
    const bytes = moduleBytes([["exp", expFunc()], ["tanh", tanhFunc()]], 1, false);
    const e = instantiate(bytes, memory) as unknown as Record<VOp, (p: number, n: number) => void>;
    return new VMath(memory, { exp: e.exp, tanh: e.tanh });
  }

  /** `out[i] = op(x[i])`, rounded to f32 (out may be x). */
  run(op: VOp, x: ArrayLike<number>, out: Float32Array): void {
    const n = out.length, vectors = Math.ceil(n / 4), bytes = 16 * vectors;
    reserve(this.#memory, bytes);
    const mem = new Float32Array(this.#memory.buffer, 0, 4 * vectors);
    if (x instanceof Float32Array) mem.set(x);
    else for (let i = 0; i < n; i++) mem[i] = x[i];
    this.#fns[op](0, vectors);
    out.set(mem.subarray(0, n));
  }
}
