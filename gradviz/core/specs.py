"""What ``--model`` and ``--normalize`` accept, parsed without importing torch.

A model spec is one of the 13 short names (:data:`MODEL_NAMES`), ``torchvision:NAME``,
``timm:NAME`` or ``path/to/file.py:factory``; :func:`parse_spec` tells them apart.
A normalisation is ``imagenet``, ``none``, ``MEAN,STD`` text or a ``(mean, std)`` pair;
:func:`parse_normalize` turns it into two 3-tuples. Nothing here imports torch, so the command
line can build its help from these names quickly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from gradviz.errors import GradvizError, unknown

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "MODEL_NAMES", "MODEL_SPECS_HELP", "NORMALIZE_HELP", "ModelSpec",
           "WEIGHT_CHOICES", "describe_normalize", "parse_normalize", "parse_spec"]

VGG_NAMES = [f"vgg{d}{bn}" for d in (11, 13, 16, 19) for bn in ("", "_bn")]
RESNET_NAMES = [f"resnet{d}" for d in (18, 34, 50, 101, 152)]
MODEL_NAMES = VGG_NAMES + RESNET_NAMES

# torchvision's ImageNet input convention: x_net = (x - mean) / std with x in [0, 1].
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IDENTITY = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))

WEIGHT_CHOICES = "'imagenet', 'random', or a path to a state-dict file (.pth)"
SPEC_FORMS = ["torchvision:NAME", "timm:NAME", "path/to/file.py:factory"]
MODEL_SPECS_HELP = (f"{', '.join(MODEL_NAMES)}; torchvision:NAME (any torchvision classification model), "
                    "timm:NAME (pip install timm), or path/to/file.py:FACTORY (a function returning an nn.Module)")
NORMALIZE_HELP = ("imagenet, none, or MEAN,STD (e.g. 0.5,0.5 or 0.485,0.456,0.406,0.229,0.224,0.225); "
                  "default: the weights' own (imagenet for the short names and torchvision, timm's pretrained_cfg)")


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model spec.

    Attributes:
        kind: ``"name"`` (a short name), ``"torchvision"``, ``"timm"`` or ``"file"``.
        name: the model name (for a file: the factory function's name).
        path: the Python file (``kind == "file"`` only).
        text: the spec as given, which reports print as the architecture.
    """

    kind: str
    name: str
    text: str
    path: Path | None = None


def parse_spec(spec: str) -> ModelSpec:
    """Tell a short name, ``torchvision:NAME``, ``timm:NAME`` and ``file.py:factory`` apart.

    Only the form is checked here; whether ``NAME`` exists is checked when the model is built.

    Args:
        spec: the ``--model`` text.

    Returns:
        A :class:`ModelSpec`.

    Example:
        >>> parse_spec("resnet18").kind, parse_spec("torchvision:convnext_tiny").name
        ('name', 'convnext_tiny')
        >>> s = parse_spec("nets/mine.py:build")
        >>> s.kind, s.name, s.path.as_posix()
        ('file', 'build', 'nets/mine.py')
        >>> parse_spec("vgg12")
        Traceback (most recent call last):
        ...
        gradviz.errors.GradvizError: unknown model 'vgg12'; valid: vgg11, vgg11_bn, vgg13, vgg13_bn, vgg16, vgg16_bn, \
vgg19, vgg19_bn, resnet18, resnet34, resnet50, resnet101, resnet152, torchvision:NAME, timm:NAME, \
path/to/file.py:factory
    """
    if not isinstance(spec, str):
        raise GradvizError(f"a model spec must be text, got {type(spec).__name__}; valid: {MODEL_SPECS_HELP}")
    text = spec.strip()
    if text in MODEL_NAMES:
        return ModelSpec("name", text, text)
    prefix, sep, rest = text.partition(":")
    if sep and prefix in ("torchvision", "timm"):
        if not rest.strip():
            raise GradvizError(f"model spec {spec!r} names no model; valid: {prefix}:NAME, e.g. "
                               + ("torchvision:mobilenet_v3_small" if prefix == "torchvision" else "timm:resnet18"))
        return ModelSpec(prefix, rest.strip(), text)
    file, sep, factory = text.rpartition(":")
    if sep and file.endswith(".py"):
        if not factory.isidentifier():
            raise GradvizError(f"model spec {spec!r}: {factory!r} is not a function name; "
                               "valid: path/to/file.py:factory")
        return ModelSpec("file", factory, text, Path(file).expanduser())
    if text.endswith(".py"):
        raise GradvizError(f"model spec {spec!r} names a file but no factory; valid: {text}:FUNCTION "
                           "(a function returning an nn.Module)")
    raise unknown("model", spec, MODEL_NAMES + SPEC_FORMS)


def _floats(values: object, what: str, original: object) -> tuple[float, float, float]:
    if isinstance(values, (int, float)):
        values = [values]
    try:
        out = [float(v) for v in values]  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise GradvizError(f"normalize {original!r}: the {what} is not a list of numbers; {_VALID}") from None
    if len(out) not in (1, 3):
        raise GradvizError(f"normalize {original!r}: the {what} has {len(out)} values; valid: 1 or 3")
    if not all(math.isfinite(v) for v in out):
        raise GradvizError(f"normalize {original!r}: the {what} is not finite; valid: finite numbers")
    return tuple(out * 3) if len(out) == 1 else tuple(out)  # type: ignore[return-value]


_VALID = "valid: imagenet, none, MEAN,STD (2 numbers), 3 means then 3 stds (6 numbers), or a (mean, std) pair"


def parse_normalize(value: str | tuple | list | None) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The ``(mean, std)`` that a model's input ``x`` in [0, 1] is normalised with: ``(x - mean) / std``.

    Args:
        value: ``"imagenet"`` (or None), ``"none"`` (mean 0, std 1), text ``"MEAN,STD"`` with 1 or 3
            values each (``"0.5,0.5"``, ``"0.485,0.456,0.406,0.229,0.224,0.225"``), or a
            ``(mean, std)`` pair of numbers or sequences of 1 or 3 numbers.

    Returns:
        ``(mean, std)``, each a tuple of 3 floats (a single value is repeated); every std > 0.

    Example:
        >>> parse_normalize("0.5,0.25")
        ((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
        >>> parse_normalize("none")
        ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
        >>> parse_normalize(([0.4, 0.5, 0.6], 0.2))[0]
        (0.4, 0.5, 0.6)
        >>> parse_normalize("0.5,0.5,0.5")
        Traceback (most recent call last):
        ...
        gradviz.errors.GradvizError: normalize '0.5,0.5,0.5' has 3 numbers; valid: imagenet, none, MEAN,STD \
(2 numbers), 3 means then 3 stds (6 numbers), or a (mean, std) pair
    """
    if value is None:
        return IMAGENET_MEAN, IMAGENET_STD
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "imagenet":
            return IMAGENET_MEAN, IMAGENET_STD
        if text == "none":
            return IDENTITY
        parts = [p.strip() for p in text.replace(";", ",").split(",")]
        try:
            numbers = [float(p) for p in parts]
        except ValueError:
            raise GradvizError(f"unknown normalize {value!r}; {_VALID}") from None
        if len(numbers) not in (2, 6):
            raise GradvizError(f"normalize {value!r} has {len(numbers)} numbers; {_VALID}")
        half = len(numbers) // 2
        mean, std = numbers[:half], numbers[half:]
    elif isinstance(value, (tuple, list)) and len(value) == 2:
        mean, std = value
    else:
        raise GradvizError(f"normalize must be text or a (mean, std) pair, got {type(value).__name__}; {_VALID}")
    mean_t, std_t = _floats(mean, "mean", value), _floats(std, "std", value)
    if min(std_t) <= 0:
        raise GradvizError(f"normalize {value!r}: std {std_t} has a value <= 0; valid: std > 0")
    return mean_t, std_t


def describe_normalize(mean: tuple[float, ...], std: tuple[float, ...]) -> str:
    """A short name for a normalisation: ``imagenet``, ``none`` or ``mean=... std=...``.

    Args:
        mean, std: per-channel values (1 or 3 each).

    Returns:
        Text that :func:`parse_normalize` reads back (``imagenet``, ``none``) or that names the values.

    Example:
        >>> describe_normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
        'imagenet'
        >>> describe_normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
        'mean=0.5 std=0.5'
    """
    mean_t, std_t = _floats(mean, "mean", mean), _floats(std, "std", std)

    def same(a, b):
        return all(abs(x - y) < 1e-6 for x, y in zip(a, b))

    if same(mean_t, IMAGENET_MEAN) and same(std_t, IMAGENET_STD):
        return "imagenet"
    if same(mean_t, IDENTITY[0]) and same(std_t, IDENTITY[1]):
        return "none"

    def text(values):
        return f"{values[0]:g}" if len(set(values)) == 1 else ",".join(f"{v:g}" for v in values)

    return f"mean={text(mean_t)} std={text(std_t)}"
