"""Model stage: any classification network as a frozen model on RGB pixels in [0, 1].

:func:`load_model` takes a spec (a short name, ``torchvision:NAME``, ``timm:NAME`` or
``path/to/file.py:factory``, see :mod:`~gradviz.core.specs`) and ImageNet, checkpoint or random
weights (:mod:`~gradviz.core.checkpoints`). Every model gradviz returns takes RGB pixels in
[0, 1]: normalisation happens inside (:class:`PixelModel`), so gradients are with respect to
pixels. Parameters are frozen (``requires_grad=False``): only input gradients are ever computed.
ReLUs are made out-of-place so that a hook sees the activation a layer really produced.
:func:`as_pixel_model` wraps a user's own module instead, changing nothing in it, and
:func:`eval_mode` measures a model in eval mode and restores its mode afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from gradviz.core.architectures import Built, build_file, build_timm, build_torchvision, suggest_prefix
from gradviz.core.checkpoints import load_checkpoint, read_checkpoint
from gradviz.core.specs import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    MODEL_NAMES,
    MODEL_SPECS_HELP,
    RESNET_NAMES,
    VGG_NAMES,
    WEIGHT_CHOICES,
    describe_normalize,
    parse_normalize,
    parse_spec,
)
from gradviz.errors import GradvizError, unknown

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "MODEL_NAMES", "MODEL_SPECS_HELP", "RESNET_NAMES", "VGG_NAMES",
           "WEIGHT_CHOICES", "PixelModel", "as_pixel_model", "build_architecture", "check_finite_parameters",
           "eval_mode", "load_model", "make_relus_out_of_place", "model_device", "parse_normalize",
           "resolve_device"]

CHECKPOINT_SUFFIXES = {".pth", ".pt", ".bin", ".ckpt", ".tar"}
BUILDERS = {"name": build_torchvision, "torchvision": build_torchvision, "timm": build_timm, "file": build_file}


class PixelModel(nn.Module):
    """A network that takes RGB in [0, 1]: ``forward(x) = net((x - mean) / std)``.

    Layer names (``features.22``, ``layer3.1.conv2``) are those of ``net``.
    ``classifier_trained`` says whether the logits mean anything; ``normalize`` names the
    normalisation (``"imagenet"``, ``"none"``, ``"mean=0.5 std=0.5"``) for reports.
    The wrapper starts in ``net``'s mode (train or eval).

    Args:
        net: the network, taking normalised input.
        mean, std: per-channel normalisation (ImageNet's by default).
        arch, weights: names that reports print.
        classifier_trained: whether the logits were trained.

    Shape:
        ``(B, C, H, W)`` pixels in [0, 1] -> whatever ``net`` returns.

    Example:
        >>> net = nn.Conv2d(3, 1, 1, bias=False).requires_grad_(False)
        >>> _ = net.weight.fill_(1.0)
        >>> model = PixelModel(net, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
        >>> model(torch.ones(1, 3, 1, 1)).item()   # 3 channels of (1 - 0.5) / 0.5
        3.0
        >>> model.normalize
        'mean=0.5 std=0.5'
    """

    def __init__(
        self,
        net: nn.Module,
        mean: tuple[float, ...] = IMAGENET_MEAN,
        std: tuple[float, ...] = IMAGENET_STD,
        arch: str = "custom",
        weights: str = "custom",
        classifier_trained: bool = True,
    ):
        super().__init__()
        self.net = net
        dev = model_device(net)
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32, device=dev).view(1, -1, 1, 1))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32, device=dev).view(1, -1, 1, 1))
        self.arch = arch
        self.weights = weights
        self.classifier_trained = classifier_trained
        try:
            self.normalize = describe_normalize(self.mean.flatten().tolist(), self.std.flatten().tolist())
        except GradvizError:  # not 1 or 3 channels: name the values
            self.normalize = f"mean={self.mean.flatten().tolist()} std={self.std.flatten().tolist()}"
        self.training = net.training

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)

    def extra_repr(self) -> str:
        return f"arch={self.arch!r}, weights={self.weights!r}, normalize={self.normalize!r}"


def as_pixel_model(module: nn.Module, normalize: str | tuple | None = None) -> PixelModel:
    """Wrap a user's network so that it takes RGB pixels in [0, 1], changing nothing in it.

    The network is not copied, and its parameters' ``requires_grad`` and its mode (train or
    eval) are left as they are: input gradients never need parameter gradients, and
    :func:`eval_mode` switches the mode only while measuring.

    Args:
        module: any ``nn.Module`` taking normalised ``(B, 3, H, W)`` input, or a :class:`PixelModel`.
        normalize: ``"imagenet"``, ``"none"``, ``"MEAN,STD"`` text or a ``(mean, std)`` pair
            (:func:`~gradviz.core.specs.parse_normalize`). None: a :class:`PixelModel` is returned
            unchanged, a plain module gets ImageNet's normalisation. Given for a :class:`PixelModel`,
            its network is re-wrapped with the new normalisation.

    Returns:
        A :class:`PixelModel` around ``module`` (``arch`` is the module's class name).

    Example:
        >>> net = nn.Conv2d(3, 2, 1)
        >>> model = as_pixel_model(net, "0.5,0.25")
        >>> model.net is net, model.arch, model.normalize, net.weight.requires_grad
        (True, 'Conv2d', 'mean=0.5 std=0.25', True)
        >>> x = torch.rand(1, 3, 4, 4)
        >>> torch.equal(model(x), net((x - 0.5) / 0.25)), as_pixel_model(model) is model
        (True, True)
    """
    if isinstance(module, PixelModel):
        if normalize is None:
            return module
        mean, std = parse_normalize(normalize)
        return PixelModel(module.net, mean, std, arch=module.arch, weights=module.weights,
                          classifier_trained=module.classifier_trained)
    if not isinstance(module, nn.Module):
        raise GradvizError(f"expected a torch.nn.Module, got {type(module).__name__}; valid: an nn.Module, or "
                           f"a model spec for load_model ({MODEL_SPECS_HELP})")
    mean, std = parse_normalize(normalize)
    return PixelModel(module, mean, std, arch=type(module).__name__, weights="custom")


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[bool]:
    """Put ``model`` in eval mode for the duration, then give every submodule its own mode back.

    Measuring in train mode would be wrong: BatchNorm would mix the images of a batch and dropout
    would be random. Modes are restored module by module (a model with some modules frozen in
    eval mode keeps them so), also when the body raises.

    Args:
        model: any ``nn.Module``.

    Returns:
        A context manager yielding whether any module was in train mode (so callers can add a note).

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3)).train()
        >>> with eval_mode(net) as was_training:
        ...     was_training, net.training, net[1].training
        (True, False, False)
        >>> net.training, net[1].training
        (True, True)
    """
    modes = [(m, m.training) for m in model.modules()]
    was_training = any(flag for _, flag in modes)
    model.eval()
    try:
        yield was_training
    finally:
        for m, flag in modes:
            m.training = flag


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None`` or ``"auto"``: CUDA when available, else CPU; otherwise the named device.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise GradvizError(f"unknown device {device!r}; valid: auto, cpu, cuda, cuda:N") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise GradvizError(f"device {device!r} asked for but CUDA is not available; valid here: auto, cpu")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise GradvizError(f"device {device!r} does not exist; valid here: auto, cpu, cuda:0 .. "
                           f"cuda:{torch.cuda.device_count() - 1}")
    if dev.type not in ("cpu", "cuda"):
        raise GradvizError(f"device {device!r} is not supported; valid: auto, cpu, cuda, cuda:N")
    return dev


def make_relus_out_of_place(model: nn.Module) -> nn.Module:
    """Set ``inplace=False`` on every module that has the flag (ReLU, ReLU6, SiLU, ...)."""
    for module in model.modules():
        if hasattr(module, "inplace") and isinstance(module.inplace, bool):
            module.inplace = False
    return model


def build_architecture(name: str, seed: int = 0, num_classes: int | None = None) -> nn.Module:
    """An untrained torchvision network by short name; its random initialisation is fixed by ``seed``.

    Args:
        name: one of :data:`MODEL_NAMES`.
        seed: seed of the initialisation (torch's global generator is left as it was).
        num_classes: the classifier's width (None: 1000).

    Returns:
        The bare torchvision network (taking ImageNet-normalised input).

    Example:
        >>> build_architecture("resnet18", seed=1, num_classes=10).fc.out_features
        10
    """
    if name not in MODEL_NAMES:
        raise unknown("model", name, MODEL_NAMES)
    return build_torchvision(parse_spec(name), "random", seed, num_classes).net


def _weights_path(weights: str | Path) -> Path | None:
    """None for ``imagenet`` and ``random``, else the checkpoint path (which must exist)."""
    if not isinstance(weights, (str, Path)):
        raise GradvizError(f"weights must be text or a path, got {type(weights).__name__}; valid: {WEIGHT_CHOICES}")
    if weights in ("imagenet", "random"):
        return None
    path = Path(weights).expanduser()
    if path.suffix not in CHECKPOINT_SUFFIXES and not path.exists():
        raise GradvizError(f"unknown weights {str(weights)!r}; valid: {WEIGHT_CHOICES}")
    if not path.is_file():
        raise GradvizError(f"weights file not found: {path}; valid: {WEIGHT_CHOICES}")
    return path


def _parse(spec: str):
    try:
        return parse_spec(spec)
    except GradvizError as exc:
        hint = suggest_prefix(spec)
        if hint is None:
            raise
        raise GradvizError(f"{exc}; did you mean {hint}?") from exc


def load_model(
    spec: str,
    weights: str = "random",
    seed: int = 0,
    device: str | torch.device | None = None,
    *,
    num_classes: int | None = None,
    normalize: str | tuple | None = None,
) -> PixelModel:
    """Load a network from a model spec, frozen, in eval mode, on ``device``, taking pixels in [0, 1].

    Args:
        spec: one of :data:`MODEL_NAMES` (torchvision VGG and ResNet), ``torchvision:NAME`` (any
            torchvision classification model), ``timm:NAME`` (when timm is installed) or
            ``path/to/file.py:factory`` (a function returning an ``nn.Module``, called with no arguments).
        weights: ``"imagenet"`` (torchvision's DEFAULT weights or timm's pretrained ones,
            downloaded and cached; not for file models), ``"random"`` (initialised with ``seed``;
            for a file model: as its factory builds it), or a checkpoint path: a state dict, plain or
            under ``"state_dict"``/``"model"``/``"model_state_dict"``, ``module.`` prefixes
            stripped, read with ``weights_only=True``; a features-only one is accepted where the
            network has ``features`` (VGG): the classifier then stays random and
            ``classifier_trained`` is False.
        seed: fixes the random initialisation (of everything the file does not hold).
        device: ``"auto"``/None (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
        num_classes: the classifier's width, for fine-tuned checkpoints (None: the default, 1000).
            A file model's factory gets it as ``num_classes=``.
        normalize: None (the weights' own: ImageNet's for the short names, torchvision's weights
            metadata, timm's ``pretrained_cfg``, ImageNet's for file models), ``"imagenet"``,
            ``"none"``, ``"MEAN,STD"`` text or a ``(mean, std)`` pair (:func:`parse_normalize`).

    Returns:
        A :class:`PixelModel` taking RGB pixels in [0, 1]; ``arch`` is the spec, ``weights`` and
        ``normalize`` describe the weights and the normalisation.

    Example:
        >>> model = load_model("resnet18", "random", seed=0, device="cpu")
        >>> model.arch, model.weights, model.training, any(p.requires_grad for p in model.parameters())
        ('resnet18', 'random (seed 0)', False, False)
        >>> model(torch.rand(1, 3, 32, 32)).shape
        torch.Size([1, 1000])
        >>> model = load_model("torchvision:squeezenet1_1", num_classes=10, normalize="none", device="cpu")
        >>> model.arch, model.normalize, model(torch.rand(1, 3, 64, 64)).shape
        ('torchvision:squeezenet1_1', 'none', torch.Size([1, 10]))
    """
    dev = resolve_device(device)
    parsed = _parse(spec)
    norm = None if normalize is None else parse_normalize(normalize)
    if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, int)
                                    or num_classes < 1):
        raise GradvizError(f"num_classes must be a whole number >= 1, got {num_classes!r}")
    path = _weights_path(weights)
    state = None if path is None else read_checkpoint(path)  # a bad file is refused before anything is built
    built: Built = BUILDERS[parsed.kind](parsed, "imagenet" if weights == "imagenet" else "random", seed, num_classes)
    net, default_norm, desc, trained = built.net, built.normalize, built.weights, built.trained
    if isinstance(net, PixelModel):  # a factory that wraps its own network: keep its normalisation
        default_norm = (tuple(net.mean.flatten().tolist()), tuple(net.std.flatten().tolist()))
        net = net.net
    if path is not None:
        trained = load_checkpoint(net, parsed.text, path, state)
        desc = str(path) + ("" if trained else f" (features only; classifier random, seed {seed})")
    make_relus_out_of_place(net)
    mean, std = norm if norm is not None else default_norm
    model = PixelModel(net, mean, std, arch=parsed.text, weights=desc, classifier_trained=trained)
    model.eval().requires_grad_(False)
    check_finite_parameters(model)
    return model.to(dev)


def check_finite_parameters(model: nn.Module) -> None:
    """Refuse a model with a NaN or infinite weight or buffer, naming the first one.

    Example:
        >>> check_finite_parameters(nn.Linear(2, 2))   # nothing to say
    """
    for kind, items in (("weight", model.named_parameters()), ("buffer", model.named_buffers())):
        for name, t in items:
            # min and max are NaN when any value is, infinite when any value is: one pass, no mask made
            if t.is_floating_point() and t.numel() and not all(bool(torch.isfinite(v)) for v in t.detach().aminmax()):
                raise GradvizError(f"the model's {kind} {name} holds NaN or infinite values; valid: finite weights")


def model_device(model: nn.Module) -> torch.device:
    """The device of a model's first parameter or buffer (CPU for a model with neither).

    Example:
        >>> model_device(nn.Linear(2, 2))
        device(type='cpu')
    """
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")
