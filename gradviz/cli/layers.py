"""``gradviz layers``: every layer of a model with its output shape and cumulative stride."""

from __future__ import annotations

import argparse

from gradviz.cli import common
from gradviz.core.budget import ACTIVATION_BYTES, activation_elements, check_memory
from gradviz.core.layermap import layer_map_at, probe_map
from gradviz.core.models import model_device
from gradviz.errors import GradvizError


def register(subparsers: argparse._SubParsersAction, summary: str) -> None:
    p = subparsers.add_parser(
        "layers",
        help=summary,
        description="List the dotted layer names a tap accepts, with output shape and cumulative stride at --size px.",
    )
    common.add_model(p, weights_note=" (the table does not depend on the weights: only a file is loaded, to check it fits)")
    common.add_size(p, note=", at least the model's total stride")
    common.add_device(p)
    common.add_quiet(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.weights in (None, "imagenet", "random"):  # the table is the same for any weights: none are downloaded
        args.weights = "random"
    model = common.load_model_from(args)
    probe = probe_map(model, args.size)
    top = probe.total_stride
    if args.size < top:
        raise GradvizError(f"--size must be at least the model's total stride {top}, got {args.size}")
    check_memory(activation_elements(probe, args.size) * ACTIVATION_BYTES, model_device(model),
                 f"a probe pass at {args.size} px", "choose a smaller --size")
    lmap = layer_map_at(model, args.size, probe)
    stages = {row.name for row in lmap.stages}
    if args.quiet:  # the model loaded and ran: nothing to print
        return 0
    print(f"{'layer':<28} {'type':<18} {'output shape':<18} {'stride':>6}")
    for row in lmap.rows:
        shape = "x".join(str(s) for s in row.shape)
        stride = "" if row.stride is None else str(row.stride)
        mark = "  <- stage output" if row.name in stages else ""
        print(f"{row.name:<28} {row.type:<18} {shape:<18} {stride:>6}{mark}")
    print(f"{'logits':<28} {'(model output)':<18}")
    return 0
