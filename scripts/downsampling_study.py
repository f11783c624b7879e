"""The downsampling study behind docs/downsampling.md: same weights, different downsampling.

VGG16 and VGG19 with the real ImageNet convolution weights from ../shared/weights/, ResNet18 and
ResNet50 at random initialisation, repeated for ``--seeds`` initialisation seeds (or
``--resnet-weights imagenet`` / a path where a user has them, then one run). Images: the 6 colour
photographs of the built-in set at 128 px, each scaled to unit gradient energy, to keep the run
within ~20 minutes on a 2-core CPU.

Writes figures/downsampling/<model>/{comparison.json, report.md, summary.png, stage-*.png} (the first
seed), figures/downsampling/study.json (the numbers the docs quote: per seed, and mean and sd over the
seeds), figures/downsampling/summary.md (its tables) and figures/downsampling/overview.png.

    python scripts/downsampling_study.py
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import torch

from gradviz.core.models import load_model, resolve_device
from gradviz.downsampling.compare import Comparison, compare_variants
from gradviz.downsampling.render import write_comparison
from gradviz.io.images import SKIMAGE_PHOTOS, ImageSet, builtin_images
from gradviz.io.outputs import write_json
from gradviz.io.plotting import new_figure, save_figure

VGG_STUDY_VARIANTS = ["maxpool", "stride", "avgpool", "blurpool3", "blurpool5", "relaxed"]
RESNET_STUDY_VARIANTS = ["stride", "blurpool4", "blurpool4-stem"]
FIGURE_DPI = 100  # 8-pt labels about 11 px tall: readable, and the folder stays a few MB
OVERVIEW_DPI = 110  # the overview is the figure the docs lead with: legible ticks
LOG_BOTTOM = 1e-2  # line ratios below this (a blurred stem gives exactly 0) are drawn at the bottom


def study_images(size: int, seed: int) -> ImageSet:
    """The colour photographs of the built-in set (no noise images: they would dominate pooled numbers)."""
    full = builtin_images(size, seed)
    keep = [i for i, n in enumerate(full.names) if n.removeprefix("skimage:") in SKIMAGE_PHOTOS]
    return ImageSet(full.images[keep], [full.names[i] for i in keep], f"built-in subset: {len(keep)} colour scikit-image photographs")


def headline(comp: Comparison) -> dict:
    """Per variant: the numbers the docs quote (per stage, in stage order)."""
    out = {}
    for v in comp.variants:
        out[v.name] = {
            "layers": [s.layer for s in v.layers],
            "strides": [s.stride for s in v.layers],
            "own_line_excess": [s.own_line_excess for s in v.layers],
            "own_line_p": [s.own_line_p for s in v.layers],
            "lattice_excess": [s.metrics.lattice_excess for s in v.layers],
            "p_value": [s.metrics.p_value for s in v.layers],
            "grid_detected": [s.metrics.grid_detected for s in v.layers],
            "verdict": [s.metrics.verdict for s in v.layers],
            "shared_tile_cv": [s.metrics.shared_tile_cv for s in v.layers],
            "tile_p_value": [s.metrics.tile_p_value for s in v.layers],
            "hf_offlattice_fraction": [s.metrics.hf_offlattice_fraction for s in v.layers],
            "tile_contrast": [s.metrics.tile_contrast for s in v.layers],
            "cosine_mean": [s.cosine_mean for s in v.layers],
            "predicted_line_to_dc": [v.predicted_line(s.stride) for s in v.layers],
        }
    return out


def over_seeds(per_seed: list[dict]) -> dict:
    """Mean and sd over seeds of each numeric per-stage list, and the count of seeds with a grid."""
    out = {}
    for variant in per_seed[0]:
        runs = [h[variant] for h in per_seed]
        entry = {"layers": runs[0]["layers"], "strides": runs[0]["strides"], "n_seeds": len(runs)}
        for key in ("own_line_excess", "lattice_excess", "shared_tile_cv", "hf_offlattice_fraction", "cosine_mean"):
            columns = list(zip(*[r[key] for r in runs]))
            entry[key] = {
                "mean": [statistics.fmean(c) if all(_finite(x) for x in c) else None for c in columns],
                "sd": [statistics.stdev(c) if len(c) > 1 and all(_finite(x) for x in c) else None for c in columns],
            }
        entry["grid_detected_seeds"] = [sum(c) for c in zip(*[r["grid_detected"] for r in runs])]
        entry["own_line_significant_seeds"] = [sum(p < 0.05 for p in c) for c in zip(*[r["own_line_p"] for r in runs])]
        entry["tile_detected_seeds"] = [sum(_finite(p) and p < 0.05 for p in c) for c in zip(*[r["tile_p_value"] for r in runs])]
        out[variant] = entry
    return out


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def _clean(obj):
    if isinstance(obj, float):
        return round(obj, 6) if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clean(v) for v in obj]
    return obj


def plot_overview(summary: dict[str, dict], path: Path) -> None:
    """Per model: line excess at its own period (top; mean and sd over seeds for random-init models;
    1 = no line) and the high-frequency off-lattice share of the energy (bottom)."""
    fig, axes = new_figure(2, len(summary), figsize=(3.2 * len(summary), 5.2), squeeze=False)
    for col, (arch, info) in enumerate(summary.items()):
        for name, v in info["variants"].items():
            xs = v["strides"]
            for row, key in ((0, "own_line_excess"), (1, "hf_offlattice_fraction")):
                mean = [math.nan if m is None else max(m, LOG_BOTTOM) for m in v[key]["mean"]]
                sd = [0.0 if d is None else d for d in v[key]["sd"]]
                bars = axes[row, col].errorbar(xs, mean, yerr=sd, capsize=2, lw=1, label=name)
                colour = bars[0].get_color()
                # filled: the own line is significant (raw p < 0.05) in a majority of the seeds
                filled = [row == 1 or 2 * k > info["n_seeds"] for k in v["own_line_significant_seeds"]]
                for x, y, f in zip(xs, mean, filled):
                    axes[row, col].plot([x], [y], "o", ms=4, color=colour, mfc=colour if f else "white")
        axes[0, col].axhline(1.0, color="k", ls=":", lw=0.8)
        axes[0, col].set_yscale("log")
        axes[0, col].set_ylim(bottom=LOG_BOTTOM)
        axes[0, col].set_title(f"{arch}\n{info['weights_kind']}, {info['n_seeds']} seed(s)", fontsize=8)
        for ax in axes[:, col]:
            ax.set_xscale("log", base=2)
            ax.tick_params(labelsize=6)
            ax.set_xlabel("stage stride", fontsize=7)
        axes[0, col].legend(fontsize=5)
    axes[0, 0].set_ylabel("line excess at period = stride\n(1 = none; filled: p < 0.05 in most seeds)", fontsize=7)
    axes[1, 0].set_ylabel("high-freq. off-lattice share", fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=OVERVIEW_DPI)


def _cell(entry: dict, key: str, i: int, digits: int = 3) -> str:
    mean, sd = entry[key]["mean"][i], entry[key]["sd"][i]
    if mean is None:
        return "n/a"
    return f"{mean:.{digits}g}" if sd is None else f"{mean:.{digits}g} ± {sd:.2g}"


def summary_markdown(study: dict) -> str:
    """The study's tables: per model and variant, per stage, from study.json."""
    lines = [
        "<!-- written by scripts/downsampling_study.py from study.json -->",
        "",
        f"Images: {study['images']} at {study['size']} px; objective {study['objective']}.",
        "Random-init models: mean ± sd over the initialisation seeds, and in brackets the number of seeds where",
        "the test is significant at 0.05; trained models: one run (brackets: 1 = significant).",
        "",
    ]
    for arch, model in study["models"].items():
        variants = model["variants"]
        first = next(iter(variants.values()))
        header = "| variant | " + " | ".join(f"{l} (S={s})" for l, s in zip(first["layers"], first["strides"])) + " |"
        sep = "|---|" + "---|" * len(first["layers"])
        lines += [f"## {arch} ({model['weights_kind']}, {model['n_seeds']} seed(s))", ""]
        for title, key, count in (
            ("Line excess at period = stride (raw p < 0.05)", "own_line_excess", "own_line_significant_seeds"),
            ("Lattice excess, all octaves: a summary (seeds where some octave is detected, Holm)", "lattice_excess",
             "grid_detected_seeds"),
            ("Shared energy tile cv (tile p < 0.05)", "shared_tile_cv", "tile_detected_seeds"),
            ("High-frequency off-lattice share of the energy", "hf_offlattice_fraction", None),
            ("Cosine similarity of the stage's activations to the original's", "cosine_mean", None),
        ):
            lines += [f"### {title}", "", header, sep]
            for name, entry in variants.items():
                cells = []
                for i in range(len(entry["layers"])):
                    c = _cell(entry, key, i)
                    cells.append(c if count is None else f"{c} ({entry[count][i]})")
                lines.append(f"| {name} | " + " | ".join(cells) + " |")
            lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vgg16-weights", default="../shared/weights/vgg16_features_imagenet.pth")
    p.add_argument("--vgg19-weights", default="../shared/weights/vgg19_features_imagenet_q8_fp16.pth")
    p.add_argument("--resnet-weights", default="random", help="'random' (default), 'imagenet' or a path (one for both ResNets)")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seeds", type=int, default=5, help="initialisation seeds for random-init models (default: 5)")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default="figures/downsampling")
    p.add_argument("--summary-only", action="store_true",
                   help="only rewrite summary.md and overview.png from an existing study.json")
    args = p.parse_args(argv)
    out = Path(args.out)
    if args.summary_only:
        study = json.loads((out / "study.json").read_text())
        (out / "summary.md").write_text(summary_markdown(study) + "\n")
        plot_overview(study["models"], out / "overview.png")
        print(f"wrote {out}/summary.md and overview.png")
        return 0

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
    models, timings = {}, {}
    for arch, weights, variants in plan:
        start = time.perf_counter()
        seeds = range(args.seed, args.seed + (args.seeds if weights == "random" else 1))
        per_seed = []
        for seed in seeds:
            model = load_model(arch, weights, seed=seed, device=device)
            comp = compare_variants(model, variants, images, seed=seed)
            if seed == args.seed:
                stages = [s.layer for s in comp.variants[0].layers]
                write_comparison(comp, out / arch, stage_figures=[stages[1], stages[-1]], dpi=FIGURE_DPI)
            per_seed.append(headline(comp))
        timings[arch] = time.perf_counter() - start
        models[arch] = {
            "weights": comp.weights,
            "weights_kind": "random init" if weights == "random" else "trained weights",
            "seeds": list(seeds),
            "n_seeds": len(per_seed),
            "variants": over_seeds(per_seed),
            "per_seed": per_seed,
        }
        print(f"{arch}: {timings[arch]:.0f} s -> {out / arch}", flush=True)
    plot_overview(models, out / "overview.png")
    write_json(
        out / "study.json",
        _clean({
            "script": "scripts/downsampling_study.py",
            "images": images.source,
            "image_names": images.names,
            "size": args.size,
            "seed": args.seed,
            "device": str(device),
            "objective": comp.objective,
            "seconds": timings,
            "models": models,
        }),
    )
    (out / "summary.md").write_text(summary_markdown(json.loads((out / "study.json").read_text())) + "\n")
    print(f"wrote {out}/study.json, summary.md and overview.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
