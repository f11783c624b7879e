"""``gradviz fix``: a model with its downsampling replaced (blur pooling, ...), saved as a state dict."""

from __future__ import annotations

import argparse

from gradviz.cli import common
from gradviz.downsampling.fix import save_fixed
from gradviz.downsampling.variants import RESNET_VARIANTS, VGG_VARIANTS
from gradviz.io.outputs import check_out_file


def register(subparsers: argparse._SubParsersAction, summary: str) -> None:
    p = subparsers.add_parser(
        "fix", help=summary,
        description="Replace a VGG's or ResNet's downsampling with one of the variants `gradviz compare` measures "
        "and save the network as a state dict with its recipe (.pth). The weights are not retrained: measure "
        "its gradients at once with `gradviz report --weights FILE`, fine-tune it before trusting its outputs.")
    common.add_model(p)
    p.add_argument("--downsampling", required=True,
                   help=f"the variant: for VGG {', '.join(VGG_VARIANTS)}; for ResNet {', '.join(RESNET_VARIANTS)}")
    common.add_seed(p, "random weights")
    common.add_device(p)
    p.add_argument("--out", required=True, help="the state dict to write (.pth; an existing file only if gradviz wrote it)")
    common.add_quiet(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out = check_out_file(args.out, [args.weights], suffixes=[".pth", ".pt"])
    model = common.load_model_from(args)
    fixed = save_fixed(model, args.downsampling, out)
    if not args.quiet:
        print(f"wrote {out}: {model.arch} with downsampling {args.downsampling} ({fixed.weights}); "
              f"measure it with: gradviz report --model {model.arch} --weights {out} --out DIR")
    return 0
