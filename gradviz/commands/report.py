"""``gradviz report``: the gradient-spectrum report of a model."""

from __future__ import annotations

import argparse

from gradviz import argtypes
from gradviz.errors import GradvizError
from gradviz.gradients import GRADIENT_SOURCES
from gradviz.images import SKIMAGE_GREY, SKIMAGE_PHOTOS, load_images
from gradviz.models import MODEL_NAMES, load_model
from gradviz.outputs import check_out_dir
from gradviz.report import DEFAULT_LAYER_COUNT, REPORT_OBJECTIVES, build_report, check_report_fits, write_report
from gradviz.taps import total_stride
from gradviz.visualize import STRIDE_PROBE_SIZE


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "report",
        help="measure the checkerboard energy of a model's input gradients",
        description="Write report.json, report.md and PNG figures on the grid structure of a model's input gradients.",
    )
    p.add_argument("--model", required=True, help=f"one of: {', '.join(MODEL_NAMES)}")
    p.add_argument("--weights", default="imagenet", help="imagenet (download), random, or a .pth state dict (default: imagenet)")
    p.add_argument("--images", type=argtypes.nonempty, default=None, help="folder or image file (default: built-in scikit-image photographs + noise)")
    p.add_argument("--size", type=argtypes.int_range(1), default=224, help="images are resized and centre-cropped to this square (default: 224)")
    p.add_argument("--layers", type=argtypes.name_list, default=None, help="comma-separated layer names (default: every downsampling stage + logits)")
    p.add_argument("--objective", default="deepdream", choices=REPORT_OBJECTIVES, help="objective on each layer (default: deepdream)")
    p.add_argument("--channel", type=argtypes.int_range(0), default=0, help="channel index for --objective channel (default: 0)")
    p.add_argument("--source", default="gradient", choices=GRADIENT_SOURCES, help="gradient source (captum for all but 'gradient')")
    logits = p.add_mutually_exclusive_group()
    logits.add_argument("--logits", dest="logits", action="store_true", default=None, help="always measure the top logit")
    logits.add_argument("--no-logits", dest="logits", action="store_false", help="never measure the logits")
    p.add_argument("--batch-size", type=argtypes.int_range(1), default=8, help="images per forward pass (default: 8)")
    p.add_argument("--seed", type=argtypes.seed, default=0,
                   help="seed for random weights, noise images, SmoothGrad and the tests' null draws (default: 0)")
    p.add_argument("--alpha", type=argtypes.float_range(0, 0.5, lo_open=True), default=0.05, help="level of the grid verdicts, in (0, 0.5] (default: 0.05)")
    p.add_argument("--noise-images", type=argtypes.int_range(0, 10_000), default=0,
                   help="with the built-in images, add this many seeded uniform-noise images (default: 0)")
    p.add_argument("--device", type=argtypes.device, default="auto", help="auto (CUDA if available), cpu, cuda, cuda:N (default: auto)")
    p.add_argument("--out", required=True,
                   help="output folder: new, empty, or one gradviz wrote (replaced atomically; anything else is refused)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    inputs = [args.images, args.weights]
    check_out_dir(args.out, inputs)
    if args.images is not None and args.noise_images:
        raise GradvizError("--noise-images adds noise images to the built-in set only; valid: without --images")
    model = load_model(args.model, args.weights, seed=args.seed, device=args.device)
    n_layers = len(args.layers) if args.layers else DEFAULT_LAYER_COUNT
    if args.images is None:  # the built-in set is held in memory: checked before it is made
        held = len(SKIMAGE_PHOTOS) + len(SKIMAGE_GREY) + args.noise_images
        check_report_fits(model, args.size, min(args.batch_size, held), n_layers, held)
    images = load_images(args.images, size=args.size, seed=args.seed, noise=args.noise_images,
                         min_size=total_stride(model, STRIDE_PROBE_SIZE))  # files: headers only, pixels later
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
    )
    out = write_report(report, args.out, inputs=inputs)
    print(f"wrote {out}/report.md ({len(report.layers)} layers, {report.n_images} images, {report.device})")
    for note in report.notes:
        print(f"  note: {note}")
    for layer in report.layers:
        m = layer.metrics
        tile = "n/a" if m.tile_p_value != m.tile_p_value else f"{m.shared_tile_cv:.3g} (p {m.tile_p_value:.3g})"
        print(f"  {layer.name:>14}  S={layer.stride:<3d} {m.verdict}; shared tile cv {tile}; "
              f"lattice share {m.lattice_fraction:.2g}")
    return 0
