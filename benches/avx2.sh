#!/usr/bin/env bash
# Builds the genmodels CLI of the current commit without gemm's AVX-512 kernels, so that the
# AVX2 code paths can be measured on a machine whose CPU has AVX-512 (docs/benchmarks.md).
#
#   benches/avx2.sh            # prints the path of the AVX2-only binary
#   "$(benches/avx2.sh)" bench --model pixelcnn --op train_step
#
# Every gemm in the build (burn's matrix products and genmodels' tap kernels) then picks its
# AVX2/FMA kernel, and `genmodels bench` prints "matrix kernel: gemm fma". The build shares
# cargo's target directory with the normal one: only gemm, the burn crates that use it and
# genmodels are compiled again (the first time), under their own hashes. Cargo copies each
# build's binary to `release/genmodels`, so this one is copied out to `avx2/genmodels`, and
# the next normal `cargo build` puts the normal binary back.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$HOME/.cache/genmodels-target}"
# A fixed source path keeps genmodels' own compilation incremental between runs.
source_dir="$target/avx2-source"
rm -rf "$source_dir"
mkdir -p "$source_dir" "$target/avx2"
git -C "$repo" archive HEAD | tar -x -C "$source_dir"
manifest="$source_dir/crates/genmodels-kernels/Cargo.toml"
sed -i 's/^kernels = \["flex", "dep:gemm", "avx512"\]$/kernels = ["flex", "dep:gemm"]/' "$manifest"
if ! grep -q '^kernels = \["flex", "dep:gemm"\]$' "$manifest"; then
  echo "benches/avx2.sh: could not take avx512 out of the kernels feature in $manifest" >&2
  exit 1
fi
(cd "$source_dir" && CARGO_TARGET_DIR="$target" cargo build --release --bin genmodels --locked >&2)
cp "$target/release/genmodels" "$target/avx2/genmodels"
echo "$target/avx2/genmodels"
