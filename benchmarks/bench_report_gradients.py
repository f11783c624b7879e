"""Gradient stage of a report: gradviz versus a plain per-image loop with captum's Saliency.

Both sides compute the same thing: for every image and every report layer (the outputs of the
downsampling stages), the gradient of the DeepDream objective of that layer with respect to the
input pixels, and both feed it to the same spectrum accumulator. gradviz shares one forward
pass per batch across layers and stops it at the deepest layer; the peer runs, per image and
per layer, captum's Saliency on a forward function that taps the layer in a full forward pass,
as a captum user would write it. Runs alternate, and the best of ``--repeats`` is kept per side.

    python benchmarks/bench_report_gradients.py                 # VGG16, 224 px, 8 images, CPU
    python benchmarks/bench_report_gradients.py --memory        # also peak memory at 8 and 32 images
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
from captum.attr import Saliency

from gradviz.core.layermap import layer_map
from gradviz.core.models import load_model, resolve_device
from gradviz.core.taps import Taps
from gradviz.io.images import builtin_images
from gradviz.report import measure_layers, plan_layers
from gradviz.spectrum import SpectrumAccumulator

DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1].parent / "shared" / "weights" / "vgg16_features_imagenet.pth"


def captum_loop(model, images, specs) -> None:
    """The peer: per image, per layer, captum Saliency over a full forward pass with a hook."""
    accs = {s.name: SpectrumAccumulator(s.stride) for s in specs}
    for spec in specs:
        def forward(x, spec=spec):
            with Taps(model, spec.objective.layers) as taps:  # no early stop: the whole network runs
                return spec.objective(taps.forward(x))

        saliency = Saliency(forward)
        for i in range(images.shape[0]):
            accs[spec.name].add(saliency.attribute(images[i : i + 1], abs=False))


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device) -> float:
    sync(device)
    t = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t


def peak_rss_mb(n_images: int, args) -> float:
    """Peak resident memory of a child process that runs the gradient stage on ``n_images``."""
    code = (
        "import resource, torch\n"
        "from gradviz.io.images import builtin_images\n"
        "from gradviz.core.models import load_model\n"
        "from gradviz.core.layermap import layer_map\n"
        "from gradviz.report import measure_layers, plan_layers\n"
        f"m = load_model('{args.model}', {args.weights!r}, device='{args.device}')\n"
        f"x = builtin_images({args.size}, noise={n_images}).images[-{n_images}:]\n"
        f"measure_layers(m, x, plan_layers(m, None, layer_map(m, {args.size}), include_logits=False), batch_size={args.batch_size}, progress=False)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="vgg16")
    p.add_argument("--weights", default=str(DEFAULT_WEIGHTS) if DEFAULT_WEIGHTS.exists() else "random")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--images", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--device", default="auto")
    p.add_argument("--memory", action="store_true", help="also measure peak RSS at 8 and 32 images")
    p.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args()
    device = resolve_device(args.device)
    args.device = str(device)

    model = load_model(args.model, args.weights, device=device)
    images = builtin_images(args.size).images[: args.images].to(device)
    specs = plan_layers(model, None, layer_map(model, args.size), include_logits=False)
    print(f"{args.model} ({model.weights}), {images.shape[0]} images at {args.size} px, device {device}, "
          f"{torch.get_num_threads()} threads; layers: {', '.join(s.name for s in specs)}")

    ours, peer = [], []
    for _ in range(args.repeats):
        ours.append(timed(lambda: measure_layers(model, images, specs, batch_size=args.batch_size, progress=False), device))
        peer.append(timed(lambda: captum_loop(model, images, specs), device))
        print(f"  gradviz {ours[-1]:.2f} s   captum loop {peer[-1]:.2f} s")
    result = {
        "model": args.model, "weights": model.weights, "size": args.size, "images": int(images.shape[0]),
        "device": str(device), "threads": torch.get_num_threads(), "torch": torch.__version__,
        "gradviz_s": min(ours), "captum_loop_s": min(peer), "speedup": min(peer) / min(ours),
    }
    print(f"gradviz {result['gradviz_s']:.2f} s, captum per-image loop {result['captum_loop_s']:.2f} s: "
          f"{result['speedup']:.2f}x faster")
    if args.memory:
        result["peak_rss_mb"] = {n: peak_rss_mb(n, args) for n in (8, 32)}
        print(f"peak RSS of the gradient stage: {result['peak_rss_mb'][8]:.0f} MB at 8 images, "
              f"{result['peak_rss_mb'][32]:.0f} MB at 32 images")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
