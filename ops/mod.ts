// Composite ops, built only from the core's primitives.

export * from "./elementwise.ts";
export * from "./reduce.ts";
export * from "./creation.ts";
export * from "./nn.ts";
export * from "./random.ts";
