#!/usr/bin/env bash
# Set up a fresh machine and run every test: the README's test command, and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages the tests use: Fashion-MNIST's 60k training set (for `easel train`) from
# Debian. Installed when we are root on a Debian-like system; elsewhere install it yourself.
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  if ! dpkg -s dataset-fashion-mnist >/dev/null 2>&1; then
    apt-get install -y --no-install-recommends dataset-fashion-mnist >/dev/null 2>&1 \
      || { apt-get update >/dev/null && apt-get install -y --no-install-recommends dataset-fashion-mnist >/dev/null; }
  fi
fi

# One build profile (release) for run, test and bench, so dependencies compile once.
cargo test --release --locked

# The compute library builds without the GUI: the compiler checks that it never imports egui.
cargo build --release --locked --lib --no-default-features
