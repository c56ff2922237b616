// How jetfold's tools, benches and browser tests launch the system's Chromium (never a downloaded one): its path
// and the flags that give headless Chromium WebGPU on its SwiftShader adapter without a sandbox or network chatter.

/** The system Chromium (Debian's package). */
export const CHROMIUM = "/usr/bin/chromium";

/** Launch flags: WebGPU enabled, no sandbox (containers), no background network or component updates. */
export const CHROMIUM_FLAGS: readonly string[] = [
  "--no-sandbox",
  "--disable-gpu-sandbox",
  "--disable-background-networking",
  "--disable-component-update",
  "--no-first-run",
  "--enable-unsafe-webgpu",
];
