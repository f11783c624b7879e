"""``gradviz compare``: one network's trained weights, several ways to downsample, their gradients compared."""

from __future__ import annotations

import argparse

from gradviz.compare import BATCH_SIZE, check_size, compare_variants, write_report
from gradviz.downsampling import RESNET_VARIANTS, VGG_VARIANTS, parse_variants
from gradviz.errors import GradvizError
from gradviz.images import load_images
from gradviz.models import MODEL_NAMES, load_model


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "compare",
        help="downsampling compared on the same weights: max-pool, strided conv, average pool, blur pool",
        description="Build downsampling variants of one loaded network (same weights), measure the checkerboard "
        "metrics of their input gradients at every stage, how far their activations move from the original's, "
        "and what each strided kernel predicts; writes comparison.json, report.md and PNG figures to --out. "
        "VGG variants: " + ", ".join(VGG_VARIANTS) + ". ResNet variants: " + ", ".join(RESNET_VARIANTS) + ".",
    )
    p.add_argument("--model", default="vgg16", help="one of: " + ", ".join(MODEL_NAMES) + " (default vgg16)")
    p.add_argument("--weights", default="random", help="'imagenet', 'random' (default) or a state-dict path")
    p.add_argument("--variants", default=None, help="comma-separated variant names (default: all for the model)")
    p.add_argument("--images", default=None, help="image folder or file (default: the built-in set)")
    p.add_argument("--size", type=int, default=128, help="image side in pixels, a multiple of 32, >= 64 (default 128)")
    p.add_argument("--layers", default=None, help="comma-separated layers to measure (default: the stage outputs)")
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE, help=f"images per pass (default {BATCH_SIZE})")
    p.add_argument("--seed", type=int, default=0, help="seed of random weights and noise images (default 0)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N")
    p.add_argument("--out", required=True, help="output folder (replaced atomically)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_size(args.size)
    if args.batch_size < 1:
        raise GradvizError(f"--batch-size must be >= 1, got {args.batch_size}")
    model = load_model(args.model, args.weights, seed=args.seed, device=args.device)
    names = parse_variants(model, args.variants) if args.variants else None
    if names is None:
        names = list(VGG_VARIANTS if args.model.startswith("vgg") else RESNET_VARIANTS)
    layers = [l.strip() for l in args.layers.split(",") if l.strip()] if args.layers else None
    images = load_images(args.images, size=args.size, seed=args.seed, min_size=32)
    comp = compare_variants(model, names, images, seed=args.seed, layers=layers, batch_size=args.batch_size)
    files = write_report(comp, args.out)
    for v in comp.variants:
        deepest = v.stages[-1]
        m = deepest.metrics
        print(f"{v.name:15s} {deepest.layer}: {m.verdict}; lattice excess {m.lattice_excess:.3g}  "
              f"hf off-lattice {m.hf_offlattice_fraction:.3f}  cos {deepest.cosine_mean:.3f}")
    print(f"wrote {args.out}/: {', '.join(files)}")
    return 0
