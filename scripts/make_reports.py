"""Make the committed gradient-spectrum reports under figures/:

- figures/report-vgg16: VGG16 with the real ImageNet convolution weights from ../shared/weights
  (features only, so the logits are left out), on the built-in photographs at 224 px;
- figures/report-resnet50: ResNet50 at random initialisation (seed 0), same images, logits included;
  figures/report-resnet50/seeds.json repeats the measurement for initialisation seeds 0..4 and gives
  each layer's octave excess as mean and sd over the seeds, and how many seeds detect a grid.

    python scripts/make_reports.py [--weights-dir ../shared/weights] [--size 224] [--seeds 5]
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from gradviz.core.models import load_model
from gradviz.io.images import builtin_images
from gradviz.io.outputs import json_ready
from gradviz.report import build_report
from gradviz.report.render import write_report

ROOT = Path(__file__).resolve().parents[1]


def seed_summary(reports: list) -> dict:
    """Per layer, over the reports of several initialisation seeds: mean and sd of each octave's excess,
    of the lattice excess and of the shared tile cv, and the number of seeds with a grid detected."""
    layers = {}
    for i, layer in enumerate(reports[0].layers):
        ms = [r.layers[i].metrics for r in reports]
        octaves = []
        for j in range(len(ms[0].octave_excess)):
            values = [m.octave_excess[j] for m in ms]
            octaves.append({"period": 2 ** (j + 1), "mean": statistics.fmean(values), "sd": statistics.stdev(values),
                            "significant_seeds": sum(m.octave_p_adjusted[j] < m.alpha for m in ms)})
        excess = [m.lattice_excess for m in ms]
        tile = [m.shared_tile_cv for m in ms]
        layers[layer.name] = {
            "stride": layer.stride,
            "lattice_excess": {"mean": statistics.fmean(excess), "sd": statistics.stdev(excess)},
            "octave_excess": octaves,
            "grid_detected_seeds": sum(m.grid_detected for m in ms),
            "shared_tile_cv": {"mean": statistics.fmean(tile), "sd": statistics.stdev(tile)} if all(t == t for t in tile) else None,
            "tile_detected_seeds": sum(m.tile_detected for m in ms),
        }
    return {"seeds": [r.seed for r in reports], "images": reports[0].images, "layers": layers}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights-dir", default=str(ROOT.parent / "shared" / "weights"))
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seeds", type=int, default=5, help="initialisation seeds for the random-init model")
    p.add_argument("--device", default="auto")
    args = p.parse_args()

    images = builtin_images(args.size, seed=args.seed)
    vgg = load_model("vgg16", str(Path(args.weights_dir) / "vgg16_features_imagenet.pth"), device=args.device)
    write_report(build_report(vgg, images, seed=args.seed, progress=False), ROOT / "figures" / "report-vgg16")
    print("wrote figures/report-vgg16", flush=True)

    reports = []
    for seed in range(args.seed, args.seed + args.seeds):
        model = load_model("resnet50", "random", seed=seed, device=args.device)
        reports.append(build_report(model, images, seed=seed, progress=False))
        print(f"resnet50 seed {seed} measured", flush=True)
    out = ROOT / "figures" / "report-resnet50"
    write_report(reports[0], out, extra_json={"seeds.json": json_ready(seed_summary(reports))})
    print("wrote figures/report-resnet50 and its seeds.json")


if __name__ == "__main__":
    main()
