// Layers, blocks and models: immutable specs, plain param pytrees, pure init/apply functions. This is
// the nn/ package as search/ and the tests see it; the public API is what the root mod.ts picks from it.

export * from "./spec.ts";
export * from "./layers.ts";
export * from "./mixer.ts";
export * from "./attention.ts";
export * from "./model.ts";
export * from "./generate.ts";
export * from "./optim.ts";
export * from "./checkpoint.ts";
export * from "./mixers.ts";
export * from "./train.ts";
export * from "./linear_attention.ts";
export * from "./jet.ts";
export * from "./delta_rule.ts";
export * from "./schedule.ts";
export * from "./pretrained.ts";
