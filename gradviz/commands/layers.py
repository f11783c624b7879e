"""``gradviz layers``: every layer of a model with its output shape and cumulative stride."""

from __future__ import annotations

import argparse

from gradviz.models import MODEL_NAMES, load_model
from gradviz.taps import downsampling_stages, layer_table


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "layers",
        help="list a model's layers, output shapes and cumulative strides",
        description="List the dotted layer names a tap accepts, with output shape and cumulative stride at --size px.",
    )
    p.add_argument("--model", required=True, help=f"one of: {', '.join(MODEL_NAMES)}")
    p.add_argument("--weights", default="random", help="weights do not change the table (default: random)")
    p.add_argument("--size", type=int, default=224, help="probe image size (default: 224)")
    p.add_argument("--device", default="cpu", help="device for the probe pass (default: cpu)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    model = load_model(args.model, args.weights, device=args.device)
    stages = {row.name for row in downsampling_stages(model, args.size)}
    print(f"{'layer':<28} {'type':<18} {'output shape':<18} {'stride':>6}")
    for row in layer_table(model, args.size):
        shape = "x".join(str(s) for s in row.shape)
        stride = "" if row.stride is None else str(row.stride)
        mark = "  <- stage output" if row.name in stages else ""
        print(f"{row.name:<28} {row.type:<18} {shape:<18} {stride:>6}{mark}")
    print(f"{'logits':<28} {'(model output)':<18}")
    return 0
