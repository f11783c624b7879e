"""``gradviz layers``: every layer of a model with its output shape and cumulative stride."""

from __future__ import annotations

import argparse

from gradviz.cli import argtypes, common
from gradviz.core.budget import ACTIVATION_BYTES, activation_elements, check_memory
from gradviz.core.layermap import PROBE_SIZE, layer_map, layer_map_at
from gradviz.core.models import load_model, model_device
from gradviz.errors import GradvizError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "layers",
        help="list a model's layers, output shapes and cumulative strides",
        description="List the dotted layer names a tap accepts, with output shape and cumulative stride at --size px.",
    )
    common.add_model(p, weights="random", weights_help="weights do not change the table")
    p.add_argument("--size", type=argtypes.int_range(1), default=224,
                   help="probe image size, at least the model's total stride (default: %(default)s)")
    common.add_device(p, default="cpu")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    model = load_model(args.model, args.weights, device=args.device)
    probe = layer_map(model, PROBE_SIZE)
    top = probe.total_stride
    if args.size < top:
        raise GradvizError(f"--size must be at least the model's total stride {top}, got {args.size}")
    check_memory(activation_elements(probe, args.size) * ACTIVATION_BYTES, model_device(model),
                 f"a probe pass at {args.size} px", "choose a smaller --size")
    lmap = layer_map_at(model, args.size, probe)
    stages = {row.name for row in lmap.stages}
    print(f"{'layer':<28} {'type':<18} {'output shape':<18} {'stride':>6}")
    for row in lmap.rows:
        shape = "x".join(str(s) for s in row.shape)
        stride = "" if row.stride is None else str(row.stride)
        mark = "  <- stage output" if row.name in stages else ""
        print(f"{row.name:<28} {row.type:<18} {shape:<18} {stride:>6}{mark}")
    print(f"{'logits':<28} {'(model output)':<18}")
    return 0
