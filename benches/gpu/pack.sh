#!/usr/bin/env bash
# Prepares, on a machine with the Rust toolchain, what benches/gpu/run.sh needs on a GPU
# machine that has neither a toolchain nor a network: the `genmodels` CLI and the
# `reference_export` example built with the `ship` profile (stripped), compressed, and the
# Vulkan loader, in benches/gpu/payload/ (ignored by git; hand it over as a carried path).
#
#   benches/gpu/pack.sh                 # wgpu (with fusion and autotune), flex, ndarray
#   GENMODELS_GPU_FEATURES=cuda benches/gpu/pack.sh   # and CUDA: its build downloads LLVM
#
# It prints the payload's files and sizes; the whole must stay under the 64 MiB a run carries.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$HOME/.cache/genmodels-target}"
payload="$repo/benches/gpu/payload"
features=()
if [ -n "${GENMODELS_GPU_FEATURES:-}" ]; then
  features=(--features "genmodels-cli/$GENMODELS_GPU_FEATURES")
fi
cd "$repo"
export CARGO_TARGET_DIR="$target"
# One invocation from the workspace root: the binary and the example then share one feature
# set, so burn is built once (`-p genmodels` alone would resolve other features).
cargo build --profile ship --bin genmodels --example reference_export "${features[@]}" >&2
rm -rf "$payload"
mkdir -p "$payload"
xz -6 -T0 -c "$target/ship/genmodels" > "$payload/genmodels.xz"
xz -6 -T0 -c "$target/ship/examples/reference_export" > "$payload/reference_export.xz"
# The Vulkan loader, for a GPU machine whose image has the NVIDIA driver but no loader.
loader="$(ldconfig -p | awk '/libvulkan\.so\.1 /{print $NF; exit}')"
if [ -n "$loader" ]; then
  cp -L "$loader" "$payload/libvulkan.so.1"
fi
{
  echo "commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo ' (with uncommitted changes)')"
  echo "built $(date -u +%Y-%m-%dT%H:%MZ) on $(uname -m)"
  echo "features default${GENMODELS_GPU_FEATURES:+ + $GENMODELS_GPU_FEATURES}"
  echo "genmodels (ship profile, uncompressed) $(stat -c %s "$target/ship/genmodels") bytes"
} > "$payload/manifest.txt"
ls -l "$payload" >&2
total=$(du -sb "$payload" | cut -f1)
echo "payload: $((total / 1024 / 1024)) MiB" >&2
if [ "$total" -gt $((64 * 1024 * 1024)) ]; then
  echo "benches/gpu/pack.sh: the payload is over the 64 MiB a run carries" >&2
  exit 1
fi
echo "$payload"
