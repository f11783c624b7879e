"""Jitter versus no jitter: does optimising at many offsets and scales cancel gradient checkerboards?

For each model and layer, the DeepDream objective (mean squared activation) is maximised from the
same seeded noise image under several conditions: roll jitter ranges 0, 1, 2, 4, 8, 16, 32
(0 = no jitter), octaves without jitter, and octaves with jitter 32. For each run the checkerboard
metrics of the accumulated update ``x_final - x_start`` are computed with the layer's stride S as
the period. The exact reference is the gradient at the start image averaged over all S*S circular
shifts of one period (gradviz.visualize.shift_averaged_gradient).

Writes figures/jitter/<model>_panels.png (images and update maps with their lattice fraction),
figures/jitter/<model>_octaves.png (lattice fraction per spectral octave against jitter range,
with the exact reference) and figures/jitter/jitter_study.json (every number).

    python scripts/jitter_study.py [--weights PATH] [--size 96] [--steps 8] [--out figures/jitter]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from gradviz.gradients import input_gradient  # noqa: E402
from gradviz.models import load_model  # noqa: E402
from gradviz.objectives import deepdream  # noqa: E402
from gradviz.outputs import write_json  # noqa: E402
from gradviz.parameterization import start_images  # noqa: E402
from gradviz.plots import plot_gradient_map, plot_image, save_figure  # noqa: E402
from gradviz.spectrum import checkerboard_metrics  # noqa: E402
from gradviz.visualize import DreamSettings, dream, shift_averaged_gradient  # noqa: E402

DEFAULT_WEIGHTS = "../shared/weights/vgg16_features_imagenet.pth"
JITTERS = (0, 1, 2, 4, 8, 16, 32)
# Octave runs: DeepDream's scale 1.4; three octaves keep the smallest (49 px at 96) above stride 32.
OCTAVES, OCTAVE_SCALE = 3, 1.4
# Layers at three depths (strides 4, 8, 16) of each model.
LAYERS = {"vgg16": ("features.15", "features.22", "features.29"), "resnet18": ("layer1", "layer2", "layer3")}
# Normalised-ascent step (pixels in [0, 1]); larger than DeepDream's 1.5/255 so that few steps show a picture.
STEP_SIZE = 4 / 255


@dataclass
class Condition:
    label: str
    jitter: int
    octaves: int


CONDITIONS = [Condition(f"jitter {j}" if j else "no jitter", j, 1) for j in JITTERS] + [
    Condition("octaves", 0, OCTAVES),
    Condition("octaves + jitter 32", 32, OCTAVES),
]


def study_layer(model, layer: str, start: torch.Tensor, steps: int, seed: int) -> tuple[dict, dict]:
    """Run every condition on one layer; returns (JSON numbers, tensors for the figures)."""
    objective = deepdream(layer)
    runs, pictures = [], []
    for cond in CONDITIONS:
        settings = DreamSettings(
            steps=steps, lr=STEP_SIZE, jitter=cond.jitter, octaves=cond.octaves,
            octave_scale=OCTAVE_SCALE, seed=seed, progress=False,
        )
        result = dream(model, objective, start, settings)
        metrics = result.update_metrics()
        runs.append({
            "condition": cond.label, "jitter": cond.jitter, "octaves": cond.octaves,
            "octave_sizes": result.octave_sizes,
            "objective_start": result.history[0].objective, "objective_end": result.history[-1].objective,
            "update_metrics": metrics.to_dict(),
        })
        pictures.append((cond.label, result.images[0], result.update()[0], metrics))
    stride = result.stride
    plain = input_gradient(model, start, objective)
    exact = shift_averaged_gradient(model, start, objective, stride)
    grid_locked = float((plain - exact).square().sum() / plain.square().sum())
    numbers = {
        "layer": layer, "stride": stride, "runs": runs,
        "gradient_at_start": checkerboard_metrics(plain, stride).to_dict(),
        "exact_shift_average": checkerboard_metrics(exact, stride).to_dict(),
        "grid_locked_fraction": grid_locked,
    }
    return numbers, {"pictures": pictures, "exact": exact[0]}


def panels_figure(model_name: str, weights: str, layers: list[dict], tensors: list[dict], path: Path) -> None:
    """Per layer two rows: optimised images, then accumulated updates titled with lattice fraction / null."""
    n_cols = len(CONDITIONS) + 1
    fig, axes = plt.subplots(2 * len(layers), n_cols, figsize=(1.6 * n_cols, 3.4 * len(layers)))
    for row, (numbers, tens) in enumerate(zip(layers, tensors)):
        for col, (label, image, update, m) in enumerate(tens["pictures"]):
            plot_image(axes[2 * row, col], image, label)
            plot_gradient_map(axes[2 * row + 1, col], update, f"LF {m.lattice_fraction:.3f}\ntile {m.tile_contrast:.2f}")
        ref = checkerboard_metrics(tens["exact"], numbers["stride"])
        axes[2 * row, -1].axis("off")
        axes[2 * row, -1].text(0, 0.5, f"{numbers['layer']}\nstride {numbers['stride']}\nnull LF\n{ref.null_fraction:.3f}",
                               fontsize=8, va="center")
        plot_gradient_map(axes[2 * row + 1, -1], tens["exact"], f"exact ref LF\n{ref.lattice_fraction:.3f}")
    for ax in axes.flat:
        ax.title.set_fontsize(7)
    fig.suptitle(f"{model_name} ({weights}): DeepDream objective, update = final - start; LF = lattice fraction", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, dpi=60)


def octaves_figure(model_name: str, weights: str, layers: list[dict], path: Path) -> None:
    """Lattice fraction per spectral octave (period 2^j) of the update against jitter range."""
    fig, axes = plt.subplots(1, len(layers), figsize=(4.2 * len(layers), 3.6), squeeze=False)
    xs = [max(j, 0.5) for j in JITTERS]  # jitter 0 drawn at 0.5 on the log axis
    for ax, numbers in zip(axes[0], layers):
        jitter_runs = [r for r in numbers["runs"] if r["octaves"] == 1]
        exact = numbers["exact_shift_average"]
        for j, null in enumerate(exact["octave_null_fractions"]):
            colour = f"C{j}"
            ys = [r["update_metrics"]["octave_fractions"][j] for r in jitter_runs]
            ax.plot(xs, ys, "o-", color=colour, label=f"period {2 ** (j + 1)}")
            ax.axhline(exact["octave_fractions"][j], color=colour, ls="--", lw=1)
            ax.axhline(null, color=colour, ls=":", lw=0.8)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(xs, ["0"] + [str(j) for j in JITTERS[1:]])
        ax.set_xlabel("jitter range d (roll in [-d, d])")
        ax.set_ylabel("lattice fraction in octave")
        ax.set_title(f"{numbers['layer']} (stride {numbers['stride']})", fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle(f"{model_name} ({weights}): solid = accumulated update, dashed = exact shift average, dotted = white-noise null", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, dpi=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=DEFAULT_WEIGHTS, help=f"VGG16 state dict (default {DEFAULT_WEIGHTS})")
    parser.add_argument("--size", type=int, default=96, help="image size (default 96)")
    parser.add_argument("--steps", type=int, default=8, help="steps per octave (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the start image, transforms and random weights")
    parser.add_argument("--out", default="figures/jitter", help="output folder (default figures/jitter)")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    out = Path(args.out)
    start = start_images("noise", args.size, seed=args.seed)
    report = {"size": args.size, "steps": args.steps, "step_size": STEP_SIZE, "seed": args.seed,
              "start": f"grey 0.5 + Gaussian noise std 0.05 (seed {args.seed})", "objective": "deepdream (mean squared activation)",
              "optimizer": "normalized", "octave_scale": OCTAVE_SCALE, "models": {}}
    for name, weights in (("vgg16", args.weights), ("resnet18", "random")):
        t0 = time.perf_counter()
        model = load_model(name, weights, seed=args.seed, device="cpu")
        layers, tensors = [], []
        for layer in LAYERS[name]:
            numbers, tens = study_layer(model, layer, start, args.steps, args.seed)
            layers.append(numbers)
            tensors.append(tens)
            print(f"{name} {layer}: done ({time.perf_counter() - t0:.0f} s)", flush=True)
        report["models"][name] = {"weights": model.weights, "layers": layers, "seconds": time.perf_counter() - t0}
        panels_figure(name, model.weights, layers, tensors, out / f"{name}_panels.png")
        octaves_figure(name, model.weights, layers, out / f"{name}_octaves.png")
    write_json(out / "jitter_study.json", report)
    print(f"wrote {out}/jitter_study.json and figures")


if __name__ == "__main__":
    main()
