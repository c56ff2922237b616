// The gated delta rule: the scan against plain float64 loops, the chunked form against the scan, vjps.

import { grad, normal, ops, randomKey, type Tensor, tensor, uniform } from "../../mod.ts";
import { gatedDeltaRule, gatedDeltaRuleChunked, gatedDeltaRuleFused, unitLowerInverse } from "../../nn/delta_rule.ts";
import { assertClose, assertThrowsMsg, checkGradFD, forEachBackend, inF64, values } from "../helpers.ts";
import { gpuTest, onBoth } from "../core/webgpu/gpu.ts";

interface Inputs {
  readonly q: Tensor;
  readonly k: Tensor;
  readonly v: Tensor;
  readonly g: Tensor;
  readonly beta: Tensor;
  readonly s0: Tensor;
}

// Inputs as the JetBlock makes them: unit-norm keys, beta in (0, 1), g <= 0.
function inputs(B: number, H: number, T: number, K: number, V: number, seed: number): Inputs {
  const key = (i: number) => randomKey(seed * 16 + i);
  return {
    q: normal(key(0), [B, H, T, K]),
    k: ops.l2Normalize(normal(key(1), [B, H, T, K])),
    v: normal(key(2), [B, H, T, V]),
    g: uniform(key(3), [B, H, T], { minval: -1, maxval: 0 }),
    beta: uniform(key(4), [B, H, T], { minval: 0.05, maxval: 1 }),
    s0: normal(key(5), [B, H, K, V]),
  };
}

// The recurrence written out per head in float64, without tensors or matrix identities.
async function reference(x: Inputs, withState: boolean): Promise<{ out: number[]; state: number[] }> {
  const [B, H, T, K] = x.q.shape, V = x.v.shape[3];
  const [q, k, v, g, beta, s0] = await Promise.all([x.q, x.k, x.v, x.g, x.beta, x.s0].map(values));
  const out: number[] = [], state: number[] = [];
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const bh = b * H + h;
      const S = Array.from(
        { length: K },
        (_, i) => Array.from({ length: V }, (_, j) => withState ? s0[(bh * K + i) * V + j] : 0),
      );
      const o: number[][] = [];
      for (let t = 0; t < T; t++) {
        const kt = k.slice((bh * T + t) * K, (bh * T + t + 1) * K),
          qt = q.slice((bh * T + t) * K, (bh * T + t + 1) * K);
        const vt = v.slice((bh * T + t) * V, (bh * T + t + 1) * V);
        const a = Math.exp(g[bh * T + t]), bt = beta[bh * T + t];
        for (const row of S) for (let j = 0; j < V; j++) row[j] *= a;
        const u = vt.map((vj, j) => bt * (vj - S.reduce((s, row, i) => s + row[j] * kt[i], 0)));
        S.forEach((row, i) => u.forEach((uj, j) => (row[j] += kt[i] * uj)));
        o.push(Array.from({ length: V }, (_, j) => S.reduce((s, row, i) => s + row[j] * qt[i], 0)));
      }
      out.push(...o.flat());
      state.push(...S.flat());
    }
  }
  // Rows above are [b][h][t][j]; the tensors are laid out the same way.
  return { out, state };
}

Deno.test("the delta-rule scan equals plain float64 loops over the recurrence", async () => {
  await inF64(async () => {
    for (const [withState, seed] of [[false, 1], [true, 2]] as const) {
      const x = inputs(2, 2, 6, 3, 4, seed);
      const want = await reference(x, withState);
      const got = gatedDeltaRule(x.q, x.k, x.v, x.g, x.beta, withState ? { initialState: x.s0 } : {});
      assertClose(await values(got.out), want.out, { atol: 1e-12, rtol: 1e-10, msg: "out" });
      assertClose(await values(got.state), want.state, { atol: 1e-12, rtol: 1e-10, msg: "state" });
    }
  });
});

forEachBackend(
  "the chunked delta rule equals the scan for ragged lengths, several chunk sizes and an initial state",
  async (backend) => {
    const x = inputs(2, 3, 23, 5, 4, 3);
    // Each chunk size compiles its own triangular inverse on WebGPU (~5 s cold for 11 and more), so
    // there it keeps the sizes that still give many chunks and a ragged last one.
    const chunkSizes = backend === "webgpu" ? [1, 4, 7] : [1, 4, 7, 16, 23, 64];
    for (const initialState of [undefined, x.s0]) {
      const scan = gatedDeltaRule(x.q, x.k, x.v, x.g, x.beta, { initialState });
      const [so, ss] = [await values(scan.out), await values(scan.state)];
      for (const chunkSize of chunkSizes) {
        const c = gatedDeltaRuleChunked(x.q, x.k, x.v, x.g, x.beta, { initialState, chunkSize });
        const msg = `chunk ${chunkSize}, ${initialState ? "with" : "without"} initial state`;
        assertClose(await values(c.out), so, { atol: 2e-5, rtol: 1e-4, msg: `${msg}: out` });
        assertClose(await values(c.state), ss, { atol: 2e-5, rtol: 1e-4, msg: `${msg}: state` });
      }
    }
  },
);

forEachBackend("the chunked delta rule stays accurate when keys are nearly parallel and nothing decays", async () => {
  // The regime where a Neumann-series inverse of (I + A) loses everything in f32; the blocked one must not.
  const B = 1, H = 1, T = 64, K = 8, V = 3;
  const k = ops.l2Normalize(
    normal(randomKey(5), [1, 1, 1, K]).add(3).add(normal(randomKey(6), [B, H, T, K]).mul(0.05)),
  );
  const q = normal(randomKey(7), [B, H, T, K]), v = normal(randomKey(8), [B, H, T, V]);
  const g = ops.full([B, H, T], -1e-4), beta = ops.full([B, H, T], 0.98);
  let want: number[] = [];
  await inF64(async () => void (want = await values(gatedDeltaRule(q, k, v, g, beta).out)));
  const got = await values(gatedDeltaRuleChunked(q, k, v, g, beta, { chunkSize: 64 }).out);
  assertClose(got, want, { atol: 1e-4, rtol: 1e-3 });
});

forEachBackend("unitLowerInverse inverts unit lower-triangular matrices of any size", async () => {
  for (const C of [1, 2, 5, 8, 13]) {
    const M = ops.tril(normal(randomKey(C), [3, C, C]), { k: -1 }).add(
      ops.tril(ops.full([C, C], 1)).sub(ops.tril(ops.full([C, C], 1), { k: -1 })),
    );
    const eye = Array.from({ length: 3 * C * C }, (_, i) => (Math.floor(i / C) % C === i % C ? 1 : 0));
    assertClose(await values(unitLowerInverse(M).matmul(M)), eye, { atol: 1e-4, msg: `C=${C}` });
  }
});

Deno.test("vjps of the scan and of the chunked form match finite differences", async () => {
  await inF64(async () => {
    const x = inputs(1, 2, 5, 3, 2, 4);
    const ro = normal(randomKey(90), [1, 2, 5, 2]), rs = normal(randomKey(91), [1, 2, 3, 2]);
    // Differentiate through g's and beta's parametrizations too, as the JetBlock does.
    const run = (chunked: boolean) => (q: Tensor, k: Tensor, v: Tensor, a: Tensor, b: Tensor, s0: Tensor) => {
      const g = ops.softplus(a).neg(), beta = ops.sigmoid(b), kn = ops.l2Normalize(k);
      const r = chunked
        ? gatedDeltaRuleChunked(q, kn, v, g, beta, { initialState: s0, chunkSize: 2 })
        : gatedDeltaRule(q, kn, v, g, beta, { initialState: s0 });
      return r.out.mul(ro).sum().add(r.state.mul(rs).sum());
    };
    const args = [x.q, x.k, x.v, x.g, x.beta, x.s0];
    await checkGradFD(run(false), args, { atol: 1e-8, rtol: 1e-6, msg: "scan" });
    await checkGradFD(run(true), args, { atol: 1e-8, rtol: 1e-6, msg: "chunked" });
  });
});

Deno.test("mismatched shapes and bad chunk sizes are named in the error", async () => {
  const x = inputs(1, 2, 4, 3, 2, 6);
  await assertThrowsMsg(
    () => gatedDeltaRule(x.q, x.k.slice([0, 0, 0, 0], [1, 2, 3, 3]), x.v, x.g, x.beta),
    "k [1,2,3,3]",
    "q [1,2,4,3]",
  );
  await assertThrowsMsg(() => gatedDeltaRule(x.q, x.k, x.v, x.g.reshape([1, 2, 4, 1]), x.beta), "g [", "[B, H, T]");
  await assertThrowsMsg(
    () => gatedDeltaRule(x.q, x.k, x.v, x.g, x.beta, { initialState: tensor([1]) }),
    "initialState [1]",
    "[1, 2, 3, 2]",
  );
  await assertThrowsMsg(() => gatedDeltaRuleChunked(x.q, x.k, x.v, x.g, x.beta, { chunkSize: 0 }), "chunkSize", "0");
});

gpuTest("the scan and the chunked delta rule agree between WebGPU and the CPU, values and gradients", async () => {
  // 40 scan steps concatenate 40 outputs: more buffers than one kernel may bind on most adapters.
  const x = inputs(1, 2, 40, 4, 3, 7);
  const ro = normal(randomKey(92), [1, 2, 40, 3]);
  const { gpu, cpu } = await onBoth(() => {
    const scan = gatedDeltaRule(x.q, x.k, x.v, x.g, x.beta, { initialState: x.s0 });
    const loss = (q: Tensor, v: Tensor, s0: Tensor) =>
      gatedDeltaRuleChunked(q, x.k, v, x.g, x.beta, { initialState: s0, chunkSize: 16 }).out.mul(ro).sum();
    return [scan.out, scan.state, ...grad(loss, { argnums: [0, 1, 2] })(x.q, x.v, x.s0)];
  });
  gpu.forEach((g, i) => assertClose(g, cpu[i], { rtol: 1e-3, atol: 1e-5, msg: `output ${i}` }));
});

Deno.test("the fused scan equals plain float64 loops over the recurrence, with and without a state", async () => {
  await inF64(async () => {
    for (const [T, withState] of [[1, false], [7, true], [13, false]] as const) {
      const x = inputs(2, 2, T, 3, 4, 20 + T);
      const r = gatedDeltaRuleFused(x.q, x.k, x.v, x.g, x.beta, withState ? { initialState: x.s0 } : {});
      const want = await reference(x, withState);
      assertClose(await values(r.out), want.out, { rtol: 1e-12, atol: 1e-12, msg: `out T=${T}` });
      assertClose(await values(r.state), want.state, { rtol: 1e-12, atol: 1e-12, msg: `state T=${T}` });
    }
  });
});

Deno.test("the fused scan's reverse kernel matches finite differences and the scan's own gradients", async () => {
  await inF64(async () => {
    const x = inputs(1, 2, 6, 3, 2, 31);
    const ro = normal(randomKey(93), [1, 2, 6, 2]), rs = normal(randomKey(94), [1, 2, 3, 2]);
    const run =
      (rule: typeof gatedDeltaRule) => (q: Tensor, k: Tensor, v: Tensor, a: Tensor, b: Tensor, s0: Tensor) => {
        const r = rule(q, ops.l2Normalize(k), v, ops.softplus(a).neg(), ops.sigmoid(b), { initialState: s0 });
        return r.out.mul(ro).sum().add(r.state.mul(rs).sum());
      };
    const args = [x.q, x.k, x.v, x.g, x.beta, x.s0] as const;
    await checkGradFD(run(gatedDeltaRuleFused), args, { atol: 1e-8, rtol: 1e-6, msg: "fused" });
    const all = [0, 1, 2, 3, 4, 5] as const;
    const gf: Tensor[] = grad(run(gatedDeltaRuleFused), { argnums: all })(...args);
    const gs: Tensor[] = grad(run(gatedDeltaRule), { argnums: all })(...args);
    for (const i of all) {
      assertClose(await values(gf[i]), await values(gs[i]), { rtol: 1e-10, atol: 1e-12, msg: `arg ${i}` });
    }
  });
});

Deno.test("second derivatives through the fused scan fail with a sentence naming the alternative", async () => {
  const x = inputs(1, 1, 3, 2, 2, 40);
  const f = (v: Tensor) => gatedDeltaRuleFused(x.q, x.k, v, x.g, x.beta).out.square().sum();
  await assertThrowsMsg(
    () => grad((v: Tensor) => grad(f)(v).sum())(x.v),
    "second derivatives",
    "gatedDeltaRuleChunked",
  );
});

gpuTest("the fused scan and its gradients agree between WebGPU and the CPU", async () => {
  const x = inputs(2, 2, 33, 8, 5, 41);
  const ro = normal(randomKey(95), [2, 2, 33, 5]);
  const { gpu, cpu } = await onBoth(() => {
    const r = gatedDeltaRuleFused(x.q, x.k, x.v, x.g, x.beta, { initialState: x.s0 });
    const loss = (q: Tensor, k: Tensor, v: Tensor, g: Tensor, b: Tensor, s0: Tensor) =>
      gatedDeltaRuleFused(q, k, v, g, b, { initialState: s0 }).out.mul(ro).sum();
    const gs: Tensor[] = grad(loss, { argnums: [0, 1, 2, 3, 4, 5] })(x.q, x.k, x.v, x.g, x.beta, x.s0);
    return [r.out, r.state, ...gs];
  });
  gpu.forEach((g, i) => assertClose(g, cpu[i], { rtol: 1e-3, atol: 1e-4, msg: `output ${i}` }));
});
