"""A whole ``gradviz report`` against the bare captum gradient loop, and the gradient stage against the machine.

Three measurements, alternating within each repeat, in one run on one machine:

* **end to end**: ``python -m gradviz report`` in a fresh process, timed from start to finish (imports, model
  and weights, images, gradients, the grid tests, figures, report.html/.md/.json);
* **the peer**: the loop a captum user writes, per layer and per image, captum's ``Saliency`` on a forward
  function truncated at that layer, timed in-process after imports, model and images are loaded (the
  gradients only, nothing accumulated, tested or drawn);
* **the gradient stage** of the report in-process (``measure_layers``: gradients, spectra, tests), and a
  plain pass: VGG16's convolutional part forward and backward to the input only, batches of 8 in the
  channels-last layout, the best throughput this model reaches on this machine without any measuring.

Workload: VGG16 with the ImageNet convolution weights (``../shared/weights/vgg16_features_imagenet.pth``),
the 5 stage layers with the DeepDream objective, N photographs at 224 px: crops of the 12 built-in
scikit-image photographs written to PNG files in a temporary folder, read by both sides. FLOPs are counted
from the convolutions' multiply-adds (forward hooks on one image): the report runs one forward pass to the
deepest layer and one backward pass per layer, the peer a forward and a backward pass per layer.

    python benchmarks/bench_report_end_to_end.py --json benchmarks/results/report_end_to_end_cpu.json
    python benchmarks/bench_report_end_to_end.py --counts 8 --repeats 1      # a quick look
    python benchmarks/bench_report_end_to_end.py --parts --json benchmarks/results/report_parts_cpu.json
    python benchmarks/bench_report_end_to_end.py --counts 192 --repeats 1 --ends-only --json benchmarks/results/report_end_to_end_192_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from captum.attr import Saliency
from PIL import Image

from gradviz.core.gradients import input_gradients
from gradviz.core.layermap import probe_map
from gradviz.core.models import load_model
from gradviz.core.taps import Taps
from gradviz.io.images import builtin_images, load_images
from gradviz.report import build_report, measure_layers, plan_layers
from gradviz.report.render import write_report

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_WEIGHTS = ROOT.parent / "shared" / "weights" / "vgg16_features_imagenet.pth"
SIZE = 224
# Crops are cut from the photographs resized to this side, at offsets that differ from one copy to the next.
SOURCE_SIDE = 256
# Images per batch, in the report (its default) and in the plain pass.
BATCH = 8


def write_photographs(folder: Path, count: int) -> None:
    """``count`` 224 px PNG crops of the built-in photographs: photograph i % 12, offset by i // 12."""
    photos = builtin_images(SOURCE_SIDE, noise=0).images
    room = SOURCE_SIDE - SIZE
    for i in range(count):
        k = i // len(photos)
        top, left = (7 * k) % (room + 1), (13 * k) % (room + 1)
        crop = photos[i % len(photos), :, top : top + SIZE, left : left + SIZE]
        pixels = (crop.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:04d}.png")


def captum_loop(model, images, specs) -> None:
    """The peer: per layer, per image, captum's Saliency on a forward pass stopped at the layer."""
    for spec in specs:
        def forward(x, spec=spec):
            with Taps(model, spec.objective.layers, stop=True) as taps:
                return spec.objective(taps.forward(x))

        saliency = Saliency(forward)
        for i in range(images.shape[0]):
            saliency.attribute(images[i : i + 1].clone().requires_grad_(True), abs=False)


def plain_pass(model, batch) -> None:
    """VGG16's convolutional part forward, then backward to the input only (parameters are frozen)."""
    x = batch.detach().clone(memory_format=torch.channels_last).requires_grad_(True)
    with torch.enable_grad():
        out = model.net.features((x - model.mean) / model.std)
        torch.autograd.grad(out.sum(), x)


def conv_macs(model, forward) -> int:
    """Multiply-adds of the convolutions that ``forward()`` runs (ReLUs, pools and the rest are left out:
    well under 1% here). The backward pass to the input costs as many again: one transposed convolution
    per convolution, no weight gradient."""
    macs = 0

    def hook(module, args, out):
        nonlocal macs
        macs += out.numel() * module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    try:
        with torch.no_grad():
            forward()
    finally:
        for h in handles:
            h.remove()
    return macs


def truncated_forward(model, x, spec) -> None:
    with Taps(model, spec.objective.layers, stop=True) as taps:
        taps.forward(x)


def run_report(folder: Path, out: Path, weights: str) -> float:
    command = [sys.executable, "-m", "gradviz", "report", "--model", "vgg16", "--weights", weights,
               "--images", str(folder), "--size", str(SIZE), "--out", str(out), "--quiet"]
    start = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - start


def measure_parts(model, specs, weights: str, repeats: int) -> dict:
    """What a report pays whatever the number of images, and what the channels-last layout saves."""
    images = builtin_images(SIZE, noise=0).images[:BATCH]
    objectives = {s.name: s.objective for s in specs}
    report = build_report(model, images, layers=[s.name for s in specs], progress=False)
    parts: dict[str, list[float]] = {"import_torch_torchvision_s": [], "load_vgg16_s": [], "write_report_s": [],
                                     "gradients_channels_last_s": [], "gradients_contiguous_s": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats):
            parts["import_torch_torchvision_s"].append(timed(lambda: subprocess.run(
                [sys.executable, "-c", "import torch, torchvision"], check=True)))
            parts["load_vgg16_s"].append(timed(lambda: load_model("vgg16", weights, device="cpu")))
            parts["write_report_s"].append(timed(lambda: write_report(report, Path(tmp) / f"r{r}")))
            for layout, key in ((torch.channels_last, "gradients_channels_last_s"),
                                (torch.contiguous_format, "gradients_contiguous_s")):
                input_gradients(model, images, objectives, layout)  # warm
                parts[key].append(timed(lambda: input_gradients(model, images, objectives, layout)))
    result = {k: summary(v) for k, v in parts.items()}
    result["contiguous_over_channels_last"] = (statistics.median(parts["gradients_contiguous_s"])
                                               / statistics.median(parts["gradients_channels_last_s"]))
    for k, v in result.items():
        print(f"  {k}: {v['median']:.2f} s ({v['min']:.2f}-{v['max']:.2f})" if isinstance(v, dict) else f"  {k}: {v:.2f}")
    return result


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": values}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=str(DEFAULT_WEIGHTS))
    parser.add_argument("--counts", default="8,64", help="image counts, comma-separated (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each measurement per count (default: %(default)s)")
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument("--parts", action="store_true",
                        help="only the fixed costs (imports, model, writing) and the two layouts, on 8 images")
    parser.add_argument("--ends-only", action="store_true",
                        help="only the whole report and the captum loop (no stage or plain pass): for large counts")
    args = parser.parse_args()
    if not Path(args.weights).is_file():
        raise SystemExit(f"no weights file at {args.weights}; pass --weights PATH (VGG16 convolution weights)")
    counts = [int(c) for c in args.counts.split(",")]

    model = load_model("vgg16", args.weights, device="cpu")
    specs = plan_layers(model, None, probe_map(model, SIZE).for_images(SIZE), include_logits=False)
    one = builtin_images(SIZE, noise=0).images[:1]
    to_layer = [conv_macs(model, lambda s=s: truncated_forward(model, one, s)) for s in specs]  # F_k
    # FLOPs = 2 x multiply-adds; every backward pass costs what its forward pass does
    flops = {
        "gradviz": 2 * (max(to_layer) + sum(to_layer)),  # one shared forward, one backward per layer
        "captum": 2 * 2 * sum(to_layer),  # per layer a truncated forward and its backward
        "plain": 2 * 2 * conv_macs(model, lambda: model.net.features(one)),
    }
    machine = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
               "threads": torch.get_num_threads(), "torch": torch.__version__, "python": platform.python_version()}
    print(f"VGG16 ({model.weights}), layers {', '.join(s.name for s in specs)}; {machine}")
    print("GFLOP per image: " + ", ".join(f"{k} {v / 1e9:.1f}" for k, v in flops.items()))

    results: dict = {"workload": {"model": "vgg16", "weights": Path(args.weights).name, "size": SIZE, "batch": BATCH,
                                  "layers": [s.name for s in specs], "objective": "deepdream",
                                  "images": "crops of the 12 built-in scikit-image photographs, PNG"},
                     "machine": machine, "gflop_per_image": {k: v / 1e9 for k, v in flops.items()}, "counts": {}}
    if args.parts:
        results["parts"] = measure_parts(model, specs, args.weights, args.repeats)
        counts = []
    with tempfile.TemporaryDirectory() as tmp:
        plain_batch = builtin_images(SIZE, noise=0).images[:BATCH]
        for n in counts:
            folder = Path(tmp) / f"images-{n}"
            folder.mkdir()
            write_photographs(folder, n)
            images = load_images(str(folder), size=SIZE).images
            runs: dict[str, list[float]] = {"report_end_to_end_s": [], "captum_loop_s": [], "gradient_stage_s": [],
                                            "plain_pass_s_per_batch": []}
            for r in range(args.repeats):
                runs["report_end_to_end_s"].append(run_report(folder, Path(tmp) / f"out-{n}-{r}", args.weights))
                runs["captum_loop_s"].append(timed(lambda: captum_loop(model, images, specs)))
                if not args.ends_only:
                    runs["gradient_stage_s"].append(timed(
                        lambda: measure_layers(model, images, specs, batch_size=BATCH, progress=False)))
                    plain_pass(model, plain_batch)  # warm
                    runs["plain_pass_s_per_batch"].append(timed(lambda: plain_pass(model, plain_batch)))
                print(f"  {n} images, run {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f}" for k, v in runs.items() if v))
            runs = {k: v for k, v in runs.items() if v}
            med = {k: statistics.median(v) for k, v in runs.items()}
            row = {k: summary(v) for k, v in runs.items()}
            row["speedup_end_to_end_vs_captum"] = med["captum_loop_s"] / med["report_end_to_end_s"]
            row["captum_loop_gflops"] = flops["captum"] * n / med["captum_loop_s"] / 1e9
            results["counts"][str(n)] = row
            print(f"{n} images (medians of {args.repeats}): report end to end {med['report_end_to_end_s']:.2f} s, "
                  f"captum loop {med['captum_loop_s']:.2f} s -> {row['speedup_end_to_end_vs_captum']:.2f}x; "
                  f"captum loop {row['captum_loop_gflops']:.0f} GFLOP/s")
            if args.ends_only:
                continue
            stage_rate = flops["gradviz"] * n / med["gradient_stage_s"]
            plain_rate = flops["plain"] * BATCH / med["plain_pass_s_per_batch"]
            row.update({
                "speedup_gradient_stage_vs_captum": med["captum_loop_s"] / med["gradient_stage_s"],
                "gradient_stage_gflops": stage_rate / 1e9, "plain_pass_gflops": plain_rate / 1e9,
                "gradient_stage_vs_plain_pass": stage_rate / plain_rate,
            })
            print(f"  gradient stage {med['gradient_stage_s']:.2f} s ({row['gradient_stage_gflops']:.0f} GFLOP/s) = "
                  f"{row['gradient_stage_vs_plain_pass']:.2f} of the plain pass ({row['plain_pass_gflops']:.0f} GFLOP/s)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
