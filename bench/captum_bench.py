#!/usr/bin/env python3
"""Side-by-side timing of Captum against easel: the same models, the same input pixels, each
side's own timer around the attribution only, the two sides alternating, and a sample redone
when another process used the CPU while it ran.

Not part of CI. Needs `pip install torch captum safetensors pillow numpy` and a release build of
easel. Run from the repository root:

    cargo build --release
    python3 bench/captum_bench.py                          # every model and method, 5 rounds
    python3 bench/captum_bench.py --rounds 1 --methods saliency,gradcam --models small   # smoke

What it does, per model (easel's demo small CNN and EfficientNet-Lite0, both rebuilt here in
PyTorch from the weights easel ships):

* **Same pixels.** The image is prepared once here (the small CNN's sample is already 28x28;
  the photo is centre-cropped to 87.5 % and resized to 224), written as a PNG of exactly the
  model's input size, which easel uses unchanged, and normalised here with the card's
  scale/mean/std in float32 in easel's order, so both sides see bit-identical inputs (also
  written as `input.npy` in the work folder). The target is PyTorch's top-1, passed to easel
  with `--target`, so neither timer includes a prediction.
* **Same work.** forward (batch 1), occlusion (easel's default window/stride, zero baseline in
  normalised space), saliency (|gradient|), integrated gradients (50 Gauss-Legendre steps, zero
  baseline), SmoothGrad (20 samples of |gradient|, sigma = 0.15 x the input's range) and
  Grad-CAM (the last stage: the head of EfficientNet, the last conv block's ReLU of the small
  CNN; ReLU, then bilinear upsampling, inside both timers). easel runs with `--sanity none`.
* **Captum's best setting.** `perturbations_per_eval`, `internal_batch_size` and
  `nt_samples_batch_size` are calibrated first (the best of --calibration-runs timed runs per
  candidate, 2 by default: one run picked occlusion's 1 per eval on a noisy sample; occlusion on
  fewer, larger windows when it has many) unless given with --captum-ppe/--captum-ig-batch/
  --captum-nt-batch. easel keeps its defaults.
* **Nothing extra inside a timer.** Captum: `time.perf_counter()` around `.attribute(...)`
  (and Grad-CAM's upsampling), after an untimed call just before (but for EfficientNet's
  occlusion, where it would not matter). easel: `elapsed_secs` from its
  `meta.json`, which covers the method only (not process start, model load, rendering or file
  writing). easel runs the model twice in one process (`--model card --model card`) and the
  second, warm, run is the one timed (the first is reported as `cold`); --cold times a single
  run (and Captum's untimed call is skipped). easel's "forward" is an occlusion with one window covering the image (2 forward passes
  at batch 1) divided by 2; PyTorch's is `model(x)` under `no_grad`.
* **Alternating, on a quiet machine.** Each round runs every method once per side, easel first
  in even rounds and Captum first in odd ones. Around every sample the script reads
  `/proc/stat`; if the CPU time of all processes minus this script's and its children's exceeds
  --other-cpu (seconds, plus 5 % of the sample's wall time per core), the sample is redone (up
  to --max-redo times, then kept and marked `*`).
* **Maps compared.** Each method's easel map against Captum's: max |difference| / max |Captum|
  and the Pearson correlation (SmoothGrad draws different noise on each side, so only its
  correlation is meaningful).

Prints one table per model (medians over the rounds; ratio = Captum time / easel time, above 1
means easel is faster) and writes every sample to --json.
"""
import argparse, json, os, resource, shutil, subprocess, sys, tempfile, time, warnings

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file

METHODS = ["forward", "occlusion", "saliency", "ig", "smoothgrad", "gradcam"]
IG_STEPS = 50
NT_SAMPLES = 20
NT_NOISE = 0.15  # easel's --noise: sigma as a fraction of the input's range


# ----------------------------------------------------------------------------------------------
# The models, in PyTorch, with the parameter names easel's weights carry
# ----------------------------------------------------------------------------------------------


class SmallCNN(nn.Module):
    """easel's small CNN family from its card: conv [+ bn] + relu [+ 2x2 max pool], then linears."""

    def __init__(self, arch, sd):
        super().__init__()
        self.arch = arch
        self.convs, self.bns, self.relus = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        c = arch["in_channels"]
        for spec in arch["convs"]:
            k = spec["kernel"]
            self.convs.append(nn.Conv2d(c, spec["out_channels"], k, padding=k // 2))
            self.bns.append(nn.BatchNorm2d(spec["out_channels"]) if spec.get("batchnorm") else nn.Identity())
            self.relus.append(nn.ReLU())  # a module, so Grad-CAM can take its output
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

    def gradcam_layer(self):
        """easel's default Grad-CAM stage: the last conv block after its ReLU, before pooling."""
        return self.relus[-1]

    def forward(self, x):
        for conv, bn, relu, spec in zip(self.convs, self.bns, self.relus, self.arch["convs"]):
            x = relu(bn(conv(x)))
            if spec.get("pool", True):
                x = F.max_pool2d(x, 2)
        x = x.flatten(1)
        for i, fc in enumerate(self.fcs):
            x = fc(x)
            if i < len(self.fcs) - 1:
                x = F.relu(x)
        return x


# (repeats, kernel, stride, expand ratio, in, out), as in easel's efficientnet.rs
LITE0_BLOCKS = [(1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
                (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320)]


def same_padding(size_in, kernel, stride):
    """TensorFlow's static "SAME" padding: (before, after), the odd pixel after."""
    size_out = -(-size_in // stride)
    total = max((size_out - 1) * stride + kernel - size_in, 0)
    return total // 2, total - total // 2


class SameConv(nn.Conv2d):
    def __init__(self, c_in, c_out, kernel, stride, groups, size_in):
        super().__init__(c_in, c_out, kernel, stride=stride, groups=groups, bias=False)
        a, b = same_padding(size_in, kernel, stride)
        self.pads = (a, b, a, b)  # left, right, top, bottom

    def forward(self, x):
        return super().forward(F.pad(x, self.pads) if any(self.pads) else x)


def bn(n):
    return nn.BatchNorm2d(n, eps=1e-3)


class MBConv(nn.Module):
    def __init__(self, c_in, c_out, kernel, stride, expand, size_in):
        super().__init__()
        mid = c_in * expand
        if expand != 1:
            self._expand_conv = SameConv(c_in, mid, 1, 1, 1, size_in)
            self._bn0 = bn(mid)
        self._depthwise_conv = SameConv(mid, mid, kernel, stride, mid, size_in)
        self._bn1 = bn(mid)
        self._project_conv = SameConv(mid, c_out, 1, 1, 1, -(-size_in // stride))
        self._bn2 = bn(c_out)
        self.expand, self.skip = expand != 1, stride == 1 and c_in == c_out

    def forward(self, x):
        h = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.skip else h


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 as easel builds it: ReLU6, no squeeze-excitation, BatchNorm eps 1e-3,
    static SAME padding; parameter names as in the `efficientnet-lite-pytorch` package."""

    def __init__(self, sd, image_size=224, num_classes=1000):
        super().__init__()
        size = image_size
        self._conv_stem = SameConv(3, 32, 3, 2, 1, size)
        self._bn0 = bn(32)
        size = -(-size // 2)
        blocks = []
        for repeats, k, stride, expand, c_in, c_out in LITE0_BLOCKS:
            for r in range(repeats):
                inp, s = (c_in, stride) if r == 0 else (c_out, 1)
                blocks.append(MBConv(inp, c_out, k, s, expand, size))
                size = -(-size // s)
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv(320, 1280, 1, 1, 1, size)
        self._bn1 = bn(1280)
        self._head_act = nn.ReLU6()  # a module, so Grad-CAM can take the head's output
        self._fc = nn.Linear(1280, num_classes)
        missing, unexpected = self.load_state_dict(sd, strict=False)
        assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing), (missing, unexpected)
        self.eval()

    def gradcam_layer(self):
        """easel's default Grad-CAM stage for EfficientNet-Lite0: the head, after its ReLU6."""
        return self._head_act

    def forward(self, x):
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for b in self._blocks:
            x = b(x)
        x = self._head_act(self._bn1(self._conv_head(x)))
        return self._fc(x.mean((2, 3)))


# ----------------------------------------------------------------------------------------------
# The input: prepared once, the same pixels on both sides
# ----------------------------------------------------------------------------------------------


def prepared_pixels(card, path):
    """uint8 pixels of exactly the model's input size, [H, W] (grey) or [H, W, 3]."""
    inp = card["input"]
    img = Image.open(path).convert("L" if inp["channels"] == 1 else "RGB")
    w, h = inp["width"], inp["height"]
    if img.size != (w, h):
        if inp.get("resize") == "center_crop":
            side = min(img.size) * inp.get("crop_fraction", 0.875)
            l, t = (img.size[0] - side) / 2, (img.size[1] - side) / 2
            img = img.crop((l, t, l + side, t + side))
        img = img.resize((w, h), Image.BILINEAR)
    return np.asarray(img, dtype=np.uint8)


def normalised(card, pixels):
    """easel's `imaging::normalise` in float32: (pixel * scale - mean[c]) / std[c], [1, C, H, W]."""
    inp = card["input"]
    a = pixels.astype(np.float32)
    a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
    scale = np.float32(inp["scale"])
    mean = np.array(inp["mean"], np.float32)[:, None, None]
    std = np.array(inp["std"], np.float32)[:, None, None]
    return np.ascontiguousarray(((a * scale - mean) / std)[None].astype(np.float32))


# ----------------------------------------------------------------------------------------------
# Quiet-machine check
# ----------------------------------------------------------------------------------------------

HZ = os.sysconf(os.sysconf_names["SC_CLK_TCK"])
NCPU = os.cpu_count() or 1


def busy_cpu_secs():
    """CPU seconds every process has used (all cores): /proc/stat's busy columns."""
    with open("/proc/stat") as f:
        v = [int(t) for t in f.readline().split()[1:9]]
    return (sum(v) - v[3] - v[4]) / HZ  # minus idle and iowait


def own_cpu_secs():
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def guarded(run, args, label):
    """Run `run()` (returns (seconds, payload)) until no other process used more than the
    allowed CPU time while it ran. Returns (seconds, payload, quiet)."""
    for attempt in range(args.max_redo + 1):
        b0, o0, w0 = busy_cpu_secs(), own_cpu_secs(), time.perf_counter()
        secs, payload = run()
        b1, o1, w1 = busy_cpu_secs(), own_cpu_secs(), time.perf_counter()
        other = (b1 - b0) - (o1 - o0)
        allowed = args.other_cpu + 0.05 * (w1 - w0) * NCPU
        if other <= allowed:
            return secs, payload, True
        print(f"    {label}: other processes used {other:.2f} s of CPU (allowed {allowed:.2f}); redo", flush=True)
    return secs, payload, False


# ----------------------------------------------------------------------------------------------
# The two sides
# ----------------------------------------------------------------------------------------------


class Captum:
    def __init__(self, model, x, target, window, stride, args):
        from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam, NoiseTunnel, Occlusion, Saliency
        self.model, self.x, self.target, self.window, self.stride = model, torch.from_numpy(x), target, window, stride
        self.c, self.h, self.w = x.shape[1], x.shape[2], x.shape[3]
        self.occ, self.sal, self.ig = Occlusion(model), Saliency(model), IntegratedGradients(model)
        self.nt, self.cam = NoiseTunnel(Saliency(model)), LayerGradCam(model, model.gradcam_layer())
        self.interpolate = LayerAttribution.interpolate
        self.sigma = float(NT_NOISE * (x.max() - x.min()))
        self.ppe, self.ig_batch, self.nt_batch = args.captum_ppe, args.captum_ig_batch, args.captum_nt_batch
        self.args = args

    def occlusion(self, ppe, window=None, stride=None):
        w, s = window or self.window, stride or self.stride
        return self.occ.attribute(self.x, sliding_window_shapes=(self.c, w, w), strides=(self.c, s, s),
                                  baselines=0, target=self.target, perturbations_per_eval=ppe)

    def run(self, method):
        """One call, timed: (seconds, map as a flat float32 array)."""
        x, t = self.x, self.target
        if method == "forward":
            with torch.no_grad():
                s = time.perf_counter()
                y = self.model(x)
                secs = time.perf_counter() - s
            return secs, y.numpy().ravel()
        s = time.perf_counter()
        if method == "occlusion":
            a = self.occlusion(self.ppe)
        elif method == "saliency":
            a = self.sal.attribute(x, target=t)
        elif method == "ig":
            a = self.ig.attribute(x, target=t, n_steps=IG_STEPS, method="gausslegendre", internal_batch_size=self.ig_batch)
        elif method == "smoothgrad":
            a = self.nt.attribute(x, nt_type="smoothgrad", nt_samples=NT_SAMPLES, stdevs=self.sigma, target=t,
                                  nt_samples_batch_size=self.nt_batch)
        elif method == "gradcam":
            a = self.interpolate(self.cam.attribute(x, target=t, relu_attributions=True), (self.h, self.w), "bilinear")
        else:
            raise ValueError(method)
        secs = time.perf_counter() - s
        return secs, a.detach().numpy().astype(np.float32).ravel()

    def calibrate(self, methods):
        """Captum's best batching per method: the best of --calibration-runs timed runs per candidate, the fastest kept."""

        def best(name, candidates, f):
            times = {}
            f(candidates[0])  # warm-up
            for c in candidates:
                def once():
                    s = time.perf_counter()
                    f(c)
                    return time.perf_counter() - s, None
                times[c] = min(guarded(once, self.args, f"calibrating {name} {c}")[0] for _ in range(max(1, self.args.calibration_runs)))
            pick = min(times, key=times.get)
            print(f"  Captum {name}: " + ", ".join(f"{c}: {v * 1e3:.0f} ms" for c, v in times.items()) + f" -> {pick}", flush=True)
            return pick

        def count(window, stride):
            return len(range(0, self.h - window + 1, stride)) * len(range(0, self.w - window + 1, stride))

        if "occlusion" in methods and self.ppe is None:
            # a large input's occlusion takes tens of seconds: calibrate it on fewer, larger
            # windows (one forward pass per window all the same; Captum needs stride <= window)
            window, stride = self.window, self.stride
            while min(self.h, self.w) > 64 and count(window, stride) > 100 and count(max(window, 2 * stride), 2 * stride) >= 9:
                stride *= 2
                window = max(window, stride)
            windows = count(window, stride)
            cands = [c for c in (1, 2, 4, 8, 16, 32, 64) if c <= windows]
            self.ppe = best(f"occlusion perturbations_per_eval ({windows} windows {window}/{stride})", cands,
                            lambda c: self.occlusion(c, window, stride))
        if "ig" in methods and self.ig_batch is None:
            self.ig_batch = best("IG internal_batch_size", [1, 2, 5, 10, 16, 25, 50], lambda c: self.ig.attribute(
                self.x, target=self.target, n_steps=IG_STEPS, method="gausslegendre", internal_batch_size=c))
        if "smoothgrad" in methods and self.nt_batch is None:
            self.nt_batch = best("SmoothGrad nt_samples_batch_size", [1, 2, 5, 10, 20], lambda c: self.nt.attribute(
                self.x, nt_type="smoothgrad", nt_samples=NT_SAMPLES, stdevs=self.sigma, target=self.target, nt_samples_batch_size=c))
        return {"perturbations_per_eval": self.ppe, "internal_batch_size": self.ig_batch, "nt_samples_batch_size": self.nt_batch}


class Easel:
    def __init__(self, binary, card, image, target, side, work, args):
        self.binary, self.card, self.image, self.target, self.side, self.work = binary, card, image, target, side, work
        self.cold = args.cold

    def run(self, method):
        """One `easel explain` process: (seconds of the timed run, its map, the cold run's seconds)."""
        kind, extra = {
            "forward": ("occlusion", ["--window", str(self.side), "--stride", str(self.side), "--batch-size", "1"]),
            "occlusion": ("occlusion", []),
            "saliency": ("saliency", []),
            "ig": ("ig", ["--steps", str(IG_STEPS), "--ig-method", "gausslegendre", "--baseline", "zero"]),
            "smoothgrad": ("smoothgrad", ["--samples", str(NT_SAMPLES), "--noise", str(NT_NOISE), "--noise-base", "saliency"]),
            "gradcam": ("gradcam", []),
        }[method]
        out = os.path.join(self.work, f"easel-{method}")
        models = ["--model", self.card] if self.cold else ["--model", self.card, "--model", self.card]
        cmd = [self.binary, "explain", *models, "--image", self.image, "--method", kind, "--target", str(self.target),
               "--out", out, "--force", "--sanity", "none", "--device", "cpu", *extra]
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            sys.exit(f"easel failed ({' '.join(cmd)}):\n{r.stderr}")
        timed_dir = out if self.cold else os.path.join(out, "b")
        meta = json.load(open(os.path.join(timed_dir, "meta.json")))
        secs = meta["elapsed_secs"]
        cold = secs if self.cold else json.load(open(os.path.join(out, "a", "meta.json")))["elapsed_secs"]
        amap = np.load(os.path.join(timed_dir, f"{kind}.npy")).astype(np.float32).ravel()
        if method == "forward":  # one window: the unoccluded pass and one occluded pass
            secs, cold = secs / 2, cold / 2
        return secs, (amap, cold, meta)


def agreement(e, c):
    """max |easel - Captum| / max |Captum| and the Pearson correlation."""
    if e.shape != c.shape:
        return float("nan"), float("nan")
    rel = float(np.abs(e - c).max() / max(np.abs(c).max(), 1e-30))
    corr = float(np.corrcoef(e.astype(np.float64), c.astype(np.float64))[0, 1]) if e.std() > 0 and c.std() > 0 else float("nan")
    return rel, corr


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--easel", default="target/release/easel", help="the easel binary")
    ap.add_argument("--models", default="small,efficientnet", help="comma-separated: small, efficientnet")
    ap.add_argument("--methods", default=",".join(METHODS), help="comma-separated: " + ", ".join(METHODS))
    ap.add_argument("--rounds", type=int, default=5, help="samples per method and side (the median is reported)")
    ap.add_argument("--occlusion-rounds", type=int, default=3, help="rounds for EfficientNet's occlusion (~20-40 s a sample)")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (easel uses every core)")
    ap.add_argument("--captum-ppe", type=int, help="Captum's perturbations_per_eval (default: calibrated)")
    ap.add_argument("--captum-ig-batch", type=int, help="Captum's IG internal_batch_size (default: calibrated)")
    ap.add_argument("--captum-nt-batch", type=int, help="Captum's nt_samples_batch_size (default: calibrated)")
    ap.add_argument("--calibration-runs", type=int, default=2, help="timed runs per calibration candidate (the best is kept)")
    ap.add_argument("--cold", action="store_true", help="time easel's first (cold) run in a process")
    ap.add_argument("--other-cpu", type=float, default=0.05, help="CPU seconds other processes may use during a sample")
    ap.add_argument("--max-redo", type=int, default=5, help="redos of a disturbed sample before keeping it")
    ap.add_argument("--work", help="keep the prepared inputs and easel's outputs here (default: a temporary folder)")
    ap.add_argument("--json", help="write every sample here")
    args = ap.parse_args()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    for m in methods:
        if m not in METHODS:
            sys.exit(f"unknown method {m}: choose from {', '.join(METHODS)}")
    if not os.path.exists(args.easel):
        sys.exit(f"{args.easel} not found: build it with `cargo build --release` or pass --easel")
    torch.set_num_threads(args.threads)
    # Captum warns (on every call) that the input did not require gradients; it sets them itself
    warnings.filterwarnings("ignore", message="Input Tensor .* did not already require gradients")
    import captum
    print(f"torch {torch.__version__} ({args.threads} threads), captum {captum.__version__}, easel {args.easel}, {NCPU} cores")
    work = args.work or tempfile.mkdtemp(prefix="easel-captum-")
    os.makedirs(work, exist_ok=True)

    cases = []
    if "small" in models:
        card_path = "assets/fashion-mnist/model/card.json"
        card = json.load(open(card_path))
        cases.append(("small CNN (Fashion-MNIST demo)", "small", card_path, card,
                      lambda c: SmallCNN(c["architecture"], load_file("assets/fashion-mnist/model/weights.safetensors")),
                      "assets/fashion-mnist/samples/0-ankle-boot.png"))
    if "efficientnet" in models:
        card_path = "assets/efficientnet-lite0/card.json"
        card = json.load(open(card_path))
        cases.append(("EfficientNet-Lite0", "efficientnet", card_path, card,
                      lambda c: EfficientNetLite0(load_file("assets/efficientnet-lite0/weights.safetensors"), c["input"]["height"],
                                                  c["architecture"]["num_classes"]),
                      "assets/photos/chelsea.png"))

    report = {"torch": torch.__version__, "captum": captum.__version__, "threads": args.threads, "cores": NCPU,
              "easel": args.easel, "cold": args.cold, "models": []}
    for name, key, card_path, card, build, image_path in cases:
        print(f"\n== {name} ==", flush=True)
        model = build(card)
        pixels = prepared_pixels(card, image_path)
        png = os.path.join(work, f"{key}-input.png")
        Image.fromarray(pixels).save(png)
        x = normalised(card, pixels)
        np.save(os.path.join(work, f"{key}-input.npy"), x)
        with torch.no_grad():
            logits = model(torch.from_numpy(x))[0]
        target = int(logits.argmax())
        side = min(x.shape[2], x.shape[3])
        window, stride = (4, 2) if side <= 64 else (16, 8)  # easel's Method::defaults
        print(f"  input {list(x.shape)} -> {png}; target {target} (logit {float(logits[target]):.4f})")
        captum_side = Captum(model, x, target, window, stride, args)
        settings = captum_side.calibrate(methods)
        easel_side = Easel(args.easel, card_path, png, target, side, work, args)
        for m in methods:  # Captum's warm-up (EfficientNet's occlusion was warmed by its calibration)
            if not (m == "occlusion" and side > 64):
                captum_side.run(m)

        samples = {m: {"easel": [], "captum": [], "easel_cold": [], "quiet": []} for m in methods}
        maps = {}
        for r in range(max(args.rounds, args.occlusion_rounds if "occlusion" in methods else 0)):
            for m in methods:
                n = args.occlusion_rounds if (m == "occlusion" and side > 64) else args.rounds
                if r >= n:
                    continue
                order = ("easel", "captum") if r % 2 == 0 else ("captum", "easel")
                for who in order:
                    if who == "easel":
                        secs, (amap, cold, meta), quiet = guarded(lambda: easel_side.run(m), args, f"easel {m}")
                        samples[m]["easel"].append(secs)
                        samples[m]["easel_cold"].append(cold)
                        maps.setdefault(m, {})["easel"] = amap
                        maps[m]["easel_meta"] = meta
                    else:
                        def captum_sample():
                            # like easel's pair of runs: an untimed call first, after the other
                            # side's process left caches and torch's threads cold
                            if not args.cold and not (m == "occlusion" and side > 64):
                                captum_side.run(m)
                            return captum_side.run(m)
                        secs, amap, quiet = guarded(captum_sample, args, f"Captum {m}")
                        samples[m]["captum"].append(secs)
                        maps.setdefault(m, {})["captum"] = amap
                    samples[m]["quiet"].append(quiet)
                print(f"  round {r + 1} {m:<10} easel {samples[m]['easel'][-1] * 1e3:9.1f} ms   Captum {samples[m]['captum'][-1] * 1e3:9.1f} ms", flush=True)

        rows = []
        print(f"\n  {'method':<10} {'Captum ms':>10} {'easel ms':>10} {'ratio':>6}  {'easel cold':>10}  {'map: max|diff|/max':>18} {'corr':>7}  Captum setting")
        for m in methods:
            c_med, e_med = float(np.median(samples[m]["captum"])), float(np.median(samples[m]["easel"]))
            cold_med = float(np.median(samples[m]["easel_cold"]))
            mark = "" if all(samples[m]["quiet"]) else " *"
            if m == "forward":
                # easel's "map" is occlusion's; compare the logits through the target logit instead
                rel, corr = float("nan"), float("nan")
            else:
                rel, corr = agreement(maps[m]["easel"], maps[m]["captum"])
            setting = {"occlusion": f"perturbations_per_eval={settings['perturbations_per_eval']}",
                       "ig": f"internal_batch_size={settings['internal_batch_size']}",
                       "smoothgrad": f"nt_samples_batch_size={settings['nt_samples_batch_size']}"}.get(m, "")
            agree = f"{rel:18.2e} {corr:7.4f}" if m != "forward" else f"{'-':>18} {'-':>7}"
            print(f"  {m:<10} {c_med * 1e3:10.1f} {e_med * 1e3:10.1f} {c_med / e_med:6.2f}  {cold_med * 1e3:10.1f}  {agree}  {setting}{mark}")
            rows.append({"method": m, "captum_ms": [s * 1e3 for s in samples[m]["captum"]], "easel_ms": [s * 1e3 for s in samples[m]["easel"]],
                         "easel_cold_ms": [s * 1e3 for s in samples[m]["easel_cold"]], "quiet": samples[m]["quiet"],
                         "captum_median_ms": c_med * 1e3, "easel_median_ms": e_med * 1e3, "ratio_captum_over_easel": c_med / e_med,
                         "map_max_abs_diff_rel": rel, "map_correlation": corr, "captum_setting": setting})
        if "ig" in maps:
            tl = maps["ig"]["easel_meta"].get("target_logit")
            if tl is not None:
                print(f"  target logit: PyTorch {float(logits[target]):.6f}, easel {tl:.6f} (same input and weights: equal to ~1e-5)")
        if any(not all(samples[m]["quiet"]) for m in methods):
            print("  * some samples were kept after --max-redo disturbed tries")
        report["models"].append({"model": name, "target": target, "captum_settings": settings, "rows": rows})
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
