"""Argument groups that several sub-commands share, so a flag means one thing everywhere.

Defaults still differ between commands (``--weights`` is ``imagenet`` for ``report`` and
``dream``, ``random`` for ``layers`` and ``compare``); each command passes its own.
"""

from __future__ import annotations

import argparse

from gradviz.cli import argtypes
from gradviz.core.models import MODEL_NAMES, WEIGHT_CHOICES

__all__ = ["add_device", "add_model", "add_out_dir", "add_seed"]


def add_model(p: argparse.ArgumentParser, *, model: str | None = None, weights: str = "imagenet",
              weights_help: str | None = None) -> None:
    """``--model`` (required when ``model`` is None) and ``--weights``."""
    if model is None:
        p.add_argument("--model", required=True, help=f"one of: {', '.join(MODEL_NAMES)}")
    else:
        p.add_argument("--model", default=model, help=f"one of: {', '.join(MODEL_NAMES)} (default: %(default)s)")
    p.add_argument("--weights", default=weights,
                   help=(weights_help or f"{WEIGHT_CHOICES}; 'imagenet' downloads torchvision's") + " (default: %(default)s)")


def add_device(p: argparse.ArgumentParser, default: str = "auto") -> None:
    """``--device``: auto (CUDA if available), cpu, cuda, cuda:N."""
    p.add_argument("--device", type=argtypes.device, default=default,
                   help="auto (CUDA if available), cpu, cuda, cuda:N (default: %(default)s)")


def add_seed(p: argparse.ArgumentParser, what: str) -> None:
    """``--seed``, saying what it seeds."""
    p.add_argument("--seed", type=argtypes.seed, default=0, help=f"seed of {what} (default: %(default)s)")


def add_out_dir(p: argparse.ArgumentParser) -> None:
    """``--out``, a folder gradviz may write."""
    p.add_argument("--out", required=True,
                   help="output folder: new, empty, or one gradviz wrote (replaced atomically; anything else is refused)")
