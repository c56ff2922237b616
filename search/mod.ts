// PostNAS: the search as a pure fold, its budgets, and the once-for-all supernet it searches. The
// package as the tests see it; the public API is what the root mod.ts picks from it.

export * from "./postnas.ts";
export * from "./budget.ts";
export * from "./data.ts";
export * from "./supernet.ts";
export * from "./objectives.ts";
export * from "./train.ts";
export * from "./distill.ts";
export * from "./answers.ts";
export * from "./hardware.ts";
