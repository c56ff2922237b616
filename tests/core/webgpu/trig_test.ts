// sin and cos on adapters whose own are coarse: jetfold's helper against float64, here on any adapter.

import { tensor } from "../../../mod.ts";
import { leafNode } from "../../../core/graph.ts";
import { requestGpu } from "../../../core/webgpu/device.ts";
import { WebGpuRunner } from "../../../core/webgpu/run.ts";
import { assertClose } from "../../helpers.ts";
import { gpuTest } from "./gpu.ts";

gpuTest(
  "jetfold's own sin and cos agree with float64 to 1e-6 on [-300, 300], and give NaN for infinities",
  async () => {
    // A runner on this device that believes its sin and cos coarse, as on SwiftShader.
    const runner = new WebGpuRunner({ ...(await requestGpu())!, accurateTrig: false });
    const xs = Float32Array.from({ length: 4001 }, (_, i) => (i - 2000) * 0.15 + 0.003 * (i % 7));
    const special = [0, -0, Math.PI / 2, -Math.PI, 1e-30, Infinity, -Infinity, NaN];
    const x = tensor(Float32Array.from([...xs, ...special]));
    const nodes = [x.sin().node, x.cos().node];
    const leaves = nodes.map((n) => leafNode(n.shape, n.dtype));
    const [sin, cos] = await runner.realize(nodes, leaves, leaves);
    const all = [...xs, ...special.map(Math.fround)];
    assertClose(sin, all.map(Math.sin), { atol: 1e-6, rtol: 0, msg: "sin" });
    assertClose(cos, all.map(Math.cos), { atol: 1e-6, rtol: 0, msg: "cos" });
  },
);
