// Measuring what a device's shader builtins are worth: WGSL lets sin and cos be coarse (an absolute
// error of 2^-11), and some adapters use that (SwiftShader: 2e-4), so kernels there use their own.

const N = 256;
const SHADER = `@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let i = id.x;
  if (i >= ${N}u) { return; }
  y[2u * i] = sin(x[i]);
  y[2u * i + 1u] = cos(x[i]);
}`;

/**
 * True when the device's sin and cos agree with float64 to 1e-5 on [-10, 10] (one small kernel and
 * one readback); false when they do not, or when measuring fails.
 */
export async function accurateTrig(device: GPUDevice): Promise<boolean> {
  const xs = Float32Array.from({ length: N }, (_, i) => -10 + (20 * i) / (N - 1));
  const input = device.createBuffer({ size: xs.byteLength, usage: 0x80 | 0x8 }); // STORAGE | COPY_DST
  const output = device.createBuffer({ size: 2 * xs.byteLength, usage: 0x80 | 0x4 }); // STORAGE | COPY_SRC
  const staging = device.createBuffer({ size: 2 * xs.byteLength, usage: 0x1 | 0x8 }); // MAP_READ | COPY_DST
  try {
    device.queue.writeBuffer(input, 0, xs);
    const module = device.createShaderModule({ code: SHADER, label: "sin and cos accuracy" });
    const pipeline = await device.createComputePipelineAsync({
      layout: "auto",
      compute: { module, entryPoint: "main" },
    });
    const entries = [input, output].map((buffer, binding) => ({ binding, resource: { buffer } }));
    const encoder = device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries }));
    pass.dispatchWorkgroups(N / 64);
    pass.end();
    encoder.copyBufferToBuffer(output, 0, staging, 0, staging.size);
    device.queue.submit([encoder.finish()]);
    await staging.mapAsync(1 /* READ */);
    const ys = new Float32Array(staging.getMappedRange().slice(0));
    staging.unmap();
    let worst = 0;
    xs.forEach((x, i) => {
      worst = Math.max(worst, Math.abs(ys[2 * i] - Math.sin(x)), Math.abs(ys[2 * i + 1] - Math.cos(x)));
    });
    return worst <= 1e-5;
  } catch {
    return false;
  } finally {
    for (const b of [input, output, staging]) b.destroy();
  }
}
