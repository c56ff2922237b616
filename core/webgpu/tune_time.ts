// Timing one planned kernel on a device for the tuner: its own buffers, a warm-up run, then the
// least of a few runs by timestamp queries where the device has them, else the wall over several.

import type { Gpu } from "./device.ts";
import { gridOf } from "./dispatch.ts";
import type { KernelPlan } from "./plan.ts";

/**
 * Milliseconds of one run of `kernel` (whose inputs are leaves; their contents do not matter), or
 * null when the device reported an error for it: its time is not trusted. `budgetMs` bounds the
 * repetitions.
 */
export async function timeKernel(gpu: Gpu, kernel: KernelPlan, budgetMs: number): Promise<number | null> {
  const device = gpu.device;
  // The measurement's own errors stay here: left uncaptured, they would fail the user's next
  // realization with a message about a kernel it never asked for.
  device.pushErrorScope("out-of-memory");
  device.pushErrorScope("internal");
  device.pushErrorScope("validation");
  const made: GPUBuffer[] = [];
  const buffer = (bytes: number, usage: number) => {
    const buf = device.createBuffer({ size: Math.max(16, Math.ceil(bytes / 16) * 16), usage });
    made.push(buf);
    return buf;
  };
  const measure = async (): Promise<number> => {
    const module = device.createShaderModule({ code: kernel.wgsl, label: `tuning ${kernel.label}` });
    const pipeline = await device.createComputePipelineAsync({
      layout: "auto",
      compute: { module, entryPoint: "main" },
    });
    const entries: GPUBindGroupEntry[] = [...kernel.inputs, ...kernel.outputs].map((x, j) => ({
      binding: j + 1,
      resource: { buffer: buffer(4 * x.size, 0x80) },
    }));
    if (kernel.uniforms.length > 0) {
      const words = new Uint32Array(Math.ceil(kernel.uniforms.length / 4) * 4);
      words.set(kernel.uniforms);
      const uniform = buffer(words.byteLength, 0x40 | 0x8);
      device.queue.writeBuffer(uniform, 0, words);
      entries.push({ binding: 0, resource: { buffer: uniform } });
    }
    const group = device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries });
    const [x, y] = gridOf(gpu, kernel);
    const run = (reps: number, set: GPUQuerySet | null) => {
      const encoder = device.createCommandEncoder();
      for (let i = 0; i < reps; i++) {
        const writes = set
          ? { querySet: set, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 }
          : undefined;
        const pass = encoder.beginComputePass(writes ? { timestampWrites: writes } : {});
        pass.setPipeline(pipeline);
        pass.setBindGroup(0, group);
        pass.dispatchWorkgroups(x, y);
        pass.end();
      }
      return encoder;
    };
    const t0 = performance.now();
    device.queue.submit([run(1, null).finish()]); // warm up
    await device.queue.onSubmittedWorkDone();
    const once = performance.now() - t0;
    const reps = Math.max(1, Math.min(3, Math.floor(budgetMs / 8 / Math.max(once, 1e-3))));
    if (!gpu.timestamps) {
      const t1 = performance.now();
      device.queue.submit([run(reps, null).finish()]);
      await device.queue.onSubmittedWorkDone();
      return (performance.now() - t1) / reps;
    }
    const set = device.createQuerySet({ type: "timestamp", count: 2 * reps });
    const resolved = buffer(16 * reps, 0x200 | 0x4), staging = buffer(16 * reps, 0x1 | 0x8);
    const encoder = run(reps, set);
    encoder.resolveQuerySet(set, 0, 2 * reps, resolved, 0);
    encoder.copyBufferToBuffer(resolved, 0, staging, 0, 16 * reps);
    device.queue.submit([encoder.finish()]);
    await staging.mapAsync(1 /* READ */);
    const ticks = new BigUint64Array(staging.getMappedRange().slice(0));
    staging.unmap();
    set.destroy();
    let least = Infinity;
    for (let i = 0; i < reps; i++) least = Math.min(least, Number(ticks[2 * i + 1] - ticks[2 * i]) / 1e6);
    return least;
  };
  // A candidate this device cannot run (or reports an error for) is simply not chosen.
  const ms = await measure().catch(() => Infinity);
  for (const buf of made) buf.destroy();
  const errors = await Promise.all([0, 1, 2].map(() => device.popErrorScope().catch(() => null)));
  return errors.every((e) => e === null) ? ms : null;
}

/**
 * The rule both tuners keep a variant by: the fastest challenger replaces the built-in variant only if, after the
 * two are timed again in turn `rounds` more times, the challenger's least time is at most `margin` of the built-in's.
 * One timing each is not enough on a busy machine: the built-in, timed first, may run cold, and a slower challenger
 * would then win on noise. `time` gives one measurement (Infinity for a rejected variant).
 */
export async function confirmChoice<V>(
  builtIn: { readonly variant: V; readonly ms: number },
  best: { readonly variant: V; readonly ms: number },
  time: (v: V) => Promise<number>,
  margin: number,
  rounds = 2,
): Promise<V> {
  if (best.variant === builtIn.variant || !(best.ms <= margin * builtIn.ms)) return builtIn.variant;
  let builtInMs = builtIn.ms, bestMs = best.ms;
  for (let i = 0; i < rounds; i++) {
    builtInMs = Math.min(builtInMs, await time(builtIn.variant));
    bestMs = Math.min(bestMs, await time(best.variant));
  }
  return bestMs <= margin * builtInMs ? best.variant : builtIn.variant;
}
