#!/usr/bin/env bash
# Set up a fresh machine and run every test: the README's test command, and what CI runs.
#   bash scripts/test.sh          both tiers, the manifest checks, clippy and rustfmt
#   FAST=1 bash scripts/test.sh   the fast tier only (what to run after every change)
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages the tests use: Fashion-MNIST's 60k training set (for `easel train` and the
# labs) from Debian. Installed when we are root on a Debian-like system; elsewhere install it
# yourself.
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  if ! dpkg -s dataset-fashion-mnist >/dev/null 2>&1; then
    apt-get install -y --no-install-recommends dataset-fashion-mnist >/dev/null 2>&1 \
      || { apt-get update >/dev/null && apt-get install -y --no-install-recommends dataset-fashion-mnist >/dev/null; }
  fi
fi

# A cold build of the workspace and its tests writes about 7 GB under target/: say so up front
# when the disk has less, rather than failing half an hour in with "No space left on device".
avail_kb=$(df -Pk . 2>/dev/null | awk 'NR == 2 { print $4 }')
if [ -n "${avail_kb:-}" ] && [ "$avail_kb" -lt $((8 * 1024 * 1024)) ] && [ ! -d target/release/deps ]; then
  echo "warning: $((avail_kb / 1024)) MiB free here; a cold build and test run needs about 7 GB" >&2
fi

# Tests never touch the user's cache or settings.
export EASEL_CACHE_DIR="${TMPDIR:-/tmp}/easel-test-cache-$$"
trap 'rm -rf "$EASEL_CACHE_DIR"' EXIT

# One build profile (release) for run, test and bench, so dependencies compile once.
if [ "${FAST:-0}" = 1 ]; then
  cargo test --release --locked --workspace
  exit 0
fi
# The fast tier and the slow tier (training and end-to-end runs, marked #[ignore]) together,
# built through clippy-driver with warnings denied: the lints run while the workspace's crates
# compile (what `cargo clippy` does, without checking every dependency a second time; the
# dependencies compile with plain rustc). The 100,000-image streaming check writes 110,000
# files and takes minutes: it is a benchmark (scripts/bench-folder.sh), not part of every run.
if ! command -v clippy-driver >/dev/null 2>&1; then
  echo "clippy is not installed: rustup component add clippy" >&2
  exit 1
fi
# (No incremental caches for this build: a cold run, as in CI, only pays for writing them.)
RUSTC_WORKSPACE_WRAPPER="$(command -v clippy-driver)" CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__" CARGO_INCREMENTAL=0 \
  cargo test --release --locked --workspace -- --include-ignored --skip a_folder_of_100k_images

# The compute crate's dependency tree holds no GUI crate: the manifests, not a convention,
# keep egui out of it.
if cargo tree --locked -p easel-core -e normal --prefix none | grep -E '^(egui|eframe|winit|rfd|egui_plot|egui-wgpu|egui-winit)( |$)'; then
  echo "easel-core depends on a GUI crate" >&2
  exit 1
fi

# Formatting.
cargo fmt --all --check
