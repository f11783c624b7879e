"""``gradviz generators``: checkerboard metrics and sample grids of generators at initialisation."""

from __future__ import annotations

import argparse

from gradviz.errors import GradvizError
from gradviz.generators import DESIGN_EXAMPLES, measure_generators, parse_design, plot_samples
from gradviz.outputs import atomic_dir, write_json


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "generators",
        help="checkerboards of DCGAN-style generators at random initialisation, per upsampling design",
        description="Build one generator per design (<upsample>[-last1|-last2][+final<m>]), sample latent "
        "vectors, and write metrics.json and samples.png to --out. Examples: " + ", ".join(DESIGN_EXAMPLES),
    )
    p.add_argument("--upsample", default="deconv3,deconv4,nearest,bilinear,subpixel,subpixel-icnr",
                   help="comma-separated designs")
    p.add_argument("--samples", type=int, default=64, help="latent vectors per design (default 64)")
    p.add_argument("--blocks", type=int, default=3, help="upsampling blocks; images are 4*2**blocks pixels (default 3)")
    p.add_argument("--width", type=int, default=128, help="channels after the linear layer (default 128)")
    p.add_argument("--seed", type=int, default=0, help="seed of weights and latents (default 0)")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    designs = [d for d in args.upsample.split(",") if d.strip()]
    if not designs:
        raise GradvizError("--upsample is empty; valid: comma-separated designs like " + ", ".join(DESIGN_EXAMPLES))
    for d in designs:
        parse_design(d)
    if args.samples < 2:
        raise GradvizError(f"--samples must be >= 2, got {args.samples}")
    if not 1 <= args.blocks <= 6:
        raise GradvizError(f"--blocks must be between 1 and 6, got {args.blocks}")
    results = measure_generators(designs, args.samples, args.seed, args.blocks, args.width)
    with atomic_dir(args.out) as tmp:
        write_json(tmp / "metrics.json", [r.to_dict() for r, _ in results])
        plot_samples(results, tmp / "samples.png")
    for r, _ in results:
        m = r.metrics
        print(f"{r.design:18s} {m.verdict}; lattice excess {m.lattice_excess:.3g}, lattice share "
              f"{m.lattice_fraction:.3f}, coherent share {m.coherent_lattice_fraction:.3f}")
    print(f"wrote {args.out}/metrics.json and samples.png")
    return 0
