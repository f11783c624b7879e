"""``gradviz compare``: one network's trained weights, several ways to downsample, their gradients compared."""

from __future__ import annotations

import argparse

from gradviz.compare import BATCH_SIZE, check_size, compare_variants, write_report
from gradviz.downsampling import RESNET_VARIANTS, VGG_VARIANTS, parse_variants
from gradviz import argtypes
from gradviz.budget import check_image_size, check_memory, report_bytes
from gradviz.images import load_images
from gradviz.models import MODEL_NAMES, load_model, model_device
from gradviz.outputs import check_out_dir


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
    p.add_argument("--variants", type=argtypes.nonempty, default=None, help="comma-separated variant names (default: all for the model)")
    p.add_argument("--images", type=argtypes.nonempty, default=None, help="image folder or file (default: the built-in set)")
    p.add_argument("--size", type=argtypes.int_range(1), default=128, help="image side in pixels, a multiple of 32, >= 64 (default 128)")
    p.add_argument("--layers", type=argtypes.name_list, default=None, help="comma-separated layers to measure (default: the stage outputs)")
    p.add_argument("--batch-size", type=argtypes.int_range(1), default=BATCH_SIZE, help=f"images per pass (default {BATCH_SIZE})")
    p.add_argument("--seed", type=argtypes.seed, default=0, help="seed of random weights and noise images (default 0)")
    p.add_argument("--device", type=argtypes.device, default="auto", help="auto (default), cpu, cuda, cuda:N")
    p.add_argument("--out", required=True,
                   help="output folder: new, empty, or one gradviz wrote (replaced atomically; anything else is refused)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    inputs = [args.images, args.weights]
    check_out_dir(args.out, inputs)
    check_size(args.size)
    model = load_model(args.model, args.weights, seed=args.seed, device=args.device)
    check_image_size(args.size, model_device(model), batch=args.batch_size)
    check_memory(report_bytes(model, args.size, args.batch_size, len(args.layers) if args.layers else 6),
                 model_device(model), f"a comparison at {args.size} px with batches of {args.batch_size}",
                 "choose a smaller --size or --batch-size")
    names = parse_variants(model, args.variants) if args.variants else None
    if names is None:
        names = list(VGG_VARIANTS if args.model.startswith("vgg") else RESNET_VARIANTS)
    layers = args.layers
    images = load_images(args.images, size=args.size, seed=args.seed, min_size=32)
    comp = compare_variants(model, names, images, seed=args.seed, layers=layers, batch_size=args.batch_size)
    files = write_report(comp, args.out, inputs=inputs)
    for v in comp.variants:
        deepest = v.stages[-1]
        m = deepest.metrics
        print(f"{v.name:15s} {deepest.layer}: {m.verdict}; lattice excess {m.lattice_excess:.3g}  "
              f"hf off-lattice {m.hf_offlattice_fraction:.3f}  cos {deepest.cosine_mean:.3f}")
    print(f"wrote {args.out}/: {', '.join(files)}")
    return 0
