"""Model stage: torchvision VGG and ResNet by name, with ImageNet, local-file or random weights.

Every model gradviz returns takes RGB pixels in [0, 1]: ImageNet normalisation happens inside
(:class:`PixelModel`), so gradients are with respect to pixels. Parameters are frozen
(``requires_grad=False``): only input gradients are ever computed. ReLUs are made
out-of-place so that a hook sees the activation a layer really produced.
"""

from __future__ import annotations

import urllib.error
from pathlib import Path

import torch
import torchvision
from torch import nn

from gradviz.errors import GradvizError, unknown

VGG_NAMES = [f"vgg{d}{bn}" for d in (11, 13, 16, 19) for bn in ("", "_bn")]
RESNET_NAMES = [f"resnet{d}" for d in (18, 34, 50, 101, 152)]
MODEL_NAMES = VGG_NAMES + RESNET_NAMES

# torchvision's ImageNet input convention: x_net = (x - mean) / std with x in [0, 1].
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

WEIGHT_CHOICES = "'imagenet', 'random', or a path to a state-dict file (.pth)"


class PixelModel(nn.Module):
    """A network that takes RGB in [0, 1]: ``forward(x) = net((x - mean) / std)``.

    Layer names (``features.22``, ``layer3.1.conv2``) are those of ``net``.
    ``classifier_trained`` says whether the logits mean anything.

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
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))
        self.arch = arch
        self.weights = weights
        self.classifier_trained = classifier_trained

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None`` or ``"auto"``: CUDA when available, else CPU; otherwise the named device."""
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
    """Set ``inplace=False`` on every module that has the flag (ReLU, ReLU6, ...)."""
    for module in model.modules():
        if hasattr(module, "inplace") and isinstance(module.inplace, bool):
            module.inplace = False
    return model


def build_architecture(name: str, seed: int = 0) -> nn.Module:
    """An untrained torchvision network; its random initialisation is fixed by ``seed``."""
    if name not in MODEL_NAMES:
        raise unknown("model", name, MODEL_NAMES)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return torchvision.models.get_model(name, weights=None)


def _load_imagenet(name: str) -> nn.Module:
    weights = torchvision.models.get_model_weights(name).DEFAULT
    try:
        return torchvision.models.get_model(name, weights=weights)
    except (urllib.error.URLError, OSError, RuntimeError) as exc:
        raise GradvizError(
            f"could not download torchvision's ImageNet weights for {name} ({type(exc).__name__}); "
            f"offline, pass --weights PATH to a local state dict or --weights random"
        ) from exc


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise GradvizError(f"weights file not found: {path}; valid: {WEIGHT_CHOICES}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and torch errors all mean "not a readable checkpoint"
        raise GradvizError(f"weights file {path} is corrupt or not a torch state dict ({type(exc).__name__})") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise GradvizError(f"weights file {path} does not hold a state dict of tensors")
    return {k.removeprefix("module."): v.float() if v.is_floating_point() else v for k, v in state.items()}


def _load_file(net: nn.Module, name: str, path: Path) -> bool:
    """Load ``path`` into ``net``; returns whether the classifier was in the file."""
    state = _read_state_dict(path)
    features = getattr(net, "features", None)
    targets = [(net, True)] + ([(features, False)] if features is not None else [])
    for target, full in targets:
        own = target.state_dict()
        if own.keys() == state.keys() and all(own[k].shape == state[k].shape for k in own):
            target.load_state_dict(state)
            return full
    own = net.state_dict()
    missing = sorted(own.keys() - state.keys())
    wrong = sorted(k for k in own.keys() & state.keys() if own[k].shape != state[k].shape)
    detail = f"{len(missing)} keys missing (e.g. {missing[:2]})" if missing else f"shape mismatch at {wrong[:2]}"
    raise GradvizError(
        f"weights file {path} does not fit {name}: {detail}; valid: a full {name} state dict"
        + (" or a features-only one" if features is not None else "")
    )


def load_model(
    name: str,
    weights: str = "random",
    seed: int = 0,
    device: str | torch.device | None = None,
) -> PixelModel:
    """Load a torchvision VGG or ResNet by name, frozen, in eval mode, on ``device``.

    Args:
        name: one of :data:`MODEL_NAMES`.
        weights: ``"imagenet"`` (torchvision's download and cache), ``"random"`` (initialised
            with ``seed``), or a path to a state dict: a full one, or a features-only one for VGG
            (the classifier then stays random and ``classifier_trained`` is False). Files are
            read with ``weights_only=True``.
        seed: fixes the random initialisation (of everything the file does not hold).
        device: ``"auto"``/None (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:N"``.

    Returns:
        A :class:`PixelModel` taking RGB pixels in [0, 1].

    Example:
        >>> model = load_model("resnet18", "random", seed=0, device="cpu")
        >>> model.arch, model.weights, model.training, any(p.requires_grad for p in model.parameters())
        ('resnet18', 'random (seed 0)', False, False)
        >>> model(torch.rand(1, 3, 32, 32)).shape
        torch.Size([1, 1000])
    """
    dev = resolve_device(device)
    if name not in MODEL_NAMES:
        raise unknown("model", name, MODEL_NAMES)
    if weights == "imagenet":
        net, trained, desc = _load_imagenet(name), True, "imagenet (torchvision)"
    elif weights == "random":
        net, trained, desc = build_architecture(name, seed), False, f"random (seed {seed})"
    else:
        path = Path(weights).expanduser()
        if path.suffix not in {".pth", ".pt", ".bin", ".ckpt"} and not path.exists():
            raise GradvizError(f"unknown weights {weights!r}; valid: {WEIGHT_CHOICES}")
        net = build_architecture(name, seed)
        trained = _load_file(net, name, path)
        desc = str(path) + ("" if trained else f" (features only; classifier random, seed {seed})")
    make_relus_out_of_place(net)
    model = PixelModel(net, arch=name, weights=desc, classifier_trained=trained)
    model.eval().requires_grad_(False)
    check_finite_parameters(model)
    return model.to(dev)


def check_finite_parameters(model: nn.Module) -> None:
    """Refuse a model with a NaN or infinite weight or buffer, naming the first one."""
    for kind, items in (("weight", model.named_parameters()), ("buffer", model.named_buffers())):
        for name, t in items:
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                raise GradvizError(f"the model's {kind} {name} holds NaN or infinite values; valid: finite weights")


def model_device(model: nn.Module) -> torch.device:
    """The device of a model's first parameter or buffer (CPU for a model with neither)."""
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")
