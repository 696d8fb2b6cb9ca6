#!/usr/bin/env python3
"""easel on the GPU (wgpu) against easel on the CPU of the same machine: times and agreement.

Run from the repository root on a machine with a GPU, after `cargo build --release`:

    python3 bench/gpu_table.py [--easel target/release/easel] [--rounds 2] [--json gpu.json]

For each bundled model (EfficientNet-Lite0 on assets/photos/chelsea.png, the Fashion-MNIST small
CNN on a bundled sample) and each of forward, occlusion (the model's default window/stride),
saliency, IG-50, SmoothGrad-20 and Grad-CAM, it runs `easel explain --sanity none` once per
device per round. Every process computes the map twice (`--model card --model card`) and the
second, warm run's own `elapsed_secs` is the time (the first run, which on wgpu compiles the
kernels, is reported as `cold`). The maps of the two devices are compared (max |wgpu - cpu| /
max |cpu|) and so are the top-5 logits. Prints a Markdown table; needs numpy only.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

METHODS = {
    "forward": ("occlusion", None),  # one window covering the image: the clean pass and one occluded pass
    "occlusion": ("occlusion", []),
    "saliency": ("saliency", []),
    "ig": ("ig", ["--steps", "50", "--ig-method", "gausslegendre", "--baseline", "zero"]),
    "smoothgrad": ("smoothgrad", ["--samples", "20", "--noise", "0.15", "--noise-base", "saliency"]),
    "gradcam": ("gradcam", []),
}

CASES = [
    ("EfficientNet-Lite0", "assets/efficientnet-lite0/card.json", "assets/photos/chelsea.png", 224),
    ("small CNN (Fashion-MNIST)", "assets/fashion-mnist/model/card.json", "assets/fashion-mnist/samples/0-ankle-boot.png", 28),
]


def run(easel, card, image, side, method, device, work, timeout, gpu_flag="wgpu"):
    kind, extra = METHODS[method]
    if extra is None:
        extra = ["--window", str(side), "--stride", str(side), "--batch-size", "1"]
    out = os.path.join(work, f"{device}-{method}")
    cmd = [easel, "explain", "--model", card, "--model", card, "--image", image, "--method", kind,
           "--out", out, "--force", "--sanity", "none", "--device", gpu_flag if device == "wgpu" else device, *extra]
    t0 = time.time()
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)
    wall = time.time() - t0
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{r.stderr[-2000:]}")
    a = json.load(open(os.path.join(out, "a", "meta.json")))
    b = json.load(open(os.path.join(out, "b", "meta.json")))
    amap = np.load(os.path.join(out, "b", f"{kind}.npy")).astype(np.float64)
    div = 2.0 if method == "forward" else 1.0
    return {"warm": b["elapsed_secs"] / div, "cold": a["elapsed_secs"] / div, "process": wall, "map": amap,
            "logits": [t["logit"] for t in b["top_k"]], "classes": [t["class_index"] for t in b["top_k"]],
            "device": b.get("device", device)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--easel", default="target/release/easel")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", help="write every sample here")
    ap.add_argument("--timeout", type=float, default=240, help="seconds for one easel process")
    ap.add_argument("--only", help="comma-separated methods")
    ap.add_argument("--models", help="comma-separated indexes into the cases (0 EfficientNet, 1 small CNN)")
    ap.add_argument("--gpu-device", default="wgpu", help=argparse.SUPPRESS)  # `cpu` checks the script itself
    args = ap.parse_args()
    methods = args.only.split(",") if args.only else list(METHODS)
    work = tempfile.mkdtemp(prefix="easel-gpu-")
    report = {"cases": []}
    cases = [CASES[int(i)] for i in args.models.split(",")] if args.models else CASES
    for name, card, image, side in cases:
        print(f"\n== {name} ==", flush=True)
        rows = []
        for m in methods:
            samples = {"wgpu": [], "cpu": []}
            try:
                for r in range(args.rounds):
                    for dev in ("wgpu", "cpu"):
                        if dev == "cpu" and r > 0 and m in ("occlusion",) and side > 64:
                            continue  # one CPU occlusion of EfficientNet is enough for the reference
                        samples[dev].append(run(args.easel, card, image, side, m, dev, work, args.timeout, args.gpu_device))
            except Exception as e:  # report and go on: one failing method must not lose the table
                print(f"  {m}: FAILED: {e}", flush=True)
                rows.append({"method": m, "error": str(e)})
                continue
            g, c = samples["wgpu"], samples["cpu"]
            gm, cm = g[-1]["map"].ravel(), c[-1]["map"].ravel()
            rel = float(np.abs(gm - cm).max() / max(np.abs(cm).max(), 1e-30)) if gm.shape == cm.shape else float("nan")
            dlog = max(abs(x - y) for x, y in zip(g[-1]["logits"], c[-1]["logits"]))
            same_top = g[-1]["classes"] == c[-1]["classes"]
            row = {"method": m, "wgpu_warm": statistics.median(s["warm"] for s in g),
                   "wgpu_cold": statistics.median(s["cold"] for s in g),
                   "cpu_warm": statistics.median(s["warm"] for s in c),
                   "map_rel_diff": rel, "logit_max_diff": dlog, "same_top5": same_top,
                   "wgpu_device": g[-1]["device"], "cpu_device": c[-1]["device"],
                   "wgpu_process_secs": [s["process"] for s in g]}
            rows.append(row)
            print(f"  {m:10s} wgpu {row['wgpu_warm']*1e3:9.1f} ms (cold {row['wgpu_cold']*1e3:9.1f} ms)  "
                  f"cpu {row['cpu_warm']*1e3:9.1f} ms  cpu/wgpu {row['cpu_warm']/max(row['wgpu_warm'],1e-9):6.2f}  "
                  f"map {rel:.2e}  logits {dlog:.2e}  top5 {'same' if same_top else 'DIFFERENT'}", flush=True)
        report["cases"].append({"model": name, "rows": rows})
        ok = [r for r in rows if "error" not in r]
        if ok:
            print(f"\n  wgpu: {ok[0]['wgpu_device']}\n  cpu:  {ok[0]['cpu_device']}\n")
            print("| method | wgpu (warm) | wgpu (first run) | CPU (warm) | CPU / wgpu | map max diff / max | top-5 logits max diff |")
            print("|---|---|---|---|---|---|---|")
            for r in ok:
                print(f"| {r['method']} | {r['wgpu_warm']*1e3:.1f} ms | {r['wgpu_cold']*1e3:.0f} ms | {r['cpu_warm']*1e3:.1f} ms | "
                      f"{r['cpu_warm']/max(r['wgpu_warm'],1e-9):.2f} | {r['map_rel_diff']:.1e} | {r['logit_max_diff']:.1e} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
