"""Make the committed gradient-spectrum reports under figures/:

- figures/report-vgg16: VGG16 with the real ImageNet convolution weights from ../shared/weights
  (features only, so the logits are left out), on the built-in images at 224 px;
- figures/report-resnet50: ResNet50 at random initialisation (seed 0), same images, logits included.

    python scripts/make_reports.py [--weights-dir ../shared/weights] [--size 224]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gradviz.images import builtin_images
from gradviz.models import load_model
from gradviz.report import build_report, write_report

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights-dir", default=str(ROOT.parent / "shared" / "weights"))
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    args = p.parse_args()

    images = builtin_images(args.size, seed=args.seed)
    vgg_weights = Path(args.weights_dir) / "vgg16_features_imagenet.pth"
    runs = [("vgg16", str(vgg_weights), "report-vgg16"), ("resnet50", "random", "report-resnet50")]
    for name, weights, folder in runs:
        model = load_model(name, weights, seed=args.seed, device=args.device)
        report = build_report(model, images, seed=args.seed)
        write_report(report, ROOT / "figures" / folder)
        print(f"wrote figures/{folder}")


if __name__ == "__main__":
    main()
