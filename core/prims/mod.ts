// The primitive table: every primitive's record, assembled and checked for completeness.

import type { PrimTable } from "../prim.ts";
import { ELEMENTWISE } from "./elementwise.ts";
import { FUSED } from "./fused.ts";
import { IOTA } from "./iota.ts";
import { LINALG } from "./linalg.ts";
import { MOVEMENT } from "./movement.ts";
import { SCAN } from "./scan.ts";

/** Every primitive's shape rule, CPU reference and vjp rule, keyed by name. */
export const PRIMS: PrimTable = { ...ELEMENTWISE, ...MOVEMENT, ...LINALG, ...IOTA, ...FUSED, ...SCAN };
