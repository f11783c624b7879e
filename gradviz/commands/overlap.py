"""``gradviz overlap``: overlap pattern, max/min and spectrum of stacked transposed convolutions."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from gradviz.errors import GradvizError
from gradviz.outputs import atomic_file
from gradviz.overlap import OverlapLayer, analyse_overlap, parse_kernel, plot_overlap


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "overlap",
        help="uneven overlap of transposed convolutions: pattern, max/min, spectrum, figure",
        description="Overlap pattern of a stack of 1D/2D transposed convolutions with a constant input "
        "(Distill's 'uneven overlap'), its max/min and spectral lines; writes a figure (.png) and a JSON beside it.",
    )
    p.add_argument("--kernel", default="3", help="kernel size (box) or weights like 1,4,6,4,1 (default 3)")
    p.add_argument("--stride", type=int, default=2, help="stride of each layer (default 2)")
    p.add_argument("--layers", type=int, default=1, help="number of stacked layers (default 1)")
    p.add_argument("--final", type=int, default=0, help="size m of a final stride-1 box layer (default 0: none)")
    p.add_argument("--out", default=None, help="figure path (.png); also writes the JSON beside it")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    weights = parse_kernel(str(args.kernel))
    if args.stride < 1:
        raise GradvizError(f"--stride must be an integer >= 1, got {args.stride}")
    if args.layers < 1:
        raise GradvizError(f"--layers must be an integer >= 1, got {args.layers}")
    if args.final < 0:
        raise GradvizError(f"--final must be an integer >= 0 (0 = none), got {args.final}")
    layers = [OverlapLayer(weights, args.stride)] * args.layers
    if args.final:
        layers.append(OverlapLayer.box(args.final, 1))
    report = analyse_overlap(layers)
    text = json.dumps(report.to_dict(), indent=2)
    if args.out:
        out = Path(args.out)
        if out.suffix.lower() != ".png":
            raise GradvizError(f"--out must end in .png, got {args.out!r}")
        with atomic_file(out) as tmp:
            plot_overlap(layers, tmp)
        with atomic_file(out.with_suffix(".json")) as tmp:
            tmp.write_text(text + "\n")
    ratio = "inf" if report.ratio_1d == float("inf") else f"{report.ratio_1d:g}"
    print(f"period {report.period}; pattern {report.pattern}; max/min 1D {ratio}, 2D "
          f"{report.ratio_2d:g}; lines |C[q]|/C[0] {[round(r, 6) for r in report.line_ratios_1d]}; "
          f"2D non-DC/DC power {report.nondc_over_dc_2d:.6g}")
    if args.out:
        print(f"wrote {args.out} and {Path(args.out).with_suffix('.json')}")
    return 0
