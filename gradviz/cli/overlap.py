"""``gradviz overlap``: overlap pattern, max/min and spectrum of stacked transposed convolutions."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from gradviz.cli import argtypes, common
from gradviz.core.budget import check_memory
from gradviz.errors import GradvizError
from gradviz.io.outputs import SOFTWARE, atomic_files, check_out_file
from gradviz.upsampling.overlap import MAX_KERNEL, analyse_overlap, overlap_prefixes, parse_kernel, stack
from gradviz.upsampling.render import plot_overlap

# The deepest stack the command line takes (stride 2 reaches a period of 2**64 long before).
MAX_LAYERS = 64


def register(subparsers, summary: str) -> None:
    p = subparsers.add_parser(
        "overlap",
        help=summary,
        description="Overlap pattern of a stack of 1D/2D transposed convolutions with a constant input "
        "(Distill's 'uneven overlap'), its max/min and spectral lines; writes a figure (.png) and a JSON beside it.",
    )
    p.add_argument("--kernel", default="3", help="kernel size (box) or weights like 1,4,6,4,1 (default 3)")
    p.add_argument("--stride", type=argtypes.int_range(1), default=2, help="stride of each layer (default 2)")
    p.add_argument("--depth", type=argtypes.int_range(1, MAX_LAYERS), default=1, help="number of stacked layers (default 1)")
    p.add_argument("--final", type=argtypes.int_range(0, MAX_KERNEL), default=0, help="size m of a final stride-1 box layer (default 0: none)")
    p.add_argument("--out", default=None, help="figure path (.png); also writes the JSON beside it (an existing file is replaced only if gradviz wrote it)")
    common.add_quiet(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    weights = parse_kernel(str(args.kernel))
    out = None
    if args.out is not None:
        out = check_out_file(args.out, suffixes=[".png"])
        check_out_file(out.with_suffix(".json"), flag="--out's JSON")
    layers = stack(weights, args.stride, args.depth, args.final)
    if args.depth * math.log2(args.stride) > 62:  # the period alone would not fit in 64 bits
        raise GradvizError(f"--stride {args.stride} over {args.depth} layers gives a period of more than 2**62 pixels; "
                           "valid: stride**layers below 2**62")
    period = args.stride ** args.depth
    grow = (period - 1) // (args.stride - 1) if args.stride > 1 else args.depth  # 1 + s + ... + s^(L-1)
    kernel = (len(weights) - 1) * grow + 1 + args.final
    # float64 equivalent kernel and its 1D spectrum, and the (S, S) pattern with its 2D spectrum (complex128)
    check_memory(8 * 3 * kernel + 24 * period * period, "cpu", f"{args.depth} layers of stride {args.stride} "
                 f"(period {period})", "choose a smaller --depth or a smaller --stride")
    report = analyse_overlap(layers)
    data = {"software": SOFTWARE, **report.to_dict()}
    if out is not None:
        with atomic_files([out, out.with_suffix(".json")], guard=True) as (figure_tmp, json_tmp):
            plot_overlap(overlap_prefixes(layers), figure_tmp)
            json_tmp.write_text(json.dumps(data, indent=2) + "\n")
    if args.quiet:
        return 0
    ratio = "inf" if report.ratio_1d == float("inf") else f"{report.ratio_1d:g}"
    print(f"period {report.period}; pattern {report.pattern}; max/min 1D {ratio}, 2D "
          f"{report.ratio_2d:g}; lines |C[q]|/C[0] {[round(r, 6) for r in report.line_ratios_1d]}; "
          f"2D non-DC/DC power {report.nondc_over_dc_2d:.6g}")
    if args.out:
        print(f"wrote {args.out} and {Path(args.out).with_suffix('.json')}")
    return 0
