"""Argument groups every sub-command shares: one flag, one meaning, one default everywhere.

``--model --weights --normalize --num-classes`` (which network), ``--images`` (a folder, a list or a file,
never a count; ``--workers`` and ``--max-images`` where a command streams them), ``--size``, ``--device``,
``--seed``, ``--out`` and ``--quiet``. A sub-command adds the groups it uses with these functions, and loads its model with :func:`load_model_from`.
"""

from __future__ import annotations

import argparse

from gradviz.cli import argtypes
from gradviz.core.models import PixelModel, load_model
from gradviz.core.specs import MODEL_SPECS_HELP, NORMALIZE_HELP, WEIGHT_CHOICES, parse_spec
from gradviz.downsampling.fix import fixed_recipe, load_fixed
from gradviz.errors import GradvizError

__all__ = ["add_device", "add_image_reading", "add_images", "add_model", "add_out_dir", "add_quiet", "add_seed",
           "add_size", "load_model_from", "progress", "weights_of"]

# The image side every command uses unless told otherwise (torchvision's ImageNet crop).
DEFAULT_SIZE = 224
# The most --workers: more decoding processes than this only compete for the same cores and memory.
MAX_WORKERS = 256


def add_model(p: argparse.ArgumentParser, weights_note: str = "") -> None:
    """``--model`` (required), ``--weights`` (default imagenet), ``--normalize``, ``--num-classes``."""
    p.add_argument("--model", required=True, help=MODEL_SPECS_HELP)
    p.add_argument("--weights", default=None,
                   help=f"{WEIGHT_CHOICES}; 'imagenet' downloads the pretrained weights{weights_note} (default: "
                        "imagenet; for a file.py:factory model, what the factory builds, seeded)")
    p.add_argument("--normalize", type=argtypes.nonempty, default=None,
                   help=f"input normalisation inside the model: {NORMALIZE_HELP}; gradients are always with respect to "
                        "[0, 1] pixels")
    p.add_argument("--num-classes", type=argtypes.int_range(1), default=None,
                   help="classes of a fine-tuned checkpoint's head (default: the model's own)")


def add_images(p: argparse.ArgumentParser) -> None:
    """``--images``: a folder (read recursively), a ``.txt`` list of image paths, or an image file."""
    p.add_argument("--images", type=argtypes.nonempty, default=None,
                   help="a folder (read recursively, in path order; class subfolders too), a .txt file listing image "
                        "paths (one a line, relative to the list; # comments), or an image file (default: the built-in "
                        "scikit-image photographs)")


def add_image_reading(p: argparse.ArgumentParser) -> None:
    """``--workers`` (processes decoding the files) and ``--max-images`` (a sample under ``--seed``)."""
    p.add_argument("--workers", type=argtypes.int_range(0, MAX_WORKERS), default=0,
                   help="processes that decode the image files, in order (default: %(default)s, in the main process)")
    p.add_argument("--max-images", type=argtypes.int_range(1), default=None,
                   help="measure a sample of this many images, drawn without replacement under --seed and kept in "
                        "their order (default: all)")


def add_size(p: argparse.ArgumentParser, note: str = "") -> None:
    """``--size``: the square side images are resized and centre-cropped to."""
    p.add_argument("--size", type=argtypes.int_range(1), default=DEFAULT_SIZE,
                   help=f"images are resized and centre-cropped to this square{note} (default: %(default)s)")


def add_device(p: argparse.ArgumentParser) -> None:
    """``--device``: auto (CUDA if available), cpu, cuda, cuda:N."""
    p.add_argument("--device", type=argtypes.device, default="auto",
                   help="auto (CUDA if available), cpu, cuda, cuda:N (default: %(default)s)")


def add_seed(p: argparse.ArgumentParser, what: str) -> None:
    """``--seed``, saying what it seeds."""
    p.add_argument("--seed", type=argtypes.seed, default=0, help=f"seed of {what} (default: %(default)s)")


def add_out_dir(p: argparse.ArgumentParser) -> None:
    """``--out``, a folder gradviz may write."""
    p.add_argument("--out", required=True,
                   help="output folder: new, empty, or one gradviz wrote (replaced atomically; anything else is refused)")


def add_quiet(p: argparse.ArgumentParser) -> None:
    """``--quiet``: nothing on stdout and no progress bars (errors still print, on stderr)."""
    p.add_argument("--quiet", action="store_true", help="print nothing but errors (no progress bars, no summary)")


def progress(args: argparse.Namespace) -> bool | None:
    """What compute functions take as ``progress``: off with ``--quiet``, else shown on a terminal only."""
    return False if args.quiet else None


def weights_of(args: argparse.Namespace) -> str:
    """``--weights``, or its default: ``imagenet``, except for a ``file.py:factory`` model, whose
    factory decides its weights (``random``: built under ``--seed``)."""
    if args.weights is not None:
        return args.weights
    return "random" if parse_spec(args.model).kind == "file" else "imagenet"


def load_model_from(args: argparse.Namespace) -> PixelModel:
    """The model the ``add_model`` flags (and ``--seed``, ``--device``) name; a file that ``gradviz fix``
    wrote is rebuilt with its downsampling (its recipe names the model, which must match ``--model``)."""
    recipe = fixed_recipe(args.weights) if args.weights not in (None, "imagenet", "random") else None
    if recipe is not None:
        if recipe.get("model") != args.model:
            raise GradvizError(f"{args.weights} holds a fixed {recipe.get('model')}, not {args.model}; "
                               f"valid: --model {recipe.get('model')}")
        return load_fixed(args.weights, device=args.device, seed=getattr(args, "seed", 0))
    return load_model(args.model, weights_of(args), seed=getattr(args, "seed", 0), device=args.device,
                      num_classes=args.num_classes, normalize=args.normalize)
