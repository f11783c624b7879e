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

from gradviz.errors import GradvizError
from gradviz.taps import LOGITS

Index = int | Sequence[int]
Activations = dict[str, torch.Tensor]


class Objective:
    """A named function of activations returning one value per image, shape (B,)."""

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
    """Mean activation of channel ``index`` of ``layer``: ``mean_{y,x} a[b, c_b, y, x]``."""

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
    """The DeepDream objective: mean squared activation of ``layer``, ``mean_{c,y,x} a^2``."""

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


# Objective kinds by the name the CLI uses.
OBJECTIVE_KINDS = ("channel", "neuron", "deepdream", "layer-mean", "logit")


def make_objective(kind: str, layer: str | None = None, index: Index | None = None) -> Objective:
    """Build an objective from its CLI name (see ``OBJECTIVE_KINDS``)."""
    if kind not in OBJECTIVE_KINDS:
        raise GradvizError(f"unknown objective {kind!r}; valid: {', '.join(OBJECTIVE_KINDS)}")
    if kind == "logit":
        return class_logit("top" if index is None else index)
    if layer is None:
        raise GradvizError(f"objective {kind!r} needs a layer")
    if kind in ("channel", "neuron"):
        if index is None:
            raise GradvizError(f"objective {kind!r} needs a channel index")
        return channel(layer, index) if kind == "channel" else neuron(layer, index)
    return deepdream(layer) if kind == "deepdream" else layer_mean(layer)
