// The gated delta-rule scan's generated code: the forward recurrence and the reverse scan, four
// value columns a f32x4 vector (see scan.ts for the layout of their memory and the host side).

import { Func, I32, V128 } from "./asm.ts";

// SIMD opcodes (after the 0xfd prefix).
const LOAD = 0x00, SPLAT = 0x09, STORE = 0x0b;
const ADD = 0xe4, SUB = 0xe5, MUL = 0xe6, NEG = 0xe1;
const MEM = [4, 0] as const, MEM4 = [2, 0] as const;
const I_ADD = 0x6a, I_SUB = 0x6b, I_MUL = 0x6c;

function zero(f: Func): Func {
  return f.v128(new Array(16).fill(0));
}

// Stores zero vectors at `n` vectors from local `p` (clobbers `p` and `jb`).
function zeroVectors(f: Func, p: string, n: string): void {
  f.i32(0).set("jb").whileLt("jb", n, () => {
    f.get(p);
    zero(f).simd(STORE, MEM).bump(p, 16).bump("jb", 1);
  });
}

// (k, v, a, beta, s0, out, scratch, BH, T, K, NV): byte addresses of k [BH,T,K], v [BH,T,NV*4],
// a and beta [BH,T], s0 [BH,K,NV*4], out [BH,T,K,NV*4] and NV vectors of scratch; sizes in elements.
function forward(): Func {
  const f = new Func(["k", "v", "a", "b", "s0", "out", "p", "BH", "T", "K", "NV"]);
  for (const l of ["bh", "t", "i", "jb", "prev", "cur", "q", "c", "pp", "kt", "row"]) f.local(l, I32);
  for (const l of ["av", "bv", "kv", "x"]) f.local(l, V128);
  // row = K * NV * 16, the bytes of one state.
  f.get("K").get("NV").op(I_MUL).i32(16).op(I_MUL).set("row");
  f.get("out").set("cur");
  f.i32(0).set("bh").whileLt("bh", "BH", () => {
    f.i32(0).set("t").whileLt("t", "T", () => {
      // prev = t == 0 ? s0 + bh * row : cur - row
      f.get("t").op(0x45, 0x04, 0x40); // i32.eqz; if
      f.get("s0").get("bh").get("row").op(I_MUL).op(I_ADD).set("prev");
      f.op(0x05).get("cur").get("row").op(I_SUB).set("prev").op(0x0b);
      f.get("a").simd(SPLAT, MEM4).set("av").get("b").simd(SPLAT, MEM4).set("bv");
      f.get("p").set("pp");
      zeroVectors(f, "pp", "NV");
      // p = sum_i (a s_i) k_i
      f.get("prev").set("q").get("k").set("kt");
      f.i32(0).set("i").whileLt("i", "K", () => {
        f.get("kt").simd(SPLAT, MEM4).set("kv").get("p").set("pp");
        f.i32(0).set("jb").whileLt("jb", "NV", () => {
          f.get("pp").get("pp").simd(LOAD, MEM).get("av").get("q").simd(LOAD, MEM).simd(MUL).get("kv").simd(MUL);
          f.simd(ADD).simd(STORE, MEM).bump("pp", 16).bump("q", 16).bump("jb", 1);
        });
        f.bump("kt", 4).bump("i", 1);
      });
      // u = beta (v - p), in place of p
      f.get("p").set("pp");
      f.i32(0).set("jb").whileLt("jb", "NV", () => {
        f.get("pp").get("bv").get("v").simd(LOAD, MEM).get("pp").simd(LOAD, MEM).simd(SUB).simd(MUL);
        f.simd(STORE, MEM).bump("pp", 16).bump("v", 16).bump("jb", 1);
      });
      // s_i = a s_i + k_i u
      f.get("prev").set("q").get("cur").set("c").get("k").set("kt");
      f.i32(0).set("i").whileLt("i", "K", () => {
        f.get("kt").simd(SPLAT, MEM4).set("kv").get("p").set("pp");
        f.i32(0).set("jb").whileLt("jb", "NV", () => {
          f.get("c").get("av").get("q").simd(LOAD, MEM).simd(MUL).get("kv").get("pp").simd(LOAD, MEM).simd(MUL);
          f.simd(ADD).simd(STORE, MEM).bump("c", 16).bump("pp", 16).bump("q", 16).bump("jb", 1);
        });
        f.bump("kt", 4).bump("i", 1);
      });
      f.get("kt").set("k").get("c").set("cur").bump("a", 4).bump("b", 4).bump("t", 1);
    });
    f.bump("bh", 1);
  });
  return f;
}

// (dS, k, v, a, beta, s0, S, dk, dv, db, dg, ds, scratch, BH, T, K, NV): as forward, with dS and S
// [BH,T,K,NV*4], outputs dk [BH,T,K,NV*4], dv, db, dg [BH,T,NV*4], ds [BH,K,NV*4] (ds0 at the end)
// and 3 NV vectors of scratch.
function backward(): Func {
  const f = new Func(["dS", "k", "v", "a", "b", "s0", "S", "dk", "dv", "db", "dg", "ds", "p", "BH", "T", "K", "NV"]);
  const ints = ["bh", "t", "bt", "i", "jb", "sp", "q", "d", "e", "pp", "du", "da", "kt", "row", "vrow", "o"];
  for (const l of ints) f.local(l, I32);
  for (const l of ["av", "bv", "kv", "x", "y", "z", "w"]) f.local(l, V128);
  f.get("K").get("NV").op(I_MUL).i32(16).op(I_MUL).set("row");
  f.get("NV").i32(16).op(I_MUL).set("vrow");
  const at = (base: string, n: string, stride: string) => f.get(base).get(n).get(stride).op(I_MUL).op(I_ADD);
  f.i32(0).set("bh").whileLt("bh", "BH", () => {
    at("ds", "bh", "row").set("d");
    f.get("d").set("e");
    f.i32(0).set("i").whileLt("i", "K", () => {
      zeroVectors(f, "e", "NV");
      f.bump("i", 1);
    });
    f.get("T").set("t");
    f.whileLt("bh", "BH", () => { // while t > 0 (bh < BH holds here): t counts down
      f.get("t").op(0x45, 0x0d, 1); // i32.eqz; br_if 1 (out)
      f.bump("t", -1);
      f.get("bh").get("T").op(I_MUL).get("t").op(I_ADD).set("bt");
      f.get("t").op(0x45, 0x04, 0x40);
      at("s0", "bh", "row").set("sp");
      f.op(0x05);
      f.get("S").get("bt").i32(1).op(I_SUB).get("row").op(I_MUL).op(I_ADD).set("sp").op(0x0b);
      f.get("a").get("bt").i32(4).op(I_MUL).op(I_ADD).simd(SPLAT, MEM4).set("av");
      f.get("b").get("bt").i32(4).op(I_MUL).op(I_ADD).simd(SPLAT, MEM4).set("bv");
      f.get("k").get("bt").get("K").op(I_MUL).i32(4).op(I_MUL).op(I_ADD).set("kt");
      f.get("p").get("vrow").op(I_ADD).set("du");
      f.get("du").get("vrow").op(I_ADD).set("da");
      f.get("p").set("pp");
      f.get("NV").i32(2).op(I_MUL).set("o");
      zeroVectors(f, "pp", "o"); // p and du
      // ds_i += dS_i; p += (a sp_i) k_i; du += ds_i k_i
      f.get("d").set("e").get("sp").set("q");
      at("dS", "bt", "row").set("o");
      f.i32(0).set("i").whileLt("i", "K", () => {
        f.get("kt").get("i").i32(4).op(I_MUL).op(I_ADD).simd(SPLAT, MEM4).set("kv");
        f.get("p").set("pp").get("p").get("vrow").op(I_ADD).set("du");
        f.i32(0).set("jb").whileLt("jb", "NV", () => {
          f.get("e").simd(LOAD, MEM).get("o").simd(LOAD, MEM).simd(ADD).set("x");
          f.get("e").get("x").simd(STORE, MEM);
          f.get("pp").get("pp").simd(LOAD, MEM).get("av").get("q").simd(LOAD, MEM).simd(MUL).get("kv").simd(MUL);
          f.simd(ADD).simd(STORE, MEM);
          f.get("du").get("du").simd(LOAD, MEM).get("x").get("kv").simd(MUL).simd(ADD).simd(STORE, MEM);
          for (const l of ["e", "o", "pp", "q", "du"]) f.bump(l, 16);
          f.bump("jb", 1);
        });
        f.bump("i", 1);
      });
      // u = beta (v - p) into p; dv = du beta; dbeta = du (v - p); dp = -(du beta) into du; da = 0
      f.get("p").set("pp").get("p").get("vrow").op(I_ADD).set("du");
      f.get("du").get("vrow").op(I_ADD).set("da");
      at("v", "bt", "vrow").set("q");
      at("dv", "bt", "vrow").set("o");
      at("db", "bt", "vrow").set("e");
      f.i32(0).set("jb").whileLt("jb", "NV", () => {
        f.get("q").simd(LOAD, MEM).get("pp").simd(LOAD, MEM).simd(SUB).set("x"); // v - p
        f.get("du").simd(LOAD, MEM).set("y");
        f.get("y").get("bv").simd(MUL).set("z");
        f.get("pp").get("bv").get("x").simd(MUL).simd(STORE, MEM);
        f.get("o").get("z").simd(STORE, MEM);
        f.get("e").get("y").get("x").simd(MUL).simd(STORE, MEM);
        f.get("du").get("z").simd(NEG).simd(STORE, MEM);
        f.get("da");
        zero(f).simd(STORE, MEM);
        for (const l of ["q", "o", "e", "pp", "du", "da"]) f.bump(l, 16);
        f.bump("jb", 1);
      });
      // dk_i = ds_i u + (dp a) sp_i; dsd = ds_i + dp k_i; da += dsd sp_i; ds_i = a dsd
      f.get("d").set("e").get("sp").set("q");
      at("dk", "bt", "row").set("o");
      f.i32(0).set("i").whileLt("i", "K", () => {
        f.get("kt").get("i").i32(4).op(I_MUL).op(I_ADD).simd(SPLAT, MEM4).set("kv");
        f.get("p").set("pp").get("p").get("vrow").op(I_ADD).set("du");
        f.get("du").get("vrow").op(I_ADD).set("da");
        f.i32(0).set("jb").whileLt("jb", "NV", () => {
          f.get("e").simd(LOAD, MEM).set("x").get("q").simd(LOAD, MEM).set("y").get("du").simd(LOAD, MEM).set("w");
          f.get("o").get("x").get("pp").simd(LOAD, MEM).simd(MUL).get("w").get("av").simd(MUL).get("y").simd(MUL);
          f.simd(ADD).simd(STORE, MEM);
          f.get("x").get("w").get("kv").simd(MUL).simd(ADD).set("z");
          f.get("da").get("da").simd(LOAD, MEM).get("z").get("y").simd(MUL).simd(ADD).simd(STORE, MEM);
          f.get("e").get("av").get("z").simd(MUL).simd(STORE, MEM);
          for (const l of ["e", "q", "o", "pp", "du", "da"]) f.bump(l, 16);
          f.bump("jb", 1);
        });
        f.bump("i", 1);
      });
      // dg = da a
      f.get("p").get("vrow").op(I_ADD).get("vrow").op(I_ADD).set("da");
      at("dg", "bt", "vrow").set("o");
      f.i32(0).set("jb").whileLt("jb", "NV", () => {
        f.get("o").get("da").simd(LOAD, MEM).get("av").simd(MUL).simd(STORE, MEM);
        f.bump("o", 16).bump("da", 16).bump("jb", 1);
      });
    });
    f.bump("bh", 1);
  });
  return f;
}

// (dk, dv, db, dg, ds, out, BH, T, K, NV, V): the reverse scan's outputs, four value columns a
// vector, rearranged into deltaScanGrad's layout, one row of L = T (K + 3) + K floats per (bh, j):
// dk [T, K], dv, dbeta, dg [T], ds0 [K]. Each vector's lanes go to four rows (those of columns
// past V are not written).
function unpack(): Func {
  const f = new Func(["dk", "dv", "db", "dg", "ds", "out", "BH", "T", "K", "NV", "V"]);
  const obs = ["ob0", "ob1", "ob2", "ob3"];
  for (const l of ["bh", "jb", "n", "cnt", "q", "w", "nl", "rowL", "vrow", ...obs]) f.local(l, I32);
  f.local("vec", V128);
  // rowL = L * 4 bytes; vrow = NV * 16 bytes
  f.get("T").get("K").i32(3).op(I_ADD).op(I_MUL).get("K").op(I_ADD).i32(4).op(I_MUL).set("rowL");
  f.get("NV").i32(16).op(I_MUL).set("vrow");
  // Copies `cnt` vectors from q (vrow apart) to the lanes' rows from byte w on, 4 bytes a vector.
  const lanes = () => {
    f.i32(0).set("n").whileLt("n", "cnt", () => {
      f.get("q").simd(LOAD, MEM).set("vec");
      obs.forEach((ob, l) => {
        if (l > 0) f.get("nl").i32(l).op(0x4a, 0x04, 0x40); // i32.gt_s; if
        f.get(ob).get("w").op(I_ADD).get("vec").simd(0x1f).op(l).op(0x38, 2, 0); // f32x4.extract_lane; f32.store
        if (l > 0) f.op(0x0b);
      });
      f.bump("q", "vrow").bump("w", 4).bump("n", 1);
    });
  };
  // q = base + ((bh * rows) * NV + jb) * 16: vector jb of the first of a bh's `rows` rows
  const start = (base: string, rows: () => void) => {
    f.get(base).get("bh");
    rows();
    f.op(I_MUL).get("NV").op(I_MUL).get("jb").op(I_ADD).i32(16).op(I_MUL).op(I_ADD).set("q");
  };
  f.i32(0).set("bh").whileLt("bh", "BH", () => {
    f.i32(0).set("jb").whileLt("jb", "NV", () => {
      // nl = V - 4 jb (lanes in use, 4 or fewer); ob_l = out + (bh V + 4 jb + l) rowL
      f.get("V").get("jb").i32(4).op(I_MUL).op(I_SUB).set("nl");
      obs.forEach((ob, l) => {
        f.get("out").get("bh").get("V").op(I_MUL).get("jb").i32(4).op(I_MUL).op(I_ADD).i32(l).op(I_ADD);
        f.get("rowL").op(I_MUL).op(I_ADD).set(ob);
      });
      f.i32(0).set("w");
      start("dk", () => f.get("T").get("K").op(I_MUL));
      f.get("T").get("K").op(I_MUL).set("cnt");
      lanes();
      f.get("T").set("cnt");
      for (const base of ["dv", "db", "dg"]) {
        start(base, () => f.get("T"));
        lanes();
      }
      start("ds", () => f.get("K"));
      f.get("K").set("cnt");
      lanes();
      f.bump("jb", 1);
    });
    f.bump("bh", 1);
  });
  return f;
}

/** The scan module's functions: "forward", "backward" and "unpack", in that order. */
export const scanFuncs = (): [string, Func][] => [["forward", forward()], ["backward", backward()], [
  "unpack",
  unpack(),
]];
