"""``gradviz compare``: one network's trained weights, several ways to downsample, their gradients compared."""

from __future__ import annotations

import argparse

from torch import nn

from gradviz.cli import argtypes, common
from gradviz.core.budget import check_image_size, check_memory, report_bytes
from gradviz.core.layermap import layer_map_at, probe_map
from gradviz.core.models import model_device
from gradviz.downsampling.compare import BATCH_SIZE, MIN_SIZE, SIZE_MULTIPLE, check_size, compare_variants
from gradviz.downsampling.render import write_comparison
from gradviz.downsampling.variants import RESNET_VARIANTS, VGG_VARIANTS, check_variant, variants_for
from gradviz.errors import GradvizError
from gradviz.io.images import load_images
from gradviz.io.outputs import check_out_dir

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


def register(subparsers: argparse._SubParsersAction, summary: str) -> None:
    """Add the ``compare`` parser to ``subparsers``; its ``func`` is :func:`run`.

    Example:
        >>> sub = argparse.ArgumentParser().add_subparsers()
        >>> register(sub, "compare downsampling")
        >>> args = sub.choices["compare"].parse_args(["--model", "vgg16", "--out", "x"])
        >>> args.weights, args.size, args.batch_size, args.variants
        (None, 224, 4, None)
    """
    p = subparsers.add_parser(
        "compare",
        help=summary,
        description="Build downsampling variants of one loaded network (same weights), measure the checkerboard "
        "metrics of their input gradients at every stage, how far their activations move from the original's, "
        "and what each strided kernel predicts; writes report.html (the page to open), comparison.json, report.md and PNG figures to --out. "
        "VGG variants: " + ", ".join(VGG_VARIANTS) + ". ResNet variants: " + ", ".join(RESNET_VARIANTS) + ".",
    )
    common.add_model(p)
    p.add_argument("--variants", type=argtypes.nonempty, default=None, help="comma-separated variant names (default: all for the model)")
    common.add_images(p)
    common.add_size(p, note=f", a multiple of {SIZE_MULTIPLE}, >= {MIN_SIZE}")
    p.add_argument("--layers", type=argtypes.name_list, default=None, help="comma-separated layers to measure (default: the stage outputs)")
    p.add_argument("--batch-size", type=argtypes.int_range(1), default=BATCH_SIZE, help=f"images per pass (default {BATCH_SIZE})")
    common.add_seed(p, "random weights and noise images")
    common.add_device(p)
    common.add_out_dir(p)
    common.add_quiet(p)
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
    model = common.load_model_from(args)
    device = model_device(model)
    check_image_size(args.size, device, batch=args.batch_size)
    probe = probe_map(model, args.size)
    check_memory(report_bytes(probe, args.size, args.batch_size, len(args.layers) if args.layers else ESTIMATED_LAYERS),
                 device, f"a comparison at {args.size} px with batches of {args.batch_size}",
                 "choose a smaller --size or --batch-size")
    names = parse_variants(model, args.variants) if args.variants else list(variants_for(model))
    images = load_images(args.images, size=args.size, seed=args.seed, min_size=probe.total_stride)
    lmap = layer_map_at(model, args.size, probe)  # the strides at the images' size
    comp = compare_variants(model, names, images, seed=args.seed, layers=args.layers, batch_size=args.batch_size,
                            lmap=lmap, progress=common.progress(args))
    files = write_comparison(comp, args.out, inputs=inputs)
    if args.quiet:
        return 0
    for v in comp.variants:
        deepest = v.layers[-1]
        m = deepest.metrics
        print(f"{v.name:15s} {deepest.layer}: {m.verdict}; lattice excess {m.lattice_excess:.3g}  "
              f"hf off-lattice {m.hf_offlattice_fraction:.3f}  cos {deepest.cosine_mean:.3f}")
    print(f"wrote {args.out}/: {', '.join(files)}")
    return 0
