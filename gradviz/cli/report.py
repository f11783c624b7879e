"""``gradviz report``: the gradient-spectrum report of a model."""

from __future__ import annotations

import argparse

from gradviz.cli import argtypes, common
from gradviz.core import distributed
from gradviz.core.gradients import GRADIENT_SOURCES, source_names
from gradviz.core.layermap import probe_map
from gradviz.core.models import model_device
from gradviz.core.objectives import OBJECTIVES
from gradviz.core.precision import PRECISIONS, check_precision
from gradviz.errors import GradvizError
from gradviz.io.images import SKIMAGE_GREY, SKIMAGE_PHOTOS, load_images
from gradviz.io.outputs import check_out_dir
from gradviz.report.measure import DEFAULT_LAYER_COUNT, REPORT_OBJECTIVES, build_report, check_report_fits
from gradviz.report.render import write_report


def register(subparsers: argparse._SubParsersAction, summary: str) -> None:
    p = subparsers.add_parser(
        "report",
        help=summary,
        description="Write report.json, report.md and PNG figures on the grid structure of a model's input gradients.",
    )
    common.add_model(p)
    common.add_images(p)
    common.add_image_reading(p)
    common.add_size(p)
    p.add_argument("--layers", type=argtypes.name_list, default=None, help="comma-separated layer names (default: every downsampling stage + logits)")
    p.add_argument("--objective", default="deepdream", choices=REPORT_OBJECTIVES,
                   help="objective on each layer: " + "; ".join(f"{k}: {OBJECTIVES.describe(k)}" for k in REPORT_OBJECTIVES)
                   + " (default: %(default)s)")
    p.add_argument("--channel", type=argtypes.int_range(0), default=0, help="channel index for --objective channel (default: %(default)s)")
    p.add_argument("--source", default="gradient", choices=source_names(),
                   help=f"gradient source: {GRADIENT_SOURCES.help()}; shift-average: the gradient averaged over "
                   "every circular shift of each layer's period S, which cancels a grid locked to S (S x S times "
                   "the work); METHOD+shift-average: the same for another source (default: %(default)s)")
    p.add_argument("--shifts", type=argtypes.int_range(1), default=None,
                   help="with a shift-average source: at most this many shifts per layer, a seeded sample where "
                   "S x S is more (default: all S x S)")
    logits = p.add_mutually_exclusive_group()
    logits.add_argument("--logits", dest="logits", action="store_true", default=None, help="always measure the top logit")
    logits.add_argument("--no-logits", dest="logits", action="store_false", help="never measure the logits")
    p.add_argument("--batch-size", type=argtypes.int_range(1), default=8, help="images per forward pass (default: %(default)s)")
    p.add_argument("--precision", choices=list(PRECISIONS), default="float32",
                   help="arithmetic of the network's passes: " + "; ".join(f"{k}: {v}" for k, v in PRECISIONS.items())
                   + "; the meter itself is float64 (default: %(default)s)")
    common.add_seed(p, "random weights, noise images, the --max-images sample, SmoothGrad and the tests' null draws")
    p.add_argument("--alpha", type=argtypes.float_range(0, 0.5, lo_open=True), default=0.05, help="level of the grid verdicts, in (0, 0.5] (default: %(default)s)")
    p.add_argument("--noise-images", type=argtypes.int_range(0, 10_000), default=0,
                   help="with the built-in images, add this many seeded uniform-noise images (default: %(default)s)")
    common.add_device(p)
    common.add_out_dir(p)
    common.add_quiet(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    group = distributed.from_environment()  # under torchrun: join the group; every rank measures its share
    try:
        return _run(args, group)
    finally:
        distributed.leave(group)


def _run(args: argparse.Namespace, group: distributed.Group | None) -> int:
    inputs = [args.images, args.weights]
    check_out_dir(args.out, inputs)
    if group is not None:
        args.device = group.device(args.device)
    if args.images is not None and args.noise_images:
        raise GradvizError("--noise-images adds noise images to the built-in set only; valid: without --images")
    model = common.load_model_from(args)
    check_precision(args.precision, model_device(model))
    n_layers = len(args.layers) if args.layers else DEFAULT_LAYER_COUNT
    probe = probe_map(model, args.size)
    if args.images is None:  # the built-in set is held in memory: checked before it is made
        held = len(SKIMAGE_PHOTOS) + len(SKIMAGE_GREY) + args.noise_images
        check_report_fits(model, args.size, min(args.batch_size, held), n_layers, held, probe=probe)
    images = load_images(args.images, size=args.size, seed=args.seed, noise=args.noise_images,
                         min_size=probe.total_stride, max_images=args.max_images,
                         workers=args.workers)  # files: headers only, pixels later
    report = build_report(
        model,
        images,
        layers=args.layers,
        objective=args.objective,
        channel_index=args.channel,
        source=args.source,
        include_logits=args.logits,
        batch_size=args.batch_size,
        seed=args.seed,
        alpha=args.alpha,
        probe=probe,
        progress=common.progress(args),
        group=group,
        precision=args.precision,
        n_shifts=args.shifts,
    )
    if group is not None and not group.is_main:
        return 0  # rank 0 writes and prints
    out = write_report(report, args.out, inputs=inputs)
    if args.quiet:
        return 0
    print(f"wrote {out}/report.html ({len(report.layers)} layers, {report.n_images} images, {report.device})")
    for note in report.notes:
        print(f"  note: {note}")
    for layer in report.layers:
        m = layer.metrics
        tile = "n/a" if m.tile_p_value != m.tile_p_value else f"{m.shared_tile_cv:.3g} (p {m.tile_p_value:.3g})"
        print(f"  {layer.name:>14}  S={layer.stride:<3d} {m.verdict}; shared tile cv {tile}; "
              f"lattice share {m.lattice_fraction:.2g}")
    return 0
