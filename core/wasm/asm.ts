// A small WebAssembly binary writer: LEB128 numbers, the sections one kernel module needs, and
// the instructions the kernels use (core and 128-bit SIMD), so modules are generated at run time.

/** Value types of locals and parameters. */
export const I32 = 0x7f, F32 = 0x7d, V128 = 0x7b;

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    const done = (n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return out;
  }
}

const name = (s: string) => [...uleb(s.length), ...new TextEncoder().encode(s)];
const vec = (items: number[][]) => [...uleb(items.length), ...items.flat()];
const section = (id: number, body: number[]) => [id, ...uleb(body.length), ...body];

/** The body of one function being written: locals by name, and its instruction bytes. */
export class Func {
  readonly params: readonly string[];
  readonly #locals = new Map<string, number>();
  readonly #localTypes: number[] = [];
  // v128 constants, by their bytes: the local each is set in once, at the function's start.
  readonly #consts = new Map<string, { readonly local: string; readonly bytes: readonly number[] }>();
  readonly code: number[] = [];

  /** `params` are i32 (pointers and sizes), in call order. */
  constructor(params: readonly string[]) {
    this.params = params;
    params.forEach((p, i) => this.#locals.set(p, i));
  }

  /** Declares a local of a value type. */
  local(n: string, type: number): this {
    if (this.#locals.has(n)) throw new Error(`wasm: a local named ${n} is declared twice`);
    this.#locals.set(n, this.params.length + this.#localTypes.length);
    this.#localTypes.push(type);
    return this;
  }

  #idx(n: string): number {
    const i = this.#locals.get(n);
    if (i === undefined) throw new Error(`wasm: no local named ${n}`);
    return i;
  }

  get(n: string): this {
    this.code.push(0x20, ...uleb(this.#idx(n)));
    return this;
  }
  set(n: string): this {
    this.code.push(0x21, ...uleb(this.#idx(n)));
    return this;
  }
  tee(n: string): this {
    this.code.push(0x22, ...uleb(this.#idx(n)));
    return this;
  }
  i32(v: number): this {
    this.code.push(0x41, ...sleb(v | 0));
    return this;
  }
  /**
   * Pushes the v128 constant of these 16 bytes. It is set in a local of its own once, at the
   * function's start, and read from there: V8 rebuilds an inline v128.const at every use, which in
   * a loop cost more than the arithmetic of a polynomial.
   */
  v128(bytes: readonly number[]): this {
    if (bytes.length !== 16) throw new Error(`wasm: a v128 constant has 16 bytes, not ${bytes.length}`);
    const key = bytes.join(",");
    let c = this.#consts.get(key);
    if (c === undefined) {
      const local = `\u0000const${this.#consts.size}`;
      this.local(local, V128);
      this.#consts.set(key, c = { local, bytes: [...bytes] });
    }
    return this.get(c.local);
  }
  /** Raw opcodes (i32.add is 0x6a, i32.mul 0x6c, i32.lt_u 0x49, i32.eqz 0x45, ...). */
  op(...bytes: number[]): this {
    this.code.push(...bytes);
    return this;
  }
  /** A 128-bit SIMD instruction (0xfd prefix), with an optional memory argument (align, offset). */
  simd(opcode: number, mem?: readonly [number, number]): this {
    this.code.push(0xfd, ...uleb(opcode));
    if (mem) this.code.push(...uleb(mem[0]), ...uleb(mem[1]));
    return this;
  }
  /** f32.load with a byte offset. */
  f32Load(offset = 0): this {
    this.code.push(0x2a, 2, ...uleb(offset));
    return this;
  }
  /** `local = local + step` for an i32 local. */
  bump(n: string, step: number | string): this {
    this.get(n);
    if (typeof step === "number") this.i32(step);
    else this.get(step);
    return this.op(0x6a).set(n);
  }
  /** `do { body } while (local < limit)`: the body runs at least once, so callers guard empty ranges. */
  loopWhile(counter: string, limit: string, body: () => void): this {
    this.code.push(0x03, 0x40); // loop (no result)
    body();
    this.get(counter).get(limit).op(0x49, 0x0d, 0); // i32.lt_u; br_if 0
    this.code.push(0x0b);
    return this;
  }

  /** `while (local < limit) { body }` for i32 locals (unsigned): the body may run zero times. */
  whileLt(counter: string, limit: string, body: () => void): this {
    this.code.push(0x02, 0x40, 0x03, 0x40); // block, loop
    this.get(counter).get(limit).op(0x4f, 0x0d, 1); // i32.ge_u; br_if 1 (out of the block)
    body();
    this.code.push(0x0c, 0, 0x0b, 0x0b); // br 0 (again); end loop; end block
    return this;
  }

  /** The function body as the code section holds it. */
  body(): number[] {
    const groups = this.#localTypes.map((t) => [1, t]);
    const consts = [...this.#consts.values()].flatMap((
      c,
    ) => [0xfd, 0x0c, ...c.bytes, 0x21, ...uleb(this.#idx(c.local))]);
    const bytes = [...vec(groups), ...consts, ...this.code, 0x0b];
    return [...uleb(bytes.length), ...bytes];
  }
}

/** A module importing `env.mem` (at least `pages` pages) and exporting each function by name. */
export function moduleBytes(
  funcs: readonly (readonly [string, Func])[],
  pages: number,
  shared: boolean,
): Uint8Array<ArrayBuffer> {
  const types = funcs.map(([, f]) => [0x60, ...vec(f.params.map(() => [I32])), 0]);
  const limits = shared ? [0x03, ...uleb(pages), ...uleb(65536)] : [0x00, ...uleb(pages)];
  const imports = vec([[...name("env"), ...name("mem"), 0x02, ...limits]]);
  const bytes = [
    0x00,
    0x61,
    0x73,
    0x6d,
    1,
    0,
    0,
    0,
    ...section(1, vec(types)),
    ...section(2, imports),
    ...section(3, vec(funcs.map((_, i) => uleb(i)))),
    ...section(7, vec(funcs.map(([n], i) => [...name(n), 0x00, ...uleb(i)]))),
    ...section(10, vec(funcs.map(([, f]) => f.body()))),
  ];
  return Uint8Array.from(bytes);
}

/** The exports of module `bytes` instantiated over `memory` (its `env.mem` import). */
export function instantiate(bytes: BufferSource, memory: WebAssembly.Memory): WebAssembly.Exports {
  return new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { mem: memory } }).exports;
}

/**
 * The exports of a module whose bytes lie in `memory` at `[at, at + len)`, instantiated over it (a
 * worker meeting a kernel the calling thread compiled and left there): compiled from a copy, as a
 * module is not compiled from shared memory.
 */
export function instantiateFrom(memory: WebAssembly.Memory, at: number, len: number): WebAssembly.Exports {
  return instantiate(new Uint8Array(memory.buffer, at, len).slice(), memory);
}
