"""``gradviz generators``: checkerboard metrics and sample grids of generators at initialisation."""

from __future__ import annotations

import argparse

from gradviz.cli import argtypes, common
from gradviz.core.budget import check_memory
from gradviz.io.outputs import atomic_dir, check_out_dir, write_json
from gradviz.upsampling.generators import DESIGN_EXAMPLES, LATENT, SAMPLE_BATCH, measure_generators, parse_design
from gradviz.upsampling.page import generators_page_html
from gradviz.upsampling.render import plot_samples
from gradviz.upsampling.upsamplers import UPSAMPLERS

# Bytes per float32 value kept for the estimate: the value, and a temporary of the same size.
BYTES_PER_VALUE = 2 * 4
# The designs measured when --upsample is not given.
DEFAULT_DESIGNS = "deconv3,deconv4,nearest,bilinear,subpixel,subpixel-icnr"


def register(subparsers, summary: str) -> None:
    p = subparsers.add_parser(
        "generators",
        help=summary,
        description="Build one generator per design (<upsample>[-last1|-last2][+final<m>]), sample latent "
        "vectors, and write report.html (verdict per design), metrics.json and samples.png to --out. Examples: " + ", ".join(DESIGN_EXAMPLES),
    )
    p.add_argument("--upsample", type=argtypes.name_list, default=DEFAULT_DESIGNS,
                   help=f"comma-separated designs <upsample>[-last1|-last2][+final<m>] (default {DEFAULT_DESIGNS}); "
                   "upsample: " + UPSAMPLERS.help())
    p.add_argument("--samples", type=argtypes.int_range(2, 100_000), default=64, help="latent vectors per design (default 64)")
    p.add_argument("--blocks", type=argtypes.int_range(1, 6), default=3, help="upsampling blocks; images are 4*2**blocks pixels (default 3)")
    p.add_argument("--width", type=argtypes.int_range(2), default=128, help="channels after the linear layer (default 128)")
    common.add_seed(p, "weights and latents")
    common.add_out_dir(p)
    common.add_quiet(p)
    p.set_defaults(func=run)


def generator_bytes(width: int, blocks: int, samples: int, latent: int = LATENT, final_kernel: int = 0) -> float:
    """Rough memory of one design: weights (4x4 kernels, channels halving, and a final m x m layer),
    one batch's activations, the samples."""
    side = 4 * 2**blocks
    weights = latent * width * 16 + sum((width >> i) * (width >> (i + 1)) * 16 for i in range(blocks))
    weights += max(width >> blocks, 3) * 3 * final_kernel**2
    activations = width * 16 + sum((width >> (i + 1)) * (4 * 2 ** (i + 1)) ** 2 for i in range(blocks))
    return BYTES_PER_VALUE * (weights + min(samples, SAMPLE_BATCH) * activations + samples * 3 * side * side)


def run(args: argparse.Namespace) -> int:
    check_out_dir(args.out)
    designs = args.upsample
    final = max(parse_design(d).final_kernel for d in designs)
    check_memory(generator_bytes(args.width, args.blocks, args.samples, final_kernel=final), "cpu",
                 f"a generator of width {args.width} with {args.blocks} blocks and {args.samples} samples",
                 "choose a smaller --width, --blocks, --samples or final kernel")
    results = measure_generators(designs, args.samples, args.seed, args.blocks, args.width,
                                 progress=common.progress(args))
    with atomic_dir(args.out, command="generators") as tmp:
        write_json(tmp / "metrics.json", [r.to_dict() for r, _ in results])
        plot_samples(results, tmp / "samples.png")
        (tmp / "report.html").write_text(generators_page_html([r for r, _ in results], ["samples.png"]))
    if args.quiet:
        return 0
    for r, _ in results:
        m = r.metrics
        print(f"{r.design:18s} {m.verdict}; lattice excess {m.lattice_excess:.3g}, lattice share "
              f"{m.lattice_fraction:.3f}, coherent share {m.coherent_lattice_fraction:.3f}")
    print(f"wrote {args.out}/report.html, metrics.json and samples.png")
    return 0
