#!/usr/bin/env bash
# jetfold's GPU check on a lent, bare, offline machine, as one command: unpacks .devkit/ (made by
# tools/device_kit.sh), then runs what `deno task bench` runs, the per-adapter variant bench, the
# WebGPU profile of a training step and the jax-js peer on the same GPU, each under a time limit,
# with the whole log in one file, $OUT/bench.log (the device tool brings back a few files only).
# From the device tool:
#   run  command: "bash tools/device_bench.sh"  carry: [".devkit"]  timeout_s: 540
# Elsewhere (to try it): OUT=/tmp/out bash tools/device_bench.sh
set -uo pipefail
export PATH="$PATH:/usr/sbin:/sbin"
cd "$(dirname "$0")/.."
kit=.devkit out=${OUT:-/tmp/jetfold-device}
[ -f "$kit/deno.xz" ] || { echo "no $kit/deno.xz: run tools/device_kit.sh first" >&2; exit 2; }
mkdir -p "$out" /tmp/jetfold-bin && out=$(cd "$out" && pwd) && : > "$out/bench.log"
log() { echo "== $* ($(date -u +%T))"; }

# The Vulkan loader, unless the machine has one; NVIDIA's ICD where its driver mount keeps it.
if ! ldconfig -p | grep -q libvulkan.so.1; then
  for f in "$kit"/gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -f "$icd" ] && export VK_DRIVER_FILES="$icd"
xz -dc "$kit/deno.xz" > /tmp/jetfold-bin/deno && chmod +x /tmp/jetfold-bin/deno
export PATH="/tmp/jetfold-bin:$PATH" DENO_DIR="$PWD/$kit/deno_dir" DENO_NO_UPDATE_CHECK=1 NO_COLOR=1
# Offline, against the carried cache: node_modules/ does not travel.
d=(--cached-only --node-modules-dir=none)

{
  log environment
  uname -a; nproc; deno --version
  nvidia-smi -L 2>&1 || true
  ldconfig -p | grep -i vulkan || true
  echo "VK_DRIVER_FILES=${VK_DRIVER_FILES:-}"
} 2>&1 | tee -a "$out/bench.log"

# Each step's limit keeps the whole inside one call of the tool (10 minutes; these add up to 510 s),
# the GPU's steps first; the table runs a backend at a time, so a step cut short loses only itself.
step() {
  local name=$1 limit=$2; shift 2
  log "$name (limit ${limit}s)" | tee -a "$out/bench.log"
  timeout "$limit" "$@" 2>&1 | grep -v XDG_RUNTIME_DIR | tee -a "$out/bench.log"
  echo "exit ${PIPESTATUS[0]}" | tee -a "$out/bench.log"
}
peer() {
  local name=$1 limit=$2; shift 2
  [ -d "$kit/peers" ] && (cd "$kit/peers" && step "$name" "$limit" deno run "${d[@]}" -A "$@")
}
step info 20 deno run "${d[@]}" -A cli.ts info
step table-webgpu 120 deno run "${d[@]}" -A bench/table.ts webgpu
step variants 60 deno run "${d[@]}" -A bench/kernel_variants.ts
step profile 45 deno run "${d[@]}" -A cli.ts bench --profile --quick
peer peer-train 45 bench_train.ts transformer webgpu 10
peer peer-matmul 30 bench_matmul.ts webgpu 256,512,1024,2048
step table-wasm 60 deno run "${d[@]}" -A bench/table.ts wasm
step decode 30 deno run "${d[@]}" -A bench/decode.ts
step table-cpu 60 deno run "${d[@]}" -A bench/table.ts cpu
# --no-check: its type check would want every package deno.json names, which the kit leaves out.
step micro 40 deno bench "${d[@]}" --no-check --allow-read --allow-env bench/
log done | tee -a "$out/bench.log"
