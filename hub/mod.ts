// Hugging Face Hub repos as local files: the cache layout and resumable downloads. The package as the tests see it.

export * from "./hub.ts";
export * from "./cache.ts";
export * from "./download.ts";
