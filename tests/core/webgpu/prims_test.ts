// Every primitive on WebGPU against the CPU reference, on the spec table's random cases.

import { specTableSuite } from "../spec_suite.ts";
import { gpuTest } from "./gpu.ts";

specTableSuite("webgpu", "WebGPU", gpuTest);
