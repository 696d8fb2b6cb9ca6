#!/usr/bin/env bash
# Evaluation of a class-per-folder set in bounded memory: writes 10,000 and 100,000 PNG files
# (copies of the Fashion-MNIST test images) into a temporary folder, evaluates both and prints
# each run's peak resident memory (the 100k run must not need more than the 10k run), then
# kills an evaluation with SIGKILL halfway and checks that the rerun keeps the written rows and
# evaluates only the rest. About 3 minutes on two cores; needs 1 GB of disk.
set -euo pipefail
cd "$(dirname "$0")/.."
export EASEL_CACHE_DIR="${TMPDIR:-/tmp}/easel-bench-cache-$$"
trap 'rm -rf "$EASEL_CACHE_DIR"' EXIT
cargo test --release --locked --test shards a_folder_of_100k_images -- --ignored --nocapture 2>&1 \
  | grep -E "wrote|peak RSS|killed|resumed|test result|panicked|FAILED"
