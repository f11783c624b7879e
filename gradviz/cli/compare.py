"""``gradviz compare``: one network's trained weights, several ways to downsample, their gradients compared."""

from __future__ import annotations

import argparse

from torch import nn

from gradviz.cli import argtypes, common
from gradviz.core.budget import check_image_size, check_memory, report_bytes
from gradviz.core.layermap import PROBE_SIZE, layer_map, layer_map_at
from gradviz.core.models import load_model, model_device
from gradviz.downsampling.compare import BATCH_SIZE, MIN_SIZE, SIZE_MULTIPLE, check_size, compare_variants
from gradviz.downsampling.render import write_comparison
from gradviz.downsampling.variants import RESNET_VARIANTS, VGG_VARIANTS, check_variant, variants_for
from gradviz.errors import GradvizError
from gradviz.io.images import load_images
from gradviz.io.outputs import check_out_dir

DEFAULT_MODEL = "vgg16"
DEFAULT_SIZE = 128
# Layers the memory estimate assumes without --layers (every model has 5 comparison layers; one spare).
ESTIMATED_LAYERS = 6


def parse_variants(model: nn.Module, text: str) -> list[str]:
    """Comma-separated variant names, checked against ``model``'s family (duplicates dropped).

    Args:
        model: the loaded model (its family decides which names are valid).
        text: the ``--variants`` value.

    Returns:
        The names, in the order given.

    Raises:
        GradvizError: no name, or a name not valid for the model, with the valid ones.

    Example:
        >>> import torchvision
        >>> parse_variants(torchvision.models.resnet18(), "stride, blurpool3,stride")
        ['stride', 'blurpool3']
    """
    names = list(dict.fromkeys(v.strip() for v in text.split(",") if v.strip()))
    if not names:
        raise GradvizError(f"no variant given; valid: {', '.join(variants_for(model))}")
    return [check_variant(model, n) for n in names]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``compare`` parser to ``subparsers``; its ``func`` is :func:`run`.

    Example:
        >>> sub = argparse.ArgumentParser().add_subparsers()
        >>> register(sub)
        >>> args = sub.choices["compare"].parse_args(["--out", "x"])
        >>> args.model, args.size, args.batch_size, args.variants
        ('vgg16', 128, 4, None)
    """
    p = subparsers.add_parser(
        "compare",
        help="downsampling compared on the same weights: max-pool, strided conv, average pool, blur pool",
        description="Build downsampling variants of one loaded network (same weights), measure the checkerboard "
        "metrics of their input gradients at every stage, how far their activations move from the original's, "
        "and what each strided kernel predicts; writes comparison.json, report.md and PNG figures to --out. "
        "VGG variants: " + ", ".join(VGG_VARIANTS) + ". ResNet variants: " + ", ".join(RESNET_VARIANTS) + ".",
    )
    common.add_model(p, model=DEFAULT_MODEL, weights="random")
    p.add_argument("--variants", type=argtypes.nonempty, default=None, help="comma-separated variant names (default: all for the model)")
    p.add_argument("--images", type=argtypes.nonempty, default=None, help="image folder or file (default: the built-in set)")
    p.add_argument("--size", type=argtypes.int_range(1), default=DEFAULT_SIZE,
                   help=f"image side in pixels, a multiple of {SIZE_MULTIPLE}, >= {MIN_SIZE} (default {DEFAULT_SIZE})")
    p.add_argument("--layers", type=argtypes.name_list, default=None, help="comma-separated layers to measure (default: the stage outputs)")
    p.add_argument("--batch-size", type=argtypes.int_range(1), default=BATCH_SIZE, help=f"images per pass (default {BATCH_SIZE})")
    common.add_seed(p, "random weights and noise images")
    common.add_device(p)
    common.add_out_dir(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Check the arguments and the memory, compare the variants, write the folder, print a line per variant.

    Args:
        args: the parsed ``gradviz compare`` arguments.

    Returns:
        0 (errors raise :class:`~gradviz.errors.GradvizError`, which the CLI prints with exit code 2).
    """
    inputs = [args.images, args.weights]
    check_out_dir(args.out, inputs)
    check_size(args.size)
    model = load_model(args.model, args.weights, seed=args.seed, device=args.device)
    device = model_device(model)
    check_image_size(args.size, device, batch=args.batch_size)
    probe = layer_map(model, PROBE_SIZE)
    check_memory(report_bytes(probe, args.size, args.batch_size, len(args.layers) if args.layers else ESTIMATED_LAYERS),
                 device, f"a comparison at {args.size} px with batches of {args.batch_size}",
                 "choose a smaller --size or --batch-size")
    names = parse_variants(model, args.variants) if args.variants else list(variants_for(model))
    images = load_images(args.images, size=args.size, seed=args.seed, min_size=probe.total_stride)
    lmap = layer_map_at(model, args.size, probe)  # the strides at the images' size
    comp = compare_variants(model, names, images, seed=args.seed, layers=args.layers, batch_size=args.batch_size,
                            lmap=lmap)
    files = write_comparison(comp, args.out, inputs=inputs)
    for v in comp.variants:
        deepest = v.layers[-1]
        m = deepest.metrics
        print(f"{v.name:15s} {deepest.layer}: {m.verdict}; lattice excess {m.lattice_excess:.3g}  "
              f"hf off-lattice {m.hf_offlattice_fraction:.3f}  cos {deepest.cosine_mean:.3f}")
    print(f"wrote {args.out}/: {', '.join(files)}")
    return 0
