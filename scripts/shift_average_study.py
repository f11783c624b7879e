"""Removing the grid from attribution maps: Saliency, SmoothGrad and IntegratedGradients, each plain and
averaged over circular shifts of the layer's period (``gradviz.ShiftAverage``).

Workload: the DeepDream objective of one layer, 4 built-in photographs at 128 px;
- VGG16 with the ImageNet convolution weights (``../shared/weights/vgg16_features_imagenet.pth``),
  ``features.8`` (period 2) and ``features.15`` (period 4): one model, so one run;
- ResNet50 at random initialisation, seeds 0-4, ``relu`` (period 2) and ``layer1`` (period 4).
Shift averaging: none, a seeded sample of half the shifts (2 of 4, 8 of 16), and all of them.
Per condition: the line test per octave (excess, Holm-adjusted p), the attribution passes per image, the
seconds, and the jitter law's prediction for a sample: a grid component keeps the fraction
(S^2 - n) / (n (S^2 - 1)) of its power when n of the S^2 shifts are drawn without replacement, so the
excess above 1 should shrink by that factor if the whole excess is locked to the grid.

    python scripts/shift_average_study.py            # writes figures/shift_average/ (JSON and figure)
    python scripts/shift_average_study.py --figure-only   # the maps figure alone (6 minutes)
    python scripts/shift_average_study.py --table    # the Markdown table of docs/removing.md, from the runs in the JSON
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from gradviz.core.gradients import IG_STEPS, SMOOTHGRAD_SAMPLES, attribution
from gradviz.core.layermap import probe_map
from gradviz.core.models import load_model
from gradviz.core.objectives import deepdream
from gradviz.io.images import builtin_images
from gradviz.io.plotting import CROP_SIZE, TEXT_SIZE, crop_origin, new_figure, plot_gradient_map, save_figure
from gradviz.spectrum import checkerboard_metrics

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT.parent / "shared" / "weights" / "vgg16_features_imagenet.pth"
OUT = ROOT / "figures" / "shift_average"
SIZE, N_IMAGES, SEEDS = 128, 4, range(5)
METHODS = {"saliency": 1, "smoothgrad": SMOOTHGRAD_SAMPLES, "integrated-gradients": IG_STEPS}  # passes per map
SHORT = {"saliency": "Saliency", "smoothgrad": "SmoothGrad", "integrated-gradients": "IG"}  # panel titles
MODELS = {"vgg16": ("features.8", "features.15"), "resnet50": ("relu", "layer1")}


def predicted_kept(period: int, n: int) -> float:
    """E|mean of n distinct phases of a lattice frequency|^2, drawn without replacement from the S^2 shifts."""
    total = period * period
    return (total - n) / (n * (total - 1)) if n < total else 0.0


def conditions(period: int) -> list[int | None]:
    """Shift counts: 0 (no averaging), half of the S^2 shifts (seeded), all of them (None)."""
    return [0, period * period // 2, None]


def measure(model, images, layer: str, period: int, seed: int, maps_out: dict) -> list[dict]:
    """Every method and shift count on one model and layer; the first image's maps go to ``maps_out``."""
    rows = []
    objective = deepdream(layer)
    for method, passes in METHODS.items():
        for n in conditions(period):
            source = method if n == 0 else f"{method}+shift-average"
            start = time.perf_counter()
            maps = attribution(model, images, objective, source, seed, period, n)
            seconds = time.perf_counter() - start
            m = checkerboard_metrics(maps, period, seed=seed)
            shifts = 1 if n == 0 else (period * period if n is None else n)
            rows.append({"method": method, "shifts": shifts, "all_shifts": n is None, "passes_per_image": passes * shifts,
                         "seconds": seconds, "verdict": m.verdict, "grid_detected": m.grid_detected,
                         "p_value": m.p_value, "octave_excess": list(m.octave_excess),
                         "octave_p_adjusted": list(m.octave_p_adjusted),
                         "predicted_kept": 1.0 if n == 0 else predicted_kept(period, shifts)})
            maps_out[(method, shifts)] = maps[0]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=str(WEIGHTS))
    parser.add_argument("--table", action="store_true", help="print the Markdown table from the saved JSON")
    parser.add_argument("--figure-only", action="store_true",
                        help="only the maps figure: seed 0, the period-4 layers (the JSON is left as it is)")
    args = parser.parse_args()
    if args.table:
        data = json.loads((OUT / "study.json").read_text())
        data["summary"] = summarise(data["runs"])  # the summary, recomputed from the runs
        (OUT / "study.json").write_text(json.dumps(data, indent=2) + "\n")
        print(markdown_table(data["summary"]))
        return
    OUT.mkdir(parents=True, exist_ok=True)
    images = builtin_images(SIZE, noise=0).images[:N_IMAGES]
    figure_maps: dict[str, dict] = {}
    result = {"workload": {"size": SIZE, "images": N_IMAGES, "objective": "deepdream", "weights_vgg16": Path(args.weights).name,
                           "resnet50": "random init, seeds 0-4", "torch": torch.__version__,
                           "threads": torch.get_num_threads()}, "runs": []}
    for arch, layers in MODELS.items():
        seeds = [0] if arch == "vgg16" or args.figure_only else list(SEEDS)
        for seed in seeds:
            model = load_model(arch, args.weights if arch == "vgg16" else "random", seed=seed, device="cpu")
            lmap = probe_map(model, SIZE).for_images(SIZE)
            for layer in layers:
                period = lmap.period(layer)
                if args.figure_only and period != 4:
                    continue
                maps: dict = {}
                for row in measure(model, images, layer, period, seed, maps):
                    result["runs"].append({"model": arch, "seed": seed, "layer": layer, "period": period, **row})
                    r = result["runs"][-1]
                    print(f"{arch} seed {seed} {layer} S={period} {r['method']:>20} x{r['shifts']:<3d} "
                          f"excess {[round(e, 2) for e in r['octave_excess']]} p {r['p_value']:.3g} {r['seconds']:.1f} s")
                if seed == 0 and period == 4:
                    figure_maps[f"{arch} {layer} (S={period})"] = maps
    if not args.figure_only:
        result["summary"] = summarise(result["runs"])
        (OUT / "study.json").write_text(json.dumps(result, indent=2) + "\n")
    save_figure(maps_figure(figure_maps), OUT / "maps.png")
    print("wrote", OUT / "study.json", "and", OUT / "maps.png")


def maps_figure(figure_maps: dict[str, dict]):
    """Per model, a 32 px crop of the first image's map, pixel for pixel: a row per method, a column per shift count.
    The crop is where plain Saliency's period-4 lattice stands highest; every panel of a model shows the same pixels."""
    methods = list(METHODS)
    columns = sorted({shifts for maps in figure_maps.values() for (_, shifts) in maps})
    fig, axes = new_figure(len(methods), len(columns) * len(figure_maps), squeeze=False,
                           figsize=(1.9 * len(columns) * len(figure_maps), 2.1 * len(methods) + 0.6), layout="constrained")
    for k, (name, maps) in enumerate(figure_maps.items()):
        y, x = crop_origin(maps[("saliency", 1)], 4)
        for i, method in enumerate(methods):
            for j, shifts in enumerate(columns):
                label = f"{SHORT[method]}, " + ("plain" if shifts == 1 else f"{shifts} shifts")
                plot_gradient_map(axes[i][k * len(columns) + j], maps[(method, shifts)],
                                  f"{name}\n{label}" if i == 0 else label, crop=(y, x, CROP_SIZE), zoom=True)
    fig.suptitle("Attribution maps of the DeepDream objective (first photograph, 128 px; a 32 px crop at 1:1), plain and "
                 "averaged over shifts of S = 4.\nVGG16: ImageNet convolution weights; ResNet50: random init, seed 0",
                 fontsize=TEXT_SIZE)
    return fig


def summarise(runs: list[dict]) -> list[dict]:
    """Mean and sd over seeds of each (model, layer, method, shifts): what the page's table shows."""
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault((r["model"], r["layer"], r["period"], r["method"], r["shifts"]), []).append(r)
    rows = []
    for (model, layer, period, method, shifts), rs in groups.items():
        by_octave = list(zip(*[r["octave_excess"] for r in rs]))  # [octave][seed]
        rows.append({"model": model, "layer": layer, "period": period, "method": method, "shifts": shifts,
                     "seeds": len(rs), "excess_mean": [statistics.mean(e) for e in by_octave],
                     "excess_sd": [statistics.stdev(e) if len(rs) > 1 else 0.0 for e in by_octave],
                     "grid_detected": sum(r["grid_detected"] for r in rs), "passes_per_image": rs[0]["passes_per_image"],
                     "seconds_mean": statistics.mean(r["seconds"] for r in rs), "predicted_kept": rs[0]["predicted_kept"],
                     "p_values": [r["p_value"] for r in rs]})
    return rows


def markdown_table(summary: list[dict]) -> str:
    """One row per model, layer, method and shift count: line excess per octave (mean +- sd over seeds), grids
    detected, the jitter law's prediction for a sample (per octave), passes per image and seconds."""
    plain = {(r["model"], r["layer"], r["method"]): r["excess_mean"] for r in summary if r["shifts"] == 1}
    lines = ["| model, layer (S) | method | shifts | line excess, period 2, 4 | grid detected | predicted | passes per image | seconds |",
             "|---|---|---|---|---|---|---|---|"]
    for r in summary:
        excess = ", ".join(f"{m:.2f}" + (f" ± {sd:.2f}" if r["seeds"] > 1 else "")
                           for m, sd in zip(r["excess_mean"], r["excess_sd"]))
        base = plain[(r["model"], r["layer"], r["method"])]
        predicted = "" if r["shifts"] == 1 else ", ".join(f"{1 + r['predicted_kept'] * (b - 1):.2f}" for b in base)
        shifts = "none" if r["shifts"] == 1 else ("all " if r["shifts"] == r["period"] ** 2 else "") + str(r["shifts"])
        lines.append(f"| {r['model']} `{r['layer']}` ({r['period']}) | {r['method']} | {shifts} | {excess} | "
                     f"{r['grid_detected']} of {r['seeds']} | {predicted} | {r['passes_per_image']} | "
                     f"{r['seconds_mean']:.1f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
