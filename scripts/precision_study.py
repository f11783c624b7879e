"""Does bfloat16 change the meter's numbers or verdicts? float32 against bf16 autocast, with float32's own
rounding as the yardstick.

Workload: VGG16 with the ImageNet convolution weights (``../shared/weights/vgg16_features_imagenet.pth``),
the 12 built-in scikit-image photographs at 224 px, the 5 stage layers with the DeepDream objective, on the
CPU. Three runs of the same gradients: float32 in the channels-last layout (what a report computes),
float32 in the contiguous layout (the same arithmetic summed in another order: how far float32 rounding
alone moves the numbers) and bf16 autocast (``--precision bf16``). For each, per layer: the relative
L2 difference of every image's gradient from the channels-last float32 one, and the line test's
excess, Holm-adjusted p-value and verdict, with the null draws under seeds 0-4 (the only random draw).

    python scripts/precision_study.py            # writes figures/precision/precision.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from gradviz.core.gradients import input_gradients
from gradviz.core.layermap import probe_map
from gradviz.core.models import load_model
from gradviz.core.precision import compute_precision
from gradviz.io.images import builtin_images
from gradviz.report import plan_layers
from gradviz.spectrum import SpectrumAccumulator

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT.parent / "shared" / "weights" / "vgg16_features_imagenet.pth"
OUT = ROOT / "figures" / "precision" / "precision.json"
SIZE, BATCH, SEEDS = 224, 4, range(5)
# name -> (precision, memory format) of each run; the first is the reference.
RUNS = {"float32": ("float32", torch.channels_last), "float32, contiguous": ("float32", torch.contiguous_format),
        "bf16": ("bf16", torch.channels_last)}


def gradients(model, images, specs, precision, layout) -> tuple[dict[str, torch.Tensor], float]:
    objectives = {s.name: s.objective for s in specs}
    out: dict[str, list[torch.Tensor]] = {s.name: [] for s in specs}
    start = time.perf_counter()
    for i in range(0, images.shape[0], BATCH):
        with compute_precision(precision, torch.device("cpu")):
            for name, g in input_gradients(model, images[i : i + BATCH], objectives, layout).items():
                out[name].append(g.float())
    return {k: torch.cat(v) for k, v in out.items()}, time.perf_counter() - start


def line_tests(grads: torch.Tensor, stride: int) -> list[dict]:
    acc = SpectrumAccumulator(stride)
    acc.add(grads)
    rows = []
    for seed in SEEDS:
        m = acc.metrics(seed=seed)
        rows.append({"seed": seed, "verdict": m.verdict, "p_value": m.p_value, "lattice_excess": m.lattice_excess,
                     "octave_excess": list(m.octave_excess), "octave_p_adjusted": list(m.octave_p_adjusted)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=str(WEIGHTS))
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    model = load_model("vgg16", args.weights, device="cpu")
    specs = plan_layers(model, None, probe_map(model, SIZE).for_images(SIZE), include_logits=False)
    images = builtin_images(SIZE, noise=0).images
    runs = {name: gradients(model, images, specs, *setting) for name, setting in RUNS.items()}
    reference = runs["float32"][0]
    result = {"workload": {"model": "vgg16", "weights": Path(args.weights).name, "images": len(images), "size": SIZE,
                           "layers": [s.name for s in specs], "objective": "deepdream", "seeds": list(SEEDS),
                           "torch": torch.__version__, "threads": torch.get_num_threads()},
              "seconds": {name: run[1] for name, run in runs.items()}, "layers": {}}
    for s in specs:
        layer = {}
        for name, (grads, _) in runs.items():
            g, ref = grads[s.name].flatten(1), reference[s.name].flatten(1)
            rel = ((g - ref).norm(dim=1) / ref.norm(dim=1)).tolist()
            layer[name] = {"relative_l2_median": statistics.median(rel), "relative_l2_max": max(rel),
                           "tests": line_tests(grads[s.name], s.stride)}
        result["layers"][s.name] = {"stride": s.stride, **layer}
        print(f"{s.name} (S={s.stride}):")
        for name, row in layer.items():
            verdicts = sorted({t["verdict"].split(":")[0] for t in row["tests"]})
            excess = [t["lattice_excess"] for t in row["tests"]]
            p = [t["p_value"] for t in row["tests"]]
            print(f"  {name:>20}: gradient off by {row['relative_l2_median']:.2e} (median), "
                  f"{row['relative_l2_max']:.2e} (max); excess {excess[0]:.4f}; p {min(p):.3g}-{max(p):.3g}; {verdicts}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print("seconds:", {k: round(v, 1) for k, v in result["seconds"].items()}, "->", args.out)


if __name__ == "__main__":
    main()
