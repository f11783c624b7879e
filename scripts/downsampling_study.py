"""The downsampling study behind docs/downsampling.md: same weights, different downsampling.

VGG16 and VGG19 with the real ImageNet convolution weights from ../shared/weights/, ResNet18 and
ResNet50 at random initialisation (or ``--resnet-weights imagenet`` / a path where a user has them).
Images: a subset of the built-in set (the 6 colour photographs and 2 noise images) at 128 px,
to keep the run under ~10 minutes on a 2-core CPU.

Writes figures/downsampling/<model>/{comparison.json, report.md, summary.png, stage-*.png},
figures/downsampling/study.json (the numbers the docs quote) and figures/downsampling/overview.png.

    python scripts/downsampling_study.py
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch

from gradviz.compare import Comparison, compare_variants, write_report
from gradviz.images import SKIMAGE_PHOTOS, ImageSet, builtin_images
from gradviz.models import load_model, resolve_device
from gradviz.outputs import write_json

VGG_STUDY_VARIANTS = ["maxpool", "stride", "avgpool", "blurpool3", "blurpool5", "relaxed"]
RESNET_STUDY_VARIANTS = ["stride", "blurpool3", "blurpool4", "blurpool4-stem"]
N_NOISE = 2  # noise images kept from the built-in set, besides the colour photographs
FIGURE_DPI = 70  # modest: the study's figures stay well under the repository's budget
LOG_BOTTOM = 1e-2  # line ratios below this (a blurred stem gives exactly 0) are drawn at the bottom


def study_images(size: int, seed: int) -> ImageSet:
    """The colour photographs of the built-in set and its first ``N_NOISE`` noise images."""
    full = builtin_images(size, seed)
    keep = [i for i, n in enumerate(full.names) if n.removeprefix("skimage:") in SKIMAGE_PHOTOS]
    keep += [i for i, n in enumerate(full.names) if n.startswith("noise:")][:N_NOISE]
    source = f"built-in subset: {len(SKIMAGE_PHOTOS)} colour scikit-image photographs + {N_NOISE} uniform-noise images (seed {seed})"
    return ImageSet(full.images[keep], [full.names[i] for i in keep], source)


def headline(comp: Comparison) -> dict:
    """Per variant: the numbers the docs quote (per stage, in stage order)."""
    out = {}
    for v in comp.variants:
        out[v.name] = {
            "layers": [s.layer for s in v.stages],
            "strides": [s.stride for s in v.stages],
            "own_line_ratio": [s.own_line_ratio for s in v.stages],
            "lattice_ratio": [s.metrics.lattice_ratio for s in v.stages],
            "hf_offlattice_fraction": [s.metrics.hf_offlattice_fraction for s in v.stages],
            "hf_offlattice_null": [s.metrics.hf_offlattice_null for s in v.stages],
            "tile_contrast": [s.metrics.tile_contrast for s in v.stages],
            "cosine_mean": [s.cosine_mean for s in v.stages],
            "predicted_line_to_dc": [v.predicted_line(s.stride) for s in v.stages],
        }
    return out


def _clean(obj):
    if isinstance(obj, float):
        return round(obj, 6) if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clean(v) for v in obj]
    return obj


def plot_overview(results: dict[str, Comparison], path: Path) -> None:
    """Per model: line at its own period / null (top) and high-frequency off-lattice fraction (bottom)."""
    import matplotlib.pyplot as plt

    from gradviz.plots import save_figure

    fig, axes = plt.subplots(2, len(results), figsize=(3.2 * len(results), 5.2), squeeze=False)
    for col, (arch, comp) in enumerate(results.items()):
        for v in comp.variants:
            xs = [s.stride for s in v.stages]
            axes[0, col].plot(xs, [s.own_line_ratio for s in v.stages], marker="o", ms=3, label=v.name)
            axes[1, col].plot(xs, [s.metrics.hf_offlattice_fraction for s in v.stages], marker="o", ms=3, label=v.name)
        stages = comp.variants[0].stages
        axes[0, col].axhline(1.0, color="k", ls=":", lw=0.8)
        axes[1, col].plot([s.stride for s in stages], [s.metrics.hf_offlattice_null for s in stages], "k:", lw=0.8)
        axes[0, col].set_yscale("log")
        axes[0, col].set_ylim(bottom=LOG_BOTTOM)
        trained = "random init" if comp.weights.startswith("random") else "trained weights"
        axes[0, col].set_title(f"{arch}\n{trained}", fontsize=8)
        for ax in axes[:, col]:
            ax.set_xscale("log", base=2)
            ax.tick_params(labelsize=6)
            ax.set_xlabel("stage stride", fontsize=7)
        axes[0, col].legend(fontsize=5)
    axes[0, 0].set_ylabel("energy at period = stride / null", fontsize=7)
    axes[1, 0].set_ylabel("high-freq. off-lattice fraction\n(dotted: white noise)", fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=FIGURE_DPI)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vgg16-weights", default="../shared/weights/vgg16_features_imagenet.pth")
    p.add_argument("--vgg19-weights", default="../shared/weights/vgg19_features_imagenet_q8_fp16.pth")
    p.add_argument("--resnet-weights", default="random", help="'random' (default), 'imagenet' or a path (one for both ResNets)")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default="figures/downsampling")
    args = p.parse_args(argv)

    torch.manual_seed(args.seed)
    device = resolve_device(args.device)
    images = study_images(args.size, args.seed)
    plan = [
        ("vgg16", args.vgg16_weights, VGG_STUDY_VARIANTS),
        ("vgg19", args.vgg19_weights, VGG_STUDY_VARIANTS),
        ("resnet18", args.resnet_weights, RESNET_STUDY_VARIANTS),
        ("resnet50", args.resnet_weights, RESNET_STUDY_VARIANTS),
    ]
    out = Path(args.out)
    results: dict[str, Comparison] = {}
    timings = {}
    for arch, weights, variants in plan:
        start = time.perf_counter()
        model = load_model(arch, weights, seed=args.seed, device=device)
        comp = compare_variants(model, variants, images, seed=args.seed)
        stages = [s.layer for s in comp.variants[0].stages]
        write_report(comp, out / arch, stage_figures=[stages[1], stages[-1]], dpi=FIGURE_DPI)
        results[arch] = comp
        timings[arch] = time.perf_counter() - start
        print(f"{arch}: {timings[arch]:.0f} s -> {out / arch}")
    plot_overview(results, out / "overview.png")
    write_json(
        out / "study.json",
        _clean({
            "script": "scripts/downsampling_study.py",
            "images": images.source,
            "image_names": images.names,
            "size": args.size,
            "seed": args.seed,
            "device": str(device),
            "objective": next(iter(results.values())).objective,
            "seconds": timings,
            "models": {arch: {"weights": c.weights, "variants": headline(c)} for arch, c in results.items()},
        }),
    )
    print(f"wrote {out}/study.json and overview.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
