// The core's public surface: tensors, creation, autodiff, pytrees, PRNG keys and backends.

export { type NestedArray, type ReduceOptions, Tensor } from "./tensor.ts";
export { full, type NestedData, ones, tensor, type TensorOptions, zeros } from "./creation.ts";
export { grad, type GradOf, type GradOptions, valueAndGrad, vjp } from "./autodiff.ts";
export {
  type Tree,
  type TreeDef,
  treeDispose,
  treeFlatten,
  treeLeaves,
  treeMap,
  treePaths,
  treeUnflatten,
} from "./tree.ts";
export { foldIn, Key, normal, randint, randomBits, randomKey, splitKey, uniform } from "./random.ts";
export {
  type BackendInfo,
  backendInfo,
  type BackendName,
  type BackendOptions,
  readAll,
  realize,
  setBackend,
} from "./backend.ts";
export type { Backend, Capabilities, Precision } from "./backend.ts";
export type { DType, HostArray, Shape } from "./shape.ts";
export { apply, checkIndices, knownValues, scalarLike } from "./tensor.ts";
export { resetStats, type Stats, stats } from "./stats.ts";
export { checkDType } from "./shape.ts";
