"""``gradviz layers``: every layer of a model with its output shape and cumulative stride."""

from __future__ import annotations

import argparse

from gradviz import argtypes
from gradviz.budget import ACTIVATION_BYTES, activation_elements, check_memory

from gradviz.models import MODEL_NAMES, load_model, model_device
from gradviz.errors import GradvizError
from gradviz.taps import downsampling_stages, layer_table, total_stride
from gradviz.visualize import STRIDE_PROBE_SIZE


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "layers",
        help="list a model's layers, output shapes and cumulative strides",
        description="List the dotted layer names a tap accepts, with output shape and cumulative stride at --size px.",
    )
    p.add_argument("--model", required=True, help=f"one of: {', '.join(MODEL_NAMES)}")
    p.add_argument("--weights", default="random", help="weights do not change the table (default: random)")
    p.add_argument("--size", type=argtypes.int_range(1), default=224,
                   help="probe image size, at least the model's total stride (default: 224)")
    p.add_argument("--device", type=argtypes.device, default="cpu", help="device for the probe pass (default: cpu)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    model = load_model(args.model, args.weights, device=args.device)
    top = total_stride(model, STRIDE_PROBE_SIZE)
    if args.size < top:
        raise GradvizError(f"--size must be at least the model's total stride {top}, got {args.size}")
    check_memory(activation_elements(model, args.size) * ACTIVATION_BYTES, model_device(model),
                 f"a probe pass at {args.size} px", "choose a smaller --size")
    stages = {row.name for row in downsampling_stages(model, args.size)}
    print(f"{'layer':<28} {'type':<18} {'output shape':<18} {'stride':>6}")
    for row in layer_table(model, args.size):
        shape = "x".join(str(s) for s in row.shape)
        stride = "" if row.stride is None else str(row.stride)
        mark = "  <- stage output" if row.name in stages else ""
        print(f"{row.name:<28} {row.type:<18} {shape:<18} {stride:>6}{mark}")
    print(f"{'logits':<28} {'(model output)':<18}")
    return 0
