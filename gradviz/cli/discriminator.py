"""``gradviz discriminator``: input gradients of discriminators with different first layers, at init."""

from __future__ import annotations

import argparse

from gradviz.cli import argtypes, common
from gradviz.io.outputs import atomic_dir, check_out_dir, write_json
from gradviz.upsampling.discriminators import FIRST_LAYERS, measure_discriminator, pick_patches
from gradviz.upsampling.render import plot_gradients

# The first layers compared when --first-layer is not given.
DEFAULT_FIRST_LAYERS = "stride2,conv+pool"


def register(subparsers, summary: str) -> None:
    p = subparsers.add_parser(
        "discriminator",
        help=summary,
        description="Gradient of a fresh DCGAN-style discriminator's logit with respect to 32x32 photo "
        "patches (scikit-image), per first layer; writes metrics.json and gradients.png to --out.",
    )
    p.add_argument("--first-layer", type=argtypes.name_list, default=DEFAULT_FIRST_LAYERS,
                   help=f"comma-separated first layers (default {DEFAULT_FIRST_LAYERS}); valid: " + FIRST_LAYERS.help())
    p.add_argument("--patches", type=argtypes.int_range(1), default=64, help="photo patches (default: %(default)s)")
    common.add_seed(p, "the weights and of the patch choice")
    common.add_out_dir(p)
    common.add_quiet(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_out_dir(args.out)
    firsts = args.first_layer
    for f in firsts:
        FIRST_LAYERS[f]  # an unknown name raises the registry's one-line error
    images = pick_patches(args.patches, args.seed)
    results = {f: measure_discriminator(f, images, seed=args.seed) for f in firsts}
    with atomic_dir(args.out, command="discriminator") as tmp:
        write_json(tmp / "metrics.json", {f: r.metrics.to_dict() for f, r in results.items()})
        plot_gradients(list(results.values()), tmp / "gradients.png")
    if args.quiet:
        return 0
    for f, r in results.items():
        m = r.metrics
        print(f"{f:14s} {m.verdict}; period-2 excess {m.octave_excess[0]:.3g} (p {m.octave_p_values[0]:.3g}), "
              f"lattice share {m.lattice_fraction:.3f}")
    print(f"wrote {args.out}/metrics.json and gradients.png")
    return 0

