"""gradviz dream versus Lucent's render_vis: the same optimisation, timed in one run.

Lucent runs twice per repeat: on the network as a Lucent user loads it (torchvision's, parameters
requiring gradients) and on gradviz's frozen copy of the same weights (Lucent's best case). All get the same objective (mean of
one channel of a mid layer), the same image size, the same number of Adam steps (lr 0.05), and
Lucid's standard transforms (pad 12, jitter 8, scale 0.9..1.1, rotate ±10°, jitter 4), each in its
own implementation (Lucent: kornia; gradviz: gradviz.optvis.transforms.lucid_transforms). Parameterisation:
plain pixels on both sides (Lucent: ``param.image(size, fft=False, decorrelate=False)``, which adds a
sigmoid; gradviz clamps). gradviz's per-step checkerboard metrics are switched off (Lucent has none).

Then gradviz alone: steps per second and peak memory for a batch of channels (one image each).

    bash benchmarks/install_peers.sh      # Lucent, benchmark only
    python benchmarks/bench_dream.py [--size 224] [--steps 5] [--repeats 2] [--out figures/jitter/bench_dream.json]
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import resource
import sys
import time
from pathlib import Path

import torch

from gradviz.core.models import load_model, resolve_device
from gradviz.core.objectives import channel
from gradviz.io.outputs import write_json
from gradviz.optvis.dream import DreamSettings, dream
from gradviz.optvis.optimizers import ADAM_LR
from gradviz.optvis.parameterization import start_images
from gradviz.optvis.transforms import lucid_transforms

DEFAULT_WEIGHTS = "../shared/weights/vgg16_features_imagenet.pth"
LAYER, CHANNEL = "features.22", 12  # VGG16 relu4_3, a mid layer (stride 8)


def time_gradviz(model, size: int, steps: int, channels: list[int], seed: int = 0) -> float:
    """Seconds for ``steps`` Adam steps on ``len(channels)`` images."""
    start = start_images("noise", size, batch=len(channels), seed=seed)
    settings = DreamSettings(steps=steps, optimizer="adam", lr=ADAM_LR, seed=seed, progress=False,
                             track_metrics=False, custom_transforms=lucid_transforms())
    objective = channel(LAYER, channels if len(channels) > 1 else channels[0])
    t0 = time.perf_counter()
    dream(model, objective, start, settings)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def time_lucent(net, size: int, steps: int, seed: int = 0) -> float:
    from lucent.optvis import param, render, transform

    torch.manual_seed(seed)
    t0 = time.perf_counter()
    render.render_vis(
        net, f"{LAYER.replace('.', '_')}:{CHANNEL}",
        param_f=lambda: param.image(size, fft=False, decorrelate=False),
        optimizer=lambda params: torch.optim.Adam(params, lr=ADAM_LR),
        transforms=transform.standard_transforms, thresholds=(steps,),
        preprocess=True, progress=False, show_image=False,
    )
    seconds = time.perf_counter() - t0
    for module in net.modules():  # Lucent never removes its hooks (one per module): remove them here
        module._forward_hooks.clear()
    return seconds


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB -> MiB, process peak RSS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=DEFAULT_WEIGHTS, help=f"VGG16 state dict (default {DEFAULT_WEIGHTS}; 'random' works too)")
    parser.add_argument("--size", type=int, default=224, help="image size for the comparison (default 224)")
    parser.add_argument("--steps", type=int, default=5, help="steps per timed run (default 5)")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per tool, alternating; the fastest counts (default 2)")
    parser.add_argument("--batch", type=int, default=64, help="channels in the batch measurement (default 64)")
    parser.add_argument("--batch-size", type=int, default=128, help="image size in the batch measurement (default 128)")
    parser.add_argument("--batch-steps", type=int, default=2, help="steps in the batch measurement (default 2)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default="figures/jitter/bench_dream.json")
    args = parser.parse_args()
    device = resolve_device(args.device)
    weights = args.weights if args.weights == "random" or Path(args.weights).exists() else "random"
    model = load_model("vgg16", weights, device=device)
    result = {
        "command": "python benchmarks/bench_dream.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, device {device}",
        "model": "vgg16", "weights": model.weights, "layer": LAYER, "channel": CHANNEL, "size": args.size,
        "steps": args.steps, "optimizer": f"adam lr {ADAM_LR}", "transforms": "Lucid standard (pad 12, jitter 8, scale, rotate, jitter 4)",
        "parameterization": "pixel (Lucent: sigmoid of pixels; gradviz: clamped pixels)",
    }

    # batch of channels first, so that the process peak RSS is this measurement's
    channels = list(range(args.batch))
    seconds = time_gradviz(model, args.batch_size, args.batch_steps, channels)
    result["batch"] = {"channels": args.batch, "size": args.batch_size, "steps": args.batch_steps,
                       "steps_per_second": args.batch_steps / seconds, "images_steps_per_second": args.batch * args.batch_steps / seconds,
                       "peak_memory_mb": peak_memory_mb(device),
                       "peak_memory_kind": "CUDA max allocated" if device.type == "cuda" else "process peak RSS"}
    print(f"gradviz batch of {args.batch} channels at {args.batch_size} px: {args.batch_steps / seconds:.3f} steps/s, "
          f"peak memory {result['batch']['peak_memory_mb']:.0f} MiB")

    try:
        import lucent.optvis.render  # noqa: F401
    except ImportError:
        print("Lucent is not installed (bash benchmarks/install_peers.sh); timing gradviz only.")
        lucent_available = False
    else:
        lucent_available = True
    time_gradviz(model, 64, 1, [CHANNEL])  # warm-up
    # Lucent as its users load a model (torchvision leaves requires_grad on, so every backward
    # pass also computes parameter gradients), and Lucent on gradviz's frozen network (its best case).
    as_loaded = copy.deepcopy(model.net).requires_grad_(True)
    ours, theirs, theirs_frozen = [], [], []
    for _ in range(args.repeats):
        ours.append(time_gradviz(model, args.size, args.steps, [CHANNEL]))
        if lucent_available:
            theirs.append(time_lucent(as_loaded, args.size, args.steps))
            theirs_frozen.append(time_lucent(model.net, args.size, args.steps))
    result["gradviz_seconds"] = ours
    result["gradviz_steps_per_second"] = args.steps / min(ours)
    print(f"gradviz: {args.steps} steps at {args.size} px in {min(ours):.2f} s ({args.steps / min(ours):.3f} steps/s)")
    if lucent_available:
        result["lucent_seconds"] = theirs
        result["lucent_steps_per_second"] = args.steps / min(theirs)
        result["speedup"] = min(theirs) / min(ours)
        result["lucent_frozen_seconds"] = theirs_frozen
        result["speedup_vs_frozen_lucent"] = min(theirs_frozen) / min(ours)
        print(f"lucent (model as loaded): {args.steps} steps at {args.size} px in {min(theirs):.2f} s ({args.steps / min(theirs):.3f} steps/s)")
        print(f"lucent (frozen model)   : {min(theirs_frozen):.2f} s")
        print(f"ratio lucent / gradviz time: {result['speedup']:.2f}x (model as loaded), "
              f"{result['speedup_vs_frozen_lucent']:.2f}x (frozen model)")
    write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
