"""Taps stage: hook layers by dotted name or module reference and capture their outputs.

``Taps`` is a context manager: hooks exist only inside ``with`` and are removed on exit, also
when an exception is raised; the ``inplace`` flags it turns off for the duration are restored.

The virtual layer name ``"logits"`` stands for the model's output. With ``stop=True`` the
forward pass ends as soon as every tapped layer has produced its output, so nothing deeper
than the deepest layer an objective needs is computed.

A module that runs more than once in a forward pass (a ResNet block's shared ReLU) keeps
its last output; tap the block or the convolution instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn

from gradviz.core.models import PixelModel
from gradviz.errors import GradvizError, unknown

LOGITS = "logits"


class _StopForward(Exception):
    """Raised from a hook once every tapped layer has its output."""


def layer_root(model: nn.Module) -> nn.Module:
    """The module whose dotted names are the layer names: a :class:`~gradviz.core.models.PixelModel`'s
    ``net``, any other model itself."""
    return model.net if isinstance(model, PixelModel) else model


def layer_names(model: nn.Module) -> list[str]:
    """Every tappable name: the dotted names of ``named_modules()`` plus ``"logits"``."""
    return [name for name, _ in layer_root(model).named_modules() if name] + [LOGITS]


def resolve_layer(model: nn.Module, layer: str | nn.Module) -> tuple[str, nn.Module | None]:
    """``(name, module)`` for a dotted name or a module reference; ``("logits", None)`` for the output.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
        >>> resolve_layer(net, net[1])[0], resolve_layer(net, "0")[1] is net[0], resolve_layer(net, "logits")
        ('1', True, ('logits', None))
        >>> resolve_layer(net, "2")
        Traceback (most recent call last):
        ...
        gradviz.errors.GradvizError: unknown layer '2'; valid: 0, 1, logits
    """
    root = layer_root(model)
    if isinstance(layer, nn.Module):
        for name, module in root.named_modules():
            if module is layer and name:
                return name, module
        raise GradvizError(f"module {type(layer).__name__} is not a layer of this model")
    if layer == LOGITS:
        return LOGITS, None
    modules = dict(root.named_modules())
    if layer not in modules or not layer:
        raise unknown("layer", layer, layer_names(model))
    return layer, modules[layer]


class Taps:
    """Capture the outputs of ``layers`` during forward passes of ``model``.

    Args:
        model: any module; layer names are those of :func:`layer_root`.
        layers: dotted names, module references, or ``"logits"`` (the model's output).
        stop: end the forward pass once every tapped layer has its output (ignored with ``"logits"``).

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2), nn.ReLU(inplace=True), nn.Conv2d(4, 2, 3))
        >>> with Taps(net, ["0", net[1]], stop=True) as taps:
        ...     acts = taps.forward(torch.randn(2, 3, 9, 9))
        >>> {name: tuple(a.shape) for name, a in acts.items()}
        {'0': (2, 4, 4, 4), '1': (2, 4, 4, 4)}
        >>> bool((acts["0"] < 0).any()), net[1].inplace, hook_count(net)   # pre-ReLU values kept; all restored
        (True, True, 0)
    """

    def __init__(self, model: nn.Module, layers: Iterable[str | nn.Module], stop: bool = False):
        self.model = model
        resolved = [resolve_layer(model, layer) for layer in layers]
        self.names = list(dict.fromkeys(name for name, _ in resolved))
        self._modules = {name: module for name, module in resolved if module is not None}
        self.stop = stop and LOGITS not in self.names
        self.activations: dict[str, torch.Tensor] = {}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._inplace: list[tuple[nn.Module, bool]] = []

    def __enter__(self) -> Taps:
        for module in self.model.modules():
            if isinstance(getattr(module, "inplace", None), bool) and module.inplace:
                self._inplace.append((module, True))
                module.inplace = False
        try:
            for name, module in self._modules.items():
                self._handles.append(module.register_forward_hook(self._hook(name)))
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        for module, flag in self._inplace:
            module.inplace = flag
        self._inplace.clear()

    def _hook(self, name: str):
        def hook(module: nn.Module, inputs, output) -> None:
            self.activations[name] = output
            if self.stop and all(n in self.activations for n in self.names):
                raise _StopForward

        return hook

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Run the model on ``x`` and return ``{layer name: output}`` for the tapped layers."""
        if not self._handles and self._modules:
            raise RuntimeError("Taps.forward must be called inside a `with Taps(...)` block")
        self.activations = {}
        try:
            out = self.model(x)
        except _StopForward:
            out = None
        if LOGITS in self.names:
            self.activations[LOGITS] = out
        return dict(self.activations)


def hook_count(model: nn.Module) -> int:
    """Forward hooks registered on ``model`` and its children (0 after every gradviz call)."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def check_layers_exist(model: nn.Module, layers: Sequence[str]) -> None:
    """Raise a one-line error for the first name that is not a layer of ``model``."""
    for layer in layers:
        resolve_layer(model, layer)
