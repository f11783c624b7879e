"""Objectives: scalar functions of tapped activations, one value per image.

An :class:`Objective` maps ``{layer name: activation}`` to a tensor of shape (B,). Objectives
compose with ordinary arithmetic (``channel("features.22", 3) - 0.5 * deepdream("features.29")``),
and an index may be a sequence with one entry per image, so a batch of objectives runs in one
forward pass (``channel("features.22", range(64))`` on 64 images).

Because each image's value depends only on that image (models are in eval mode), the
gradient of ``values.sum()`` with respect to the batch is every image's own gradient.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence

import torch

from gradviz.core.taps import LOGITS
from gradviz.errors import GradvizError
from gradviz.registry import Registry

Index = int | Sequence[int]
Activations = dict[str, torch.Tensor]


class Objective:
    """A named function of activations returning one value per image.

    Args:
        fn: ``{layer name: activation} -> (B,)`` tensor.
        layers: the layers ``fn`` reads (what :class:`~gradviz.core.taps.Taps` must capture).
        name: how reports and ``repr`` name it.

    Shape:
        activations ``(B, ...)`` -> ``(B,)``.

    Example:
        >>> acts = {"conv": torch.arange(8.0).view(2, 1, 2, 2), "logits": torch.tensor([[1.0, 5.0], [7.0, 2.0]])}
        >>> obj = 2 * channel("conv", 0) - class_logit("top")
        >>> obj, obj.layers, obj(acts).tolist()
        (Objective(2 * channel(conv, 0) + -(class_logit(top))), ('conv', 'logits'), [-2.0, 4.0])
    """

    def __init__(self, fn: Callable[[Activations], torch.Tensor], layers: Sequence[str], name: str):
        self.fn = fn
        self.layers = tuple(dict.fromkeys(layers))
        self.name = name

    def __call__(self, acts: Activations) -> torch.Tensor:
        return self.fn(acts)

    def __repr__(self) -> str:
        return f"Objective({self.name})"

    def __add__(self, other: Objective | float) -> Objective:
        if isinstance(other, numbers.Number):
            return Objective(lambda a: self(a) + other, self.layers, f"{self.name} + {other}")
        return Objective(lambda a: self(a) + other(a), self.layers + other.layers, f"{self.name} + {other.name}")

    __radd__ = __add__

    def __neg__(self) -> Objective:
        return Objective(lambda a: -self(a), self.layers, f"-({self.name})")

    def __sub__(self, other: Objective | float) -> Objective:
        return self + (-other)

    def __rsub__(self, other: float) -> Objective:
        return (-self) + other

    def __mul__(self, k: float) -> Objective:
        if not isinstance(k, numbers.Number):
            return NotImplemented
        return Objective(lambda a: k * self(a), self.layers, f"{k} * {self.name}")

    __rmul__ = __mul__

    def __truediv__(self, k: float) -> Objective:
        return self * (1.0 / k)


def _per_image_index(index: Index, batch: int, device) -> torch.Tensor:
    idx = torch.as_tensor([index] if isinstance(index, numbers.Integral) else list(index), device=device)
    if idx.numel() == 1:
        return idx.expand(batch)
    if batch % idx.numel():
        raise GradvizError(f"{idx.numel()} indices given for a batch of {batch} images; give one or one per image")
    # captum's NoiseTunnel and IntegratedGradients tile the batch k times: repeat the indices alike.
    return idx.repeat(batch // idx.numel())


def _check_range(what: str, layer: str, idx: torch.Tensor, size: int) -> None:
    bad = idx[(idx < 0) | (idx >= size)]
    if bad.numel():
        raise GradvizError(f"{what} {int(bad[0])} out of range for layer {layer} with {size} {what}s; valid: 0..{size - 1}")


def _activation(acts: Activations, layer: str) -> torch.Tensor:
    a = acts[layer]
    if not isinstance(a, torch.Tensor):
        raise GradvizError(f"layer {layer} does not output a tensor")
    return a


def channel(layer: str, index: Index) -> Objective:
    """Mean activation of channel ``index`` of ``layer``: ``mean_{y,x} a[b, c_b, y, x]``.

    ``index`` may be one channel for every image or one per image (a batch of objectives in one pass).

    Example:
        >>> a = {"conv": torch.arange(16.0).view(2, 2, 2, 2)}
        >>> channel("conv", 1)(a).tolist(), channel("conv", [0, 1])(a).tolist()
        ([5.5, 13.5], [1.5, 13.5])
    """

    def fn(acts: Activations) -> torch.Tensor:
        a = _activation(acts, layer)
        idx = _per_image_index(index, a.shape[0], a.device)
        _check_range("channel", layer, idx, a.shape[1])
        picked = a[torch.arange(a.shape[0], device=a.device), idx]
        return picked.flatten(1).mean(1)

    return Objective(fn, [layer], f"channel({layer}, {index})")


def neuron(layer: str, index: Index, y: int | None = None, x: int | None = None) -> Objective:
    """Activation of channel ``index`` of ``layer`` at one position (the centre by default)."""

    def fn(acts: Activations) -> torch.Tensor:
        a = _activation(acts, layer)
        if a.dim() != 4:
            raise GradvizError(f"neuron objective needs a 4D layer output; {layer} has shape {tuple(a.shape)}")
        idx = _per_image_index(index, a.shape[0], a.device)
        _check_range("channel", layer, idx, a.shape[1])
        h, w = a.shape[-2:]
        yy = h // 2 if y is None else y
        xx = w // 2 if x is None else x
        if not (0 <= yy < h and 0 <= xx < w):
            raise GradvizError(f"neuron position ({yy}, {xx}) outside layer {layer} of size {h}x{w}")
        return a[torch.arange(a.shape[0], device=a.device), idx, yy, xx]

    return Objective(fn, [layer], f"neuron({layer}, {index}, {y}, {x})")


def deepdream(layer: str) -> Objective:
    """The DeepDream objective: mean squared activation of ``layer``, ``mean_{c,y,x} a^2``.

    Example:
        >>> deepdream("conv")({"conv": torch.tensor([[[[1.0, -3.0]]]])}).tolist()
        [5.0]
    """

    def fn(acts: Activations) -> torch.Tensor:
        a = _activation(acts, layer)
        return a.square().flatten(1).mean(1)

    return Objective(fn, [layer], f"deepdream({layer})")


def layer_mean(layer: str) -> Objective:
    """Mean activation over every channel and position of ``layer``."""

    def fn(acts: Activations) -> torch.Tensor:
        return _activation(acts, layer).flatten(1).mean(1)

    return Objective(fn, [layer], f"layer_mean({layer})")


def class_logit(index: Index | str = "top") -> Objective:
    """A class logit (pre-softmax); ``"top"`` takes each image's largest logit."""

    def fn(acts: Activations) -> torch.Tensor:
        z = _activation(acts, LOGITS)
        if index == "top":
            return z.max(dim=1).values
        idx = _per_image_index(index, z.shape[0], z.device)
        _check_range("class", LOGITS, idx, z.shape[1])
        return z[torch.arange(z.shape[0], device=z.device), idx]

    return Objective(fn, [LOGITS], f"class_logit({index})")


# Objectives by the name the command line uses. Each entry takes ``(layer, index)``; its docstring's
# first line is the description ``--help`` shows.
OBJECTIVES: Registry[Callable[[str | None, Index | None], Objective]] = Registry("objective")


def _layer(kind: str, layer: str | None) -> str:
    if layer is None:
        raise GradvizError(f"objective {kind!r} needs a layer")
    return layer


def _index(kind: str, index: Index | None) -> Index:
    if index is None:
        raise GradvizError(f"objective {kind!r} needs a channel index")
    return index


@OBJECTIVES.register("channel")
def _channel(layer: str | None, index: Index | None) -> Objective:
    """mean activation of one channel of the layer (needs a channel index)"""
    return channel(_layer("channel", layer), _index("channel", index))


@OBJECTIVES.register("neuron")
def _neuron(layer: str | None, index: Index | None) -> Objective:
    """activation of one channel at the centre of the layer (needs a channel index)"""
    return neuron(_layer("neuron", layer), _index("neuron", index))


@OBJECTIVES.register("deepdream")
def _deepdream(layer: str | None, index: Index | None = None) -> Objective:
    """mean squared activation of the layer (DeepDream)"""
    return deepdream(_layer("deepdream", layer))


@OBJECTIVES.register("layer-mean")
def _layer_mean(layer: str | None, index: Index | None = None) -> Objective:
    """mean activation over every channel and position of the layer"""
    return layer_mean(_layer("layer-mean", layer))


@OBJECTIVES.register("logit")
def _logit(layer: str | None = None, index: Index | None = None) -> Objective:
    """a class logit (the top one when no index is given); no layer needed"""
    return class_logit("top" if index is None else index)


def make_objective(kind: str, layer: str | None = None, index: Index | None = None) -> Objective:
    """Build an objective from its command-line name (see :data:`OBJECTIVES`).

    Example:
        >>> make_objective("channel", "features.22", 3)
        Objective(channel(features.22, 3))
        >>> make_objective("logit")
        Objective(class_logit(top))
    """
    return OBJECTIVES[kind](layer, index)
