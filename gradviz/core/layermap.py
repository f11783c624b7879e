"""The layer map: every layer's output shape and cumulative stride, from two probe passes.

A forward pass of a zero image of ``size`` x ``size`` pixels records, in call order, each layer's
output and input shapes. A second pass at ``size + STRIDE_STEP`` pixels gives each *cumulative
stride* exactly: an output that grows by ``d`` pixels when the input grows by ``STRIDE_STEP`` has
stride ``STRIDE_STEP / d``. This holds for any chain of convolutions and pools, padded or not
(``(in + 2p - k) // s + 1`` grows by one when ``in`` grows by ``s``), where ``round(size / width)``
does not: Inception's unpadded stem at 75 px gives widths 35, 15, 7, 3, 1, that is 2, 5, 11, 25, 75
by the ratio and 2, 4, 8, 16, 32 by the growth; AlexNet at 224 px 4, 8, 17, 37 against 4, 8, 16, 32.
A feature map is an output with two adjacent, equal dimensions that grow together (height and width,
channels first, or channels last as in Swin's blocks). An output that does not grow (a global or
adaptive pool and what follows it: squeeze-excitation gates, a head's norm) or grows otherwise
(tokens, attention) has no stride. A model that takes one input size only (ViT, MaxViT) fails the
second pass; its strides are then ``round(size / width)`` of square channels-first outputs.

The *stages* are where the cumulative stride grows: per stride from 2 up to below the image size, the
last layer (in call order) among the shallowest layers at that stride. A period of the whole image or
more is no stage (every frequency bin is on its lattice: lattice = null = 1); there is no floor on the
output size, as ResNet's layer4 is 2x2 at the 64 px probe, and the 1x1 outputs a floor would skip
have no stride. VGG and ResNet stages, strides and activation counts are those of the single-pass map
this replaced (which read ``round(size / width)`` and kept powers of two), except that at 32 px their
1x1 stride-32 stage is left out. timm's ``feature_info`` names nearly the same layers for timm models;
it is not needed, the probe measures their strides the same way.

Everything that needs a layer's shape or stride (the report's plan, the downsampling comparison, the
optimiser's period, the memory estimate) reads it from a :class:`LayerMap` made once per model and
size and passed along, instead of probing the model again. A module that runs more than once in a
forward pass (a ResNet block's shared ReLU) is recorded at its last call, like
:class:`~gradviz.core.taps.Taps` records it. The probes run in eval mode (each module's mode is
restored after), so that BatchNorm statistics are left as they were.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from gradviz.core.models import model_device
from gradviz.core.taps import LOGITS, layer_root
from gradviz.errors import GradvizError

__all__ = ["PROBE_SIZE", "STRIDE_STEP", "LayerInfo", "LayerMap", "layer_map", "layer_map_at", "probe_map"]

# The small image side of the map that memory estimates, the smallest valid image size and the
# optimiser's period are read from: cheap whatever size a run asks for (a memory estimate must not
# need a forward pass at the size it is asked to judge), and larger than the total stride (32) of
# every torchvision classifier, so that its last stage is in the map.
PROBE_SIZE = 64

# How much larger the second probe pass is: strides that divide it (1, 2, 4, ... 64) are exact.
STRIDE_STEP = 64


@dataclass(frozen=True)
class LayerInfo:
    """One layer at the probe size: what ``gradviz layers`` prints.

    Attributes:
        name: the dotted name (``features.22``, ``layer3.1.conv2``).
        type: the module's class name.
        shape: the output shape without the batch dimension.
        stride: the cumulative stride of a 4D output (see the module docstring); None for an
            output of another rank or one whose size does not follow the input's (a global pool).
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
        >>> lm.stride_of("layer2"), lm["layer2"].shape, lm["avgpool"].stride
        (8, (128, 8, 8), None)
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

    def for_images(self, size: int) -> LayerMap:
        """This map's layers and strides, its stages chosen for images of ``size`` px (strides below it).

        A planning map: no forward pass at ``size``. A stride does not depend on the input size in a
        network whose feature maps follow it (checked for every torchvision architecture by
        ``tests/test_any_architecture.py``); the shapes stay those at the probe size.

        Example:
            >>> import torchvision
            >>> probe = layer_map(torchvision.models.resnet18(), 64)
            >>> [row.name for row in probe.for_images(32).stages]      # layer4's period, 32, is the whole image
            ['relu', 'layer1', 'layer2', 'layer3']
        """
        return LayerMap(size, self.rows, self.activation_elements)

    @property
    def strided(self) -> list[LayerInfo]:
        """Layers with a 4D output at a cumulative stride from 2 up to below the image size;
        adaptive pools (whose stride depends on the input size) are left out."""
        return [r for r in self.rows
                if r.stride is not None and 2 <= r.stride < self.size and not r.type.startswith("Adaptive")]

    @property
    def stages(self) -> list[LayerInfo]:
        """The output of every downsampling stage: for each cumulative stride of :attr:`strided`
        (2, 4, ..., below the image size), the last layer in call order among the shallowest
        layers at that stride. VGG16: features.8, .15, .22, .29 and ``features`` (the whole block,
        whose output is features.30's: at a tie in depth the later layer wins); ResNet: relu,
        layer1 .. layer4; MobileNet and EfficientNet: blocks of ``features``, then ``features``.
        At 32 px the 1x1 output of a stride-32 network is left out (its period is the whole image)."""
        chosen: dict[int, LayerInfo] = {}
        for r in self.strided:
            best = chosen.get(r.stride)
            if best is None or r.name.count(".") <= best.name.count("."):
                chosen[r.stride] = r
        return [chosen[s] for s in sorted(chosen)]

    @property
    def total_stride(self) -> int:
        """The largest stage stride (32 for VGG and ResNet from 64 px up): the logits' period."""
        stages = self.stages
        if not stages:
            raise GradvizError(f"the model has no downsampling stage at {self.size} px (no 4D layer output at a "
                               f"cumulative stride from 2 to {self.size - 1}); valid: a strided CNN, or larger images")
        return stages[-1].stride

    def stride_of(self, name: str) -> int | None:
        """The cumulative stride of ``name`` (the total stride for ``"logits"``); None when the
        layer has no 4D output, its output does not follow the input size, or it is not in the map."""
        if name == LOGITS:
            return self.total_stride
        row = self._by_name.get(name)
        return None if row is None else row.stride

    def period(self, name: str) -> int:
        """The period to measure ``name``'s input gradient at: its cumulative stride, checked.

        Args:
            name: a layer name, or ``"logits"`` (the total stride).

        Returns:
            The stride, smaller than the image.

        Raises:
            GradvizError: (one line) the layer did not run, has no 4D output, has no stride (it
                follows a global pool) or its stride is not smaller than the image.

        Example:
            >>> import torchvision
            >>> lm = layer_map(torchvision.models.resnet18(), 32)
            >>> lm.period("layer3"), lm.period("logits")
            (16, 16)
            >>> lm.period("layer4")
            Traceback (most recent call last):
            ...
            gradviz.errors.GradvizError: layer layer4 has period 32, not smaller than the image (32 px); valid: a shallower layer (relu, layer1, layer2, layer3) or larger images
        """
        if name == LOGITS:
            return self.total_stride
        row = self._by_name.get(name)
        if row is None:
            raise GradvizError(f"layer {name} did not run in the forward pass; valid: a layer the model calls")
        stages = ", ".join(r.name for r in self.stages)
        if row.stride is None and len(row.shape) != 3:
            raise GradvizError(f"layer {name} outputs shape {row.shape}, not a 4D feature map; valid: a "
                               f"convolutional layer (the stages: {stages})")
        if row.stride is None:
            raise GradvizError(f"layer {name}'s output {row.shape} does not follow the input size (it comes after a "
                               f"global or adaptive pool), so it has no period; valid: a layer before the pooling ({stages})")
        if row.stride >= self.size:
            raise GradvizError(f"layer {name} has period {row.stride}, not smaller than the image ({self.size} px); "
                               f"valid: a shallower layer ({stages}) or larger images")
        return row.stride


def _shape(x) -> tuple[int, ...] | None:
    return tuple(x.shape[1:]) if isinstance(x, torch.Tensor) else None


def _stride(shape: tuple[int, ...], grown: tuple[int, ...] | None, size: int) -> int | None:
    """A 4D output's cumulative stride from its shape at ``size`` and at ``size + STRIDE_STEP``.

    A feature map has two adjacent square dimensions (height and width; channels first or last)
    that grow together with the input, by at most ``STRIDE_STEP``: a global pool's output does
    not grow, a token tensor grows in one dimension, an attention map by more.
    """
    if len(shape) != 3 or min(shape) < 1:
        return None
    if grown is None:  # no second pass: channels first
        return round(size / shape[-1]) if shape[-2] == shape[-1] else None
    dims = [d for d in range(3) if grown[d] != shape[d]]
    if len(dims) != 2 or dims[1] != dims[0] + 1 or shape[dims[0]] != shape[dims[1]] or grown[dims[0]] != grown[dims[1]]:
        return None
    step = grown[dims[1]] - shape[dims[1]]
    return round(STRIDE_STEP / step) if 0 < step <= STRIDE_STEP else None


def _probe(model: nn.Module, size: int, channels: int) -> tuple[dict[str, tuple[str, tuple, tuple | None]], int]:
    """One forward pass: ``{name: (type, output shape, input shape)}`` in order of last call, and the
    elements of every leaf output."""
    rows: dict[str, tuple[str, tuple, tuple | None]] = {}
    elements = 0

    def hook_for(name: str, leaf: bool):
        def hook(module, inputs, output):
            nonlocal elements
            if not isinstance(output, torch.Tensor):
                return
            if leaf:
                elements += output.numel()
            if name:
                rows.pop(name, None)
                rows[name] = (type(module).__name__, tuple(output.shape[1:]), _shape(inputs[0]) if inputs else None)

        return hook

    modes = [(m, m.training) for m in model.modules()]
    handles = [m.register_forward_hook(hook_for(n, not list(m.children()))) for n, m in layer_root(model).named_modules()]
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, channels, size, size, device=model_device(model)))
    finally:
        for h in handles:
            h.remove()
        for m, mode in modes:
            m.training = mode
    return rows, elements


def layer_map(model: nn.Module, size: int = 224, channels: int = 3) -> LayerMap:
    """Probe ``model`` on zero images of ``size`` and ``size + STRIDE_STEP`` px and describe every layer.

    Args:
        model: any module taking ``(B, channels, size, size)``; layer names are those of
            :func:`~gradviz.core.taps.layer_root`.
        size: the probe image side in pixels (the map's shapes are at this size).
        channels: input channels.

    Returns:
        A :class:`LayerMap`; hooks are removed and each module's train/eval mode restored also
        when a forward pass fails. When the larger pass fails (a model that takes one size only),
        strides are ``round(size / output width)``.

    Example:
        >>> net = nn.Sequential(*[nn.Conv2d(3, 3, 3, stride=2) for _ in range(3)], nn.AdaptiveAvgPool2d(1))
        >>> lm = layer_map(net, 64)  # unpadded: 31, 15 and 7 px, where round(64 / 7) would say 9
        >>> [(row.name, row.shape[-1], row.stride) for row in lm.rows]
        [('0', 31, 2), ('1', 15, 4), ('2', 7, 8), ('3', 1, None)]
        >>> [row.name for row in lm.stages], lm.total_stride
        (['0', '1', '2'], 8)
    """
    first, elements = _probe(model, size, channels)
    try:
        second, _ = _probe(model, size + STRIDE_STEP, channels)
    except Exception:  # whatever a model that takes one size only raises: the first pass stands
        second = {}
    rows = [LayerInfo(name, kind, shape, _stride(shape, second[name][1] if name in second else None, size), inputs)
            for name, (kind, shape, inputs) in first.items()]
    return LayerMap(size, rows, elements)


def layer_map_at(model: nn.Module, size: int, known: LayerMap | None = None) -> LayerMap:
    """The layer map at ``size``: ``known`` when it already is that map, else a new probe pass.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1))
        >>> probe = layer_map(net, PROBE_SIZE)
        >>> layer_map_at(net, PROBE_SIZE, probe) is probe, layer_map_at(net, 32, probe).size
        (True, 32)
    """
    return known if known is not None and known.size == size else layer_map(model, size)


def probe_map(model: nn.Module, size: int) -> LayerMap:
    """The map memory estimates and the smallest image size are read from: at :data:`PROBE_SIZE`,
    or at ``size`` when the model does not take ``PROBE_SIZE`` px.

    Inception v3 needs at least 75 px, ViT and MaxViT their training size only; their probe runs at
    the images' size (a forward pass without gradients, less than what the measurement costs).

    Args:
        model: as in :func:`layer_map`.
        size: the size the model will be run at.

    Returns:
        A :class:`LayerMap` at ``PROBE_SIZE`` or else at ``size``; when the model fails at both,
        the error at ``size`` is raised.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 2, 3, stride=2), nn.Conv2d(2, 2, 40, stride=2))  # 64 px: 31 < 40
        >>> probe_map(net, 96).size, [row.stride for row in probe_map(net, 96).stages]
        (96, [2, 4])
    """
    try:
        return layer_map(model, PROBE_SIZE)
    except Exception as first:  # the model does not take PROBE_SIZE px: probe it at its own size
        try:
            if size == PROBE_SIZE:
                raise first
            return layer_map(model, size)
        except GradvizError:
            raise
        except Exception as exc:  # a forward pass that fails on this size: the user's --size, in one line
            detail = " ".join(str(exc).split())[:160]
            raise GradvizError(f"the model does not run on {size} px images ({type(exc).__name__}: {detail}); "
                               "valid: an image size the model accepts (e.g. 224 for ViT, at least 75 for Inception)"
                               ) from None
