"""Networks from a model spec: torchvision and timm by name, or a factory in the user's own file.

Each builder returns a :class:`Built`: the bare network (taking normalised input), its default
normalisation (from the weights' metadata where there is some) and what its weights are. Random
initialisations are seeded inside ``torch.random.fork_rng``, so building never moves the global
random state.
"""

from __future__ import annotations

import difflib
import importlib.util
import inspect
import sys
import urllib.error
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision
from torch import nn

from gradviz.core.specs import IMAGENET_MEAN, IMAGENET_STD, MODEL_NAMES, ModelSpec
from gradviz.errors import GradvizError, unknown

__all__ = ["Built", "build_file", "build_timm", "build_torchvision", "torchvision_names"]

Normalize = tuple[tuple[float, ...], tuple[float, ...]]


@dataclass
class Built:
    """A network before checkpoint loading and wrapping.

    Attributes:
        net: the network, taking normalised input.
        normalize: its default ``(mean, std)``.
        weights: what its weights are, for reports (``"random (seed 0)"``, ``"imagenet (torchvision)"``).
        trained: whether its classifier was trained.
    """

    net: nn.Module
    normalize: Normalize
    weights: str
    trained: bool


def torchvision_names() -> list[str]:
    """Every torchvision classification model name (``torchvision.models.list_models``).

    Example:
        >>> {"mobilenet_v3_small", "resnet18"} <= set(torchvision_names())
        True
    """
    return torchvision.models.list_models(module=torchvision.models)


def _close_first(name: str, valid: list[str]) -> list[str]:
    """The names closest to ``name`` and a count, or every name when none is close."""
    close = difflib.get_close_matches(name, valid, n=6, cutoff=0.5)
    return close + [f"... ({len(valid)} in all)"] if close else valid


def _seeded(seed: int, build):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        with warnings.catch_warnings():  # googlenet / inception_v3 warn that their default init will change
            warnings.filterwarnings("ignore", message=".*default weight initialization.*")
            return build()


def _check_classes(spec: ModelSpec, num_classes: int | None, pretrained_classes: int | None) -> None:
    if num_classes is not None and pretrained_classes is not None and num_classes != pretrained_classes:
        raise GradvizError(f"{spec.text}: imagenet weights have {pretrained_classes} classes, not num_classes="
                           f"{num_classes}; valid: weights 'random' or a checkpoint with num_classes, "
                           "or no num_classes")


def build_torchvision(spec: ModelSpec, weights: str, seed: int = 0, num_classes: int | None = None) -> Built:
    """A torchvision classification model (a short name or ``torchvision:NAME``).

    Args:
        spec: a parsed spec of kind ``"name"`` or ``"torchvision"``.
        weights: ``"imagenet"`` (the DEFAULT weights enum, downloaded and cached by torchvision) or
            anything else for a random initialisation fixed by ``seed``.
        seed: seed of the random initialisation.
        num_classes: the classifier's width (None: torchvision's default, 1000).

    Returns:
        A :class:`Built` with the weights' normalisation (imagenet for nearly all).

    Example:
        >>> from gradviz.core.specs import parse_spec
        >>> b = build_torchvision(parse_spec("torchvision:squeezenet1_1"), "random", num_classes=10)
        >>> b.weights, b.net(torch.rand(1, 3, 64, 64)).shape
        ('random (seed 0)', torch.Size([1, 10]))
    """
    name = spec.name
    valid = torchvision_names()
    if name not in valid:
        raise unknown("torchvision model", name, _close_first(name, valid))
    default = torchvision.models.get_model_weights(name).DEFAULT
    transform = default.transforms()
    normalize = (tuple(transform.mean), tuple(transform.std))
    extra = {} if num_classes is None else {"num_classes": num_classes}
    if weights != "imagenet":
        net = _seeded(seed, lambda: torchvision.models.get_model(name, weights=None, **extra))
        return Built(net, normalize, f"random (seed {seed})", False)
    _check_classes(spec, num_classes, len(default.meta.get("categories") or []) or None)
    try:
        net = torchvision.models.get_model(name, weights=default)
    except (urllib.error.URLError, OSError, RuntimeError) as exc:
        raise GradvizError(
            f"could not download torchvision's ImageNet weights for {name} ({type(exc).__name__}); "
            f"offline, pass --weights PATH to a local state dict or --weights random"
        ) from exc
    desc = "imagenet (torchvision)" if spec.kind == "name" else f"imagenet (torchvision {default})"
    return Built(net, normalize, desc, True)


def build_timm(spec: ModelSpec, weights: str, seed: int = 0, num_classes: int | None = None) -> Built:
    """A timm model (``timm:NAME``, tags such as ``resnet18.a1_in1k`` included), when timm is installed.

    Args:
        spec: a parsed spec of kind ``"timm"``.
        weights: ``"imagenet"`` (timm's pretrained weights, downloaded by timm) or anything else
            for a random initialisation fixed by ``seed``.
        seed: seed of the random initialisation.
        num_classes: the classifier's width (None: the model's default).

    Returns:
        A :class:`Built` whose normalisation is the mean and std of timm's ``pretrained_cfg``.

    Example:
        >>> from gradviz.core.specs import parse_spec
        >>> try:
        ...     b = build_timm(parse_spec("timm:test_resnet"), "random")
        ... except GradvizError as err:   # without timm: one line saying how to get it
        ...     assert "pip install timm" in str(err)
        ... else:
        ...     assert b.weights == "random (seed 0)" and len(b.normalize[0]) == 3
    """
    if importlib.util.find_spec("timm") is None:
        raise GradvizError(f"model {spec.text!r} needs timm, which is not installed; valid: pip install timm, "
                           "or a torchvision:NAME model")
    import timm  # optional and slow to import: only when a timm model is asked for

    name = spec.name
    if not timm.is_model(name):
        valid = timm.list_models()
        close = difflib.get_close_matches(name, valid, n=8, cutoff=0.5)
        raise unknown("timm model", name, close + [f"... ({len(valid)} in all: timm.list_models())"])
    extra = {} if num_classes is None else {"num_classes": num_classes}
    if weights == "imagenet":
        cfg_of = getattr(timm.models, "get_pretrained_cfg", lambda n: None)
        _check_classes(spec, num_classes, getattr(cfg_of(name), "num_classes", None))
        try:
            net = timm.create_model(name, pretrained=True, **extra)
        except Exception as exc:  # hub, network and file errors all mean "no pretrained weights here"
            raise GradvizError(f"could not get timm's pretrained weights for {name} ({type(exc).__name__}); "
                               "offline, pass --weights PATH to a local state dict or --weights random") from exc
        cfg = net.pretrained_cfg
        desc, trained = f"imagenet (timm {cfg.get('architecture', name)}.{cfg.get('tag') or ''}".rstrip(".") + ")", True
    else:
        net = _seeded(seed, lambda: timm.create_model(name, pretrained=False, **extra))
        desc, trained = f"random (seed {seed})", False
    cfg = getattr(net, "pretrained_cfg", None) or {}
    mean, std = cfg.get("mean", IMAGENET_MEAN), cfg.get("std", IMAGENET_STD)
    return Built(net, (tuple(float(v) for v in mean), tuple(float(v) for v in std)), desc, trained)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _import_file(path: Path):
    """Import ``path`` under a unique module name, with its folder on ``sys.path`` meanwhile."""
    name = f"gradviz_user_model_{uuid.uuid4().hex[:12]}"
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise GradvizError(f"model file {path} cannot be imported; valid: a Python source file")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # dataclasses and pickling look the module up by name
    folder = str(path.resolve().parent)
    sys.path.insert(0, folder)
    try:
        module_spec.loader.exec_module(module)
    except BaseException as exc:
        del sys.modules[name]
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise GradvizError(f"importing model file {path} failed ({_first_line(exc)}); "
                           "valid: a Python file that imports cleanly") from exc
    finally:
        if folder in sys.path:
            sys.path.remove(folder)
    return module


def build_file(spec: ModelSpec, weights: str, seed: int = 0, num_classes: int | None = None) -> Built:
    """The network that a function in the user's Python file returns (``path/to/file.py:factory``).

    The file is imported under a unique module name (its folder is on ``sys.path`` while it is
    imported, so it may import its neighbours); ``factory()`` is called with no arguments (with
    ``num_classes=`` when asked for and the factory takes it) while torch's random generator is
    seeded with ``seed``, so a randomly initialised model is the same every run.

    Args:
        spec: a parsed spec of kind ``"file"``.
        weights: ``"random"`` (the model as the factory builds it) or a checkpoint path (loaded
            afterwards by the caller); ``"imagenet"`` is refused: the factory decides its weights.
        seed: seed of torch's random generator while the factory runs.
        num_classes: passed to the factory as ``num_classes=`` (it must accept it).

    Returns:
        A :class:`Built` with ImageNet normalisation.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = (folder / "net.py").write_text("import torch\\ndef build():\\n    return torch.nn.Conv2d(3, 4, 3)\\n")
        >>> from gradviz.core.specs import parse_spec
        >>> b = build_file(parse_spec(f"{folder}/net.py:build"), "random")
        >>> type(b.net).__name__, b.weights
        ('Conv2d', 'build() in net.py (seed 0)')
    """
    path, factory_name = spec.path, spec.name
    if weights == "imagenet":
        raise GradvizError(f"model {spec.text!r} has no imagenet weights (its factory decides them); "
                           "valid: weights 'random' (the model as the factory builds it) or a checkpoint path")
    if not path.is_file():
        raise GradvizError(f"model file {path} not found; valid: path/to/file.py:factory with an existing file")
    module = _import_file(path)
    factory = getattr(module, factory_name, None)
    if not callable(factory):
        defined = [n for n, v in vars(module).items() if inspect.isfunction(v) and v.__module__ == module.__name__
                   and not n.startswith("_")]
        what = "has no function" if factory is None else "has a non-callable"
        raise GradvizError(f"model file {path} {what} {factory_name!r}; valid: "
                           + (", ".join(defined) if defined else "a function defined there (none is)"))
    kwargs = {}
    if num_classes is not None:
        try:
            params = inspect.signature(factory).parameters
        except (TypeError, ValueError):
            params = {}
        if "num_classes" not in params and not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            raise GradvizError(f"{factory_name}() in {path.name} takes no num_classes argument; valid: no "
                               f"num_classes, or a factory with a num_classes parameter")
        kwargs["num_classes"] = num_classes
    try:
        net = _seeded(seed, lambda: factory(**kwargs))
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise GradvizError(f"{factory_name}() in {path} raised {_first_line(exc)}; "
                           "valid: a factory that returns an nn.Module when called with no arguments") from exc
    if not isinstance(net, nn.Module):
        raise GradvizError(f"{factory_name}() in {path} returned {type(net).__name__}, not a torch.nn.Module; "
                           "valid: a factory returning an nn.Module")
    return Built(net, (IMAGENET_MEAN, IMAGENET_STD), f"{factory_name}() in {path.name} (seed {seed})", True)


def suggest_prefix(spec_text: str) -> str | None:
    """``torchvision:NAME`` when ``spec_text`` is a bare torchvision name that is not a short name.

    Example:
        >>> suggest_prefix("mobilenet_v3_small"), suggest_prefix("resnet18"), suggest_prefix("nope")
        ('torchvision:mobilenet_v3_small', None, None)
    """
    text = spec_text.strip() if isinstance(spec_text, str) else ""
    if text in MODEL_NAMES or text not in torchvision_names():
        return None
    return f"torchvision:{text}"
