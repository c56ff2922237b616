// Device errors name their root cause: the compiler's message for a kernel, the first validation error of a submit.

import { checkCompileError, checkValidationError, MISTYPED } from "./error_checks.ts";
import { gpuTest } from "./gpu.ts";

gpuTest("a kernel that does not compile fails with its ops, shapes and the compiler's message", async () => {
  await checkCompileError(MISTYPED, "let a: f32 = 1u;");
});

gpuTest("a rejected submit fails with its kernels and the device's first message", async () => {
  await checkValidationError();
});
