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
from dataclasses import dataclass

import torch
from torch import nn

from gradviz.errors import GradvizError, unknown

LOGITS = "logits"


class _StopForward(Exception):
    """Raised from a hook once every tapped layer has its output."""


def _root(model: nn.Module) -> nn.Module:
    """Layer names are relative to a :class:`~gradviz.models.PixelModel`'s ``net``."""
    from gradviz.models import PixelModel

    return model.net if isinstance(model, PixelModel) else model


def layer_names(model: nn.Module) -> list[str]:
    """Every tappable name: the dotted names of ``named_modules()`` plus ``"logits"``."""
    return [name for name, _ in _root(model).named_modules() if name] + [LOGITS]


def resolve_layer(model: nn.Module, layer: str | nn.Module) -> tuple[str, nn.Module | None]:
    """``(name, module)`` for a dotted name or a module reference; ``("logits", None)`` for the output."""
    root = _root(model)
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

    >>> with Taps(model, ["features.22", "logits"]) as taps:
    ...     acts = taps.forward(x)          # {"features.22": tensor, "logits": tensor}
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


@dataclass
class LayerInfo:
    """One row of ``gradviz layers``: the output shape at the probe size and the cumulative stride."""

    name: str
    type: str
    shape: tuple[int, ...]
    stride: int | None  # input size / output size, for 4D outputs


def layer_table(model: nn.Module, size: int = 224, channels: int = 3) -> list[LayerInfo]:
    """Run one forward pass on a ``size`` x ``size`` zero image and describe every layer, in call order."""
    from gradviz.models import model_device

    root = _root(model)
    rows: dict[str, LayerInfo] = {}
    order: list[str] = []

    def hook_for(name: str):
        def hook(module, inputs, output):
            if not isinstance(output, torch.Tensor):
                return
            shape = tuple(output.shape[1:])
            stride = None
            if output.dim() == 4 and output.shape[-1] > 0:
                stride = round(size / output.shape[-1])
            if name in rows:
                order.remove(name)
            rows[name] = LayerInfo(name, type(module).__name__, shape, stride)
            order.append(name)

        return hook

    handles = [m.register_forward_hook(hook_for(n)) for n, m in root.named_modules() if n]
    try:
        with torch.no_grad():
            model(torch.zeros(1, channels, size, size, device=model_device(model)))
    finally:
        for h in handles:
            h.remove()
    return [rows[n] for n in order]


def _is_power_of_two(n: int | None) -> bool:
    return n is not None and n > 1 and n & (n - 1) == 0


def _strided_rows(model: nn.Module, size: int) -> list[LayerInfo]:
    """Layers with a 4D output at a power-of-two stride > 1; adaptive pools (whose stride depends
    on the input size) are left out."""
    return [
        r
        for r in layer_table(model, size)
        if _is_power_of_two(r.stride) and len(r.shape) == 3 and not r.type.startswith("Adaptive")
    ]


def downsampling_stages(model: nn.Module, size: int = 224) -> list[LayerInfo]:
    """The output of every downsampling stage: for each cumulative stride 2, 4, ..., the last
    layer (in call order) at that stride among the shallowest such layers. Adaptive pools are
    skipped. VGG16: features.8, .15, .22, .29, .30; ResNet: relu, layer1 .. layer4.
    """
    rows = _strided_rows(model, size)
    chosen: dict[int, LayerInfo] = {}
    for r in rows:
        best = chosen.get(r.stride)
        if best is None or r.name.count(".") <= best.name.count("."):
            chosen[r.stride] = r
    return [chosen[s] for s in sorted(chosen)]


def total_stride(model: nn.Module, size: int = 224) -> int:
    """The largest cumulative stride of any 4D layer output, adaptive pools aside (32 for VGG and ResNet)."""
    strides = [r.stride for r in _strided_rows(model, size)]
    if not strides:
        raise GradvizError("the model has no strided 4D layer output")
    return max(strides)


def check_layers_exist(model: nn.Module, layers: Sequence[str]) -> None:
    """Raise a one-line error for the first name that is not a layer of ``model``."""
    for layer in layers:
        resolve_layer(model, layer)
