// stats() on the Wasm backend counts the kernels' memories (the heap among them) as reserved
// (pooled) bytes beside the arena's host arrays, the arena's heap blocks once, and a repeated
// training step grows none of them.

import assert from "node:assert/strict";
import { normal, randomKey, setBackend, stats } from "../../../mod.ts";
import { createWasm, useWasm } from "../../../core/wasm/mod.ts";
import { kernelMemoryBytes } from "../../../core/wasm/memory.ts";
import { train } from "./backend_helpers.ts";

Deno.test("wasm memory: stats() pools hold the arena's free arrays plus every kernel memory", async () => {
  const b = (await createWasm({ threads: 1 }))!;
  // This file's only Wasm backend (no shared one is opened), so the gauges are its own.
  useWasm(b);
  await setBackend("wasm");
  try {
    const x = normal(randomKey(0), [256, 256]);
    const y = x.matmul(x).add(1).exp();
    await y.data();
    // The matmul packs A and B in its scratch, and the values live in the heap: at least three
    // 256 x 256 f32 blocks, one of them y's (the product is never stored: add and exp are its epilogue).
    assert.ok(kernelMemoryBytes() >= 3 * 256 * 256 * 4, `kernel memories hold ${kernelMemoryBytes()} bytes`);
    assert.ok(b.heap !== null && b.memory.bytesInHeap >= 256 * 256 * 4, `${b.memory.bytesInHeap} in the heap`);
    assert.equal(b.matmul.epilogueCalls, 1);
    const s = stats();
    // The heap is counted whole among the kernel memories, its blocks held by values as in use.
    assert.equal(s.bytesPooled, b.memory.bytesPooled + kernelMemoryBytes() - b.memory.bytesInHeap);
    assert.equal(s.bytesInUse, b.memory.bytesInUse);
    x.dispose();
    y.dispose();
  } finally {
    useWasm(null);
    await setBackend("cpu");
    b.matmul.close();
  }
});

Deno.test("wasm memory: repeated training steps grow no kernel memory", async () => {
  const b = (await createWasm({ threads: 1 }))!;
  useWasm(b);
  await setBackend("wasm");
  try {
    // The first test's backend still holds what it pooled: only changes are compared here.
    const others = () => stats().bytesPooled - b.memory.bytesPooled - kernelMemoryBytes() + b.memory.bytesInHeap;
    const before = others();
    const kernels: number[] = [];
    await train(5, () => (kernels.push(kernelMemoryBytes()), b.memory));
    assert.ok(kernels[1] > 0);
    assert.deepEqual(kernels.slice(1), kernels.slice(1).map(() => kernels[1]));
    assert.equal(others(), before);
  } finally {
    useWasm(null);
    await setBackend("cpu");
    b.matmul.close();
  }
});
