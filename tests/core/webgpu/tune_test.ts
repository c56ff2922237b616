// Matmul variants per adapter: every candidate against the reference, the tuner's one measurement per
// size class, its cache file keyed by the adapter, and its off switch.

import { normal, randomKey, realize, setBackend, type Tensor } from "../../../mod.ts";
import { leafNode } from "../../../core/graph.ts";
import { requestGpu } from "../../../core/webgpu/device.ts";
import { WebGpuRunner } from "../../../core/webgpu/run.ts";
import { sizeClass } from "../../../core/webgpu/tune.ts";
import { variantName, VARIANTS } from "../../../core/webgpu/variants.ts";
import { assertClose } from "../../helpers.ts";
import { gpuTest } from "./gpu.ts";

// Realizes `make()`'s tensors on `runner` and returns them (the inputs must be host values).
async function on(runner: WebGpuRunner, make: () => Tensor[]): Promise<Float32Array[]> {
  const nodes = make().map((t) => t.node);
  const leaves = nodes.map((n) => leafNode(n.shape, n.dtype));
  return (await runner.realize(nodes, leaves, leaves)) as Float32Array[];
}

gpuTest(
  "every matmul variant the tuner may choose matches the CPU, transposed, batched, fused and ragged operands included",
  async () => {
    await setBackend("cpu");
    const a = normal(randomKey(1), [2, 37, 20]),
      b = normal(randomKey(2), [2, 20, 29]),
      c = normal(randomKey(3), [29, 20]),
      d = normal(randomKey(6), [70, 21]),
      e = normal(randomKey(7), [21, 67]);
    const make = () => [
      a.matmul(b),
      a.matmul(c.transpose().expandDims(0).broadcastTo([2, 20, 29])),
      b.transpose().matmul(a.transpose()),
      // K = 21 (steps of 1), blocks of rows and columns cut at both edges, an elementwise prologue
      // on A and an epilogue after the product.
      d.mul(0.5).exp().matmul(e).tanh(),
      d.matmul(e.transpose().mul(d.slice([0, 0], [67, 21])).transpose()),
    ];
    await realize([a, b, c, d, e]);
    const reference = (await Promise.all(make().map((t) => t.data()))) as Float32Array[];
    const gpu = (await requestGpu())!;
    let first: Float32Array[] | null = null;
    for (const v of VARIANTS) {
      const name = variantName(v);
      const got = await on(new WebGpuRunner(gpu, { variant: v, tuning: { enabled: false } }), make);
      got.forEach((g, i) => assertClose(g, reference[i], { rtol: 1e-4, atol: 1e-5, msg: `${name} output ${i}` }));
      // A variant changes which thread computes an output and where its operands are staged, never
      // the order of its sum: the tuner's choice, made by timing, must not change a single bit.
      first ??= got;
      got.forEach((g, i) => {
        const j = g.findIndex((x, k) => !Object.is(x, first![i][k]));
        if (j >= 0) {
          throw new Error(`${name} output ${i}[${j}]: ${g[j]} where ${variantName(VARIANTS[0])} gave ${first![i][j]}`);
        }
      });
    }
  },
);

gpuTest(
  "the tuner measures a size class once, keeps the fastest variant per adapter on disk, and can be off",
  async () => {
    const gpu = (await requestGpu())!;
    const dir = await Deno.makeTempDir();
    const cacheFile = `${dir}/tiles.json`;
    try {
      await setBackend("cpu");
      const a = normal(randomKey(4), [128, 192]), b = normal(randomKey(5), [192, 128]);
      await realize([a, b]);
      const reference = await a.matmul(b).data();
      const cls = sizeClass(1, 128, 128, 192);

      const first = new WebGpuRunner(gpu, { tuning: { cacheFile, budgetMs: 400 } });
      const [out] = await on(first, () => [a.matmul(b)]);
      assertClose(out, reference, { rtol: 1e-4, atol: 1e-5 });
      await on(first, () => [a.matmul(b).mul(2)]); // the same size class: nothing more to measure
      if (first.tuner.measured !== 1) throw new Error(`measured ${first.tuner.measured} size classes, not 1`);
      const chosen = first.tuner.choice(cls)!;
      if (!VARIANTS.includes(chosen)) throw new Error(`chose ${JSON.stringify(chosen)}`);
      const saved = JSON.parse(await Deno.readTextFile(cacheFile));
      if (saved[first.tuner.adapterKey]?.[cls] !== variantName(chosen)) {
        throw new Error(`the cache file holds ${JSON.stringify(saved)}`);
      }

      // A later session on the same adapter reads the choice instead of measuring.
      const second = new WebGpuRunner(gpu, { tuning: { cacheFile } });
      await on(second, () => [a.matmul(b)]);
      if (second.tuner.measured !== 0 || second.tuner.choice(cls) !== chosen) {
        const got = second.tuner.choice(cls);
        throw new Error(`the second session measured ${second.tuner.measured} and chose ${got && variantName(got)}`);
      }

      // Off: nothing measured, nothing written, the built-in variant.
      const other = `${dir}/off.json`;
      const off = new WebGpuRunner(gpu, { tuning: { enabled: false, cacheFile: other } });
      const [plain] = await on(off, () => [a.matmul(b)]);
      assertClose(plain, reference, { rtol: 1e-4, atol: 1e-5 });
      if (off.tuner.measured !== 0) throw new Error("a disabled tuner measured");
      const exists = await Deno.stat(other).then(() => true, () => false);
      if (exists) throw new Error("a disabled tuner wrote its cache file");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);
