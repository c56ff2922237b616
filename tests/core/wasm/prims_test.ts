// Every primitive on the Wasm backend against the CPU reference, on the spec table's random cases.

import { specTableSuite } from "../spec_suite.ts";

specTableSuite("wasm", "Wasm", (name, fn) => Deno.test({ name, fn }));
