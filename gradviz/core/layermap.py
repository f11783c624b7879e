"""The layer map: every layer's output shape and cumulative stride, from one probe pass.

One forward pass of a zero image of ``size`` x ``size`` pixels records, in call order, each
layer's output shape, its input shape and its *cumulative stride* ``round(size / output width)``.
Everything that needs a layer's shape or stride (the report's plan, the downsampling
comparison, the optimiser's period, the memory estimate) reads it from a :class:`LayerMap`
made once per model and size and passed along, instead of probing the model again.

A module that runs more than once in a forward pass (a ResNet block's shared ReLU) is recorded
at its last call, like :class:`~gradviz.core.taps.Taps` records it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from gradviz.core.models import model_device
from gradviz.core.taps import LOGITS, layer_root
from gradviz.errors import GradvizError

__all__ = ["PROBE_SIZE", "LayerInfo", "LayerMap", "layer_map", "layer_map_at"]

# The small image side of the map that memory estimates, the smallest valid image size and the
# optimiser's period are read from: cheap whatever size a run asks for (a memory estimate must not
# need a forward pass at the size it is asked to judge), and a multiple of every total stride
# gradviz meets (32), so that strides read from it are exact.
PROBE_SIZE = 64


@dataclass(frozen=True)
class LayerInfo:
    """One layer at the probe size: what ``gradviz layers`` prints.

    Attributes:
        name: the dotted name (``features.22``, ``layer3.1.conv2``).
        type: the module's class name.
        shape: the output shape without the batch dimension.
        stride: ``round(size / output width)`` for a 4D output, else None.
        input_shape: the first input's shape without the batch dimension (None if not a tensor).
    """

    name: str
    type: str
    shape: tuple[int, ...]
    stride: int | None
    input_shape: tuple[int, ...] | None = None

    @property
    def lowers_resolution(self) -> bool:
        """True when the output is narrower than the input (a strided layer or a pool)."""
        return (self.input_shape is not None and len(self.input_shape) == 3 and len(self.shape) == 3
                and self.shape[-1] < self.input_shape[-1])


def _is_power_of_two(n: int | None) -> bool:
    return n is not None and n > 1 and n & (n - 1) == 0


@dataclass
class LayerMap:
    """The layers of one model at one input size (see the module docstring).

    Attributes:
        size: the probe image side, in pixels.
        rows: one :class:`LayerInfo` per layer, in call order.
        activation_elements: elements of every leaf module's output for one image, each call
            counted (what a backward pass keeps; the memory estimate scales it by area).

    Example:
        >>> import torchvision
        >>> lm = layer_map(torchvision.models.resnet18(), 64)
        >>> [row.name for row in lm.stages], lm.total_stride
        (['relu', 'layer1', 'layer2', 'layer3', 'layer4'], 32)
        >>> lm.stride_of("layer2"), lm["layer2"].shape
        (8, (128, 8, 8))
    """

    size: int
    rows: list[LayerInfo]
    activation_elements: int = 0
    _by_name: dict[str, LayerInfo] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._by_name = {row.name: row for row in self.rows}

    def __getitem__(self, name: str) -> LayerInfo:
        return self._by_name[name]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def strided(self) -> list[LayerInfo]:
        """Layers with a 4D output at a power-of-two stride > 1; adaptive pools (whose stride
        depends on the input size) are left out."""
        return [r for r in self.rows
                if _is_power_of_two(r.stride) and len(r.shape) == 3 and not r.type.startswith("Adaptive")]

    @property
    def stages(self) -> list[LayerInfo]:
        """The output of every downsampling stage: for each cumulative stride 2, 4, ..., the last
        layer (in call order) at that stride among the shallowest such layers. Adaptive pools are
        skipped. VGG16: features.8, .15, .22, .29 and ``features`` (the whole block, whose output
        is features.30's: at a tie in depth the shallower name wins); ResNet: relu, layer1 .. layer4."""
        chosen: dict[int, LayerInfo] = {}
        for r in self.strided:
            best = chosen.get(r.stride)
            if best is None or r.name.count(".") <= best.name.count("."):
                chosen[r.stride] = r
        return [chosen[s] for s in sorted(chosen)]

    @property
    def total_stride(self) -> int:
        """The largest cumulative stride of any 4D layer output, adaptive pools aside (32 for VGG and ResNet)."""
        strides = [r.stride for r in self.strided]
        if not strides:
            raise GradvizError("the model has no strided 4D layer output")
        return max(strides)

    def stride_of(self, name: str) -> int | None:
        """The cumulative stride of ``name`` (the total stride for ``"logits"``); None when the
        layer has no 4D output or is not in the map."""
        if name == LOGITS:
            return self.total_stride
        row = self._by_name.get(name)
        return None if row is None else row.stride


def _shape(x) -> tuple[int, ...] | None:
    return tuple(x.shape[1:]) if isinstance(x, torch.Tensor) else None


def layer_map(model: nn.Module, size: int = 224, channels: int = 3) -> LayerMap:
    """Run one forward pass on a ``size`` x ``size`` zero image and describe every layer.

    Args:
        model: any module taking ``(B, channels, size, size)``; layer names are those of
            :func:`~gradviz.core.taps.layer_root`.
        size: the probe image side in pixels.
        channels: input channels.

    Returns:
        A :class:`LayerMap`; hooks are removed also when the forward pass fails.
    """
    root = layer_root(model)
    rows: dict[str, LayerInfo] = {}  # insertion order = order of each layer's last call
    elements = 0

    def hook_for(name: str, leaf: bool):
        def hook(module, inputs, output):
            nonlocal elements
            if not isinstance(output, torch.Tensor):
                return
            if leaf:
                elements += output.numel()
            if not name:
                return
            stride = round(size / output.shape[-1]) if output.dim() == 4 and output.shape[-1] > 0 else None
            rows.pop(name, None)
            rows[name] = LayerInfo(name, type(module).__name__, tuple(output.shape[1:]), stride,
                                   _shape(inputs[0]) if inputs else None)

        return hook

    handles = [m.register_forward_hook(hook_for(n, not list(m.children()))) for n, m in root.named_modules()]
    try:
        with torch.no_grad():
            model(torch.zeros(1, channels, size, size, device=model_device(model)))
    finally:
        for h in handles:
            h.remove()
    return LayerMap(size, list(rows.values()), elements)


def layer_map_at(model: nn.Module, size: int, known: LayerMap | None = None) -> LayerMap:
    """The layer map at ``size``: ``known`` when it already is that map, else a new probe pass.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1))
        >>> probe = layer_map(net, PROBE_SIZE)
        >>> layer_map_at(net, PROBE_SIZE, probe) is probe, layer_map_at(net, 32, probe).size
        (True, 32)
    """
    return known if known is not None and known.size == size else layer_map(model, size)
