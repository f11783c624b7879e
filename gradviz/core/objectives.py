"""Objectives: scalar functions of tapped activations, one value per image.

An :class:`Objective` maps ``{layer name: activation}`` to a tensor of shape (B,). Objectives
compose with ordinary arithmetic (``channel("features.22", 3) - 0.5 * deepdream("features.29")``),
and an index may be a sequence with one entry per image, so a batch of objectives runs in one
forward pass (``channel("features.22", range(64))`` on 64 images).

A layer is a dotted name (``"features.22"``), a module reference (``model.net.layer4[-1]``:
:meth:`Objective.bind` turns it into its name in a given model) or, where a layer and a channel
are taken, Lucent's ``"layer:n"`` shorthand: ``channel("features.22:12")``,
``as_objective("features.22:12")``, ``make_objective("channel", "features.22:12")``.

Because each image's value depends only on that image (models are in eval mode), the
gradient of ``values.sum()`` with respect to the batch is every image's own gradient.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence

import torch
from torch import nn

from gradviz.core.taps import LOGITS, resolve_layer
from gradviz.errors import GradvizError
from gradviz.registry import Registry

Index = int | Sequence[int]
Layer = str | nn.Module
Activations = dict[str, torch.Tensor]


class Objective:
    """A named function of activations returning one value per image.

    Args:
        fn: ``{layer name: activation} -> (B,)`` tensor.
        layers: the layers ``fn`` reads (what :class:`~gradviz.core.taps.Taps` must capture):
            dotted names, or module references until :meth:`bind` names them.
        name: how reports and ``repr`` name it.
        bind: ``model -> Objective`` with module references replaced by names (see :meth:`bind`);
            needed only when ``layers`` holds modules.

    Shape:
        activations ``(B, ...)`` -> ``(B,)``.

    Example:
        >>> acts = {"conv": torch.arange(8.0).view(2, 1, 2, 2), "logits": torch.tensor([[1.0, 5.0], [7.0, 2.0]])}
        >>> obj = 2 * channel("conv", 0) - class_logit("top")
        >>> obj, obj.layers, obj(acts).tolist()
        (Objective(2 * channel(conv, 0) + -(class_logit(top))), ('conv', 'logits'), [-2.0, 4.0])
    """

    def __init__(self, fn: Callable[[Activations], torch.Tensor], layers: Sequence[Layer], name: str,
                 bind: Callable[[nn.Module], Objective] | None = None):
        self.fn = fn
        self.layers = tuple(dict.fromkeys(layers))
        self.name = name
        self._bind = bind

    def __call__(self, acts: Activations) -> torch.Tensor:
        return self.fn(acts)

    def __repr__(self) -> str:
        return f"Objective({self.name})"

    def bind(self, model: nn.Module) -> Objective:
        """This objective with every module reference replaced by its dotted name in ``model``.

        Returns the objective itself when it names its layers already (gradviz's functions call
        this before tapping). A module that is not part of ``model`` gets a one-line error.

        Example:
            >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
            >>> obj = channel(net[1], 2) - 0.5 * deepdream(net[0])
            >>> obj.bind(net), obj.bind(net).layers
            (Objective(channel(1, 2) + -(0.5 * deepdream(0))), ('1', '0'))
        """
        if not any(isinstance(layer, nn.Module) for layer in self.layers):
            return self
        if self._bind is None:
            raise GradvizError(f"objective {self.name} refers to modules but cannot be bound to a model; valid: "
                               "give its layers as dotted names")
        return self._bind(model)

    def __add__(self, other: Objective | float) -> Objective:
        if isinstance(other, numbers.Number):
            return Objective(lambda a: self(a) + other, self.layers, f"{self.name} + {other}",
                             lambda m: self.bind(m) + other)
        if not isinstance(other, Objective):
            return NotImplemented
        return Objective(lambda a: self(a) + other(a), self.layers + other.layers, f"{self.name} + {other.name}",
                         lambda m: self.bind(m) + other.bind(m))

    __radd__ = __add__

    def __neg__(self) -> Objective:
        return Objective(lambda a: -self(a), self.layers, f"-({self.name})", lambda m: -self.bind(m))

    def __sub__(self, other: Objective | float) -> Objective:
        return self + (-other)

    def __rsub__(self, other: float) -> Objective:
        return (-self) + other

    def __mul__(self, k: float) -> Objective:
        if not isinstance(k, numbers.Number):
            return NotImplemented
        return Objective(lambda a: k * self(a), self.layers, f"{k} * {self.name}", lambda m: k * self.bind(m))

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


def _activation(acts: Activations, layer: Layer) -> torch.Tensor:
    if isinstance(layer, nn.Module):
        raise GradvizError(f"the objective's layer is a module ({type(layer).__name__}) not bound to a model; valid: "
                           "objective.bind(model) first (gradviz's functions do), or the layer's dotted name")
    if layer not in acts:
        raise GradvizError(f"layer {layer!r} is not among the captured activations ({', '.join(map(str, acts)) or 'none'}); "
                           "valid: capture every layer in objective.layers (Taps(model, objective.layers))")
    a = acts[layer]
    if not isinstance(a, torch.Tensor):
        raise GradvizError(f"layer {layer} does not output a tensor")
    return a


def _label(layer: Layer) -> str:
    """How an objective's name shows a layer: its name, or ``<Class>`` for a module not yet bound."""
    return layer if isinstance(layer, str) else f"<{type(layer).__name__}>"


def _binder(make: Callable[..., Objective], layer: Layer, *args) -> Callable[[nn.Module], Objective] | None:
    """``bind`` for ``make(layer, *args)``: the same objective on the module's dotted name in a model."""
    if isinstance(layer, nn.Module):
        return lambda model: make(resolve_layer(model, layer)[0], *args)
    return None


def _check_layer(kind: str, layer: Layer) -> None:
    if not isinstance(layer, (str, nn.Module)):
        raise GradvizError(f"{kind} objective given a layer of type {type(layer).__name__}; valid: a dotted name "
                           "('features.22') or a module of the model (model.net.features[22])")


def split_layer(layer: Layer, index: Index | None, kind: str = "channel") -> tuple[Layer, Index]:
    """``(layer, index)``: as given, or read from Lucent's ``"layer:n"`` when ``index`` is None.

    Example:
        >>> split_layer("features.22:12", None), split_layer("layer4.1", 3)
        (('features.22', 12), ('layer4.1', 3))
        >>> split_layer("features.22", None)
        Traceback (most recent call last):
        ...
        gradviz.errors.GradvizError: channel objective on features.22 needs a channel index; valid: channel('features.22', n) or channel('features.22:n')
    """
    _check_layer(kind, layer)
    if index is not None:
        return layer, index
    if isinstance(layer, str) and ":" in layer:
        name, _, n = layer.rpartition(":")
        if not n.strip().isdigit() or not name.strip():
            raise GradvizError(f"{kind} objective {layer!r}: expected 'layer:n' with n a channel number; valid: e.g. "
                               "'features.22:12'")
        return name.strip(), int(n)
    label = _label(layer)
    raise GradvizError(f"{kind} objective on {label} needs a channel index; valid: {kind}({label!r}, n)"
                       + (f" or {kind}('{label}:n')" if isinstance(layer, str) else ""))


def _whole_layer(kind: str, layer: Layer) -> Layer:
    _check_layer(kind, layer)
    if isinstance(layer, str) and ":" in layer:
        raise GradvizError(f"{kind} objective takes a whole layer, got {layer!r}; valid: {kind}({layer.rpartition(':')[0]!r}) "
                           f"(channel({layer!r}) for that channel)")
    return layer


def channel(layer: Layer, index: Index | None = None) -> Objective:
    """Mean activation of channel ``index`` of ``layer``: ``mean_{y,x} a[b, c_b, y, x]``.

    Args:
        layer: a dotted name, a module of the model, or Lucent's ``"layer:n"`` (then no ``index``).
        index: one channel for every image or one per image (a batch of objectives in one pass).

    Returns:
        An :class:`Objective` giving one value per image.

    Example:
        >>> a = {"conv": torch.arange(16.0).view(2, 2, 2, 2)}
        >>> channel("conv", 1)(a).tolist(), channel("conv", [0, 1])(a).tolist(), channel("conv:1")(a).tolist()
        ([5.5, 13.5], [1.5, 13.5], [5.5, 13.5])
    """
    layer, index = split_layer(layer, index, "channel")

    def fn(acts: Activations) -> torch.Tensor:
        a = _activation(acts, layer)
        idx = _per_image_index(index, a.shape[0], a.device)
        _check_range("channel", layer, idx, a.shape[1])
        picked = a[torch.arange(a.shape[0], device=a.device), idx]
        return picked.flatten(1).mean(1)

    return Objective(fn, [layer], f"channel({_label(layer)}, {index})", _binder(channel, layer, index))


def neuron(layer: Layer, index: Index | None = None, y: int | None = None, x: int | None = None) -> Objective:
    """Activation of channel ``index`` of ``layer`` at one position (the centre by default);
    ``layer`` as in :func:`channel` (``"layer:n"`` accepted)."""
    layer, index = split_layer(layer, index, "neuron")

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

    return Objective(fn, [layer], f"neuron({_label(layer)}, {index}, {y}, {x})", _binder(neuron, layer, index, y, x))


def deepdream(layer: Layer) -> Objective:
    """The DeepDream objective: mean squared activation of ``layer``, ``mean_{c,y,x} a^2``.

    Example:
        >>> deepdream("conv")({"conv": torch.tensor([[[[1.0, -3.0]]]])}).tolist()
        [5.0]
    """
    layer = _whole_layer("deepdream", layer)

    def fn(acts: Activations) -> torch.Tensor:
        a = _activation(acts, layer)
        return a.square().flatten(1).mean(1)

    return Objective(fn, [layer], f"deepdream({_label(layer)})", _binder(deepdream, layer))


def layer_mean(layer: Layer) -> Objective:
    """Mean activation over every channel and position of ``layer``."""
    layer = _whole_layer("layer_mean", layer)

    def fn(acts: Activations) -> torch.Tensor:
        return _activation(acts, layer).flatten(1).mean(1)

    return Objective(fn, [layer], f"layer_mean({_label(layer)})", _binder(layer_mean, layer))


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
OBJECTIVES: Registry[Callable[[Layer | None, Index | None], Objective]] = Registry("objective")


def _layer(kind: str, layer: Layer | None) -> Layer:
    if layer is None:
        raise GradvizError(f"objective {kind!r} needs a layer")
    return layer


@OBJECTIVES.register("channel")
def _channel(layer: str | None, index: Index | None) -> Objective:
    """mean activation of one channel of the layer (needs a channel index, or the layer as 'layer:n')"""
    return channel(_layer("channel", layer), index)


@OBJECTIVES.register("neuron")
def _neuron(layer: str | None, index: Index | None) -> Objective:
    """activation of one channel at the centre of the layer (needs a channel index, or 'layer:n')"""
    return neuron(_layer("neuron", layer), index)


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


def make_objective(kind: str, layer: Layer | None = None, index: Index | None = None) -> Objective:
    """Build an objective from its command-line name (see :data:`OBJECTIVES`).

    Args:
        kind: a name in :data:`OBJECTIVES`.
        layer: a dotted name or module (``"layer:n"`` for the kinds that take a channel).
        index: the channel or class index, for the kinds that take one.

    Returns:
        The :class:`Objective`.

    Example:
        >>> make_objective("channel", "features.22", 3), make_objective("channel", "features.22:3")
        (Objective(channel(features.22, 3)), Objective(channel(features.22, 3)))
        >>> make_objective("logit")
        Objective(class_logit(top))
    """
    return OBJECTIVES[kind](layer, index)


def as_objective(objective: Objective | str) -> Objective:
    """An :class:`Objective` as it is, or one from Lucent's shorthand ``"layer:n"``: channel ``n`` of
    ``layer`` (``"logits:n"``: class logit ``n``).

    Args:
        objective: an :class:`Objective` or ``"layer:n"`` text.

    Returns:
        The :class:`Objective`.

    Example:
        >>> as_objective("features.22:12"), as_objective("logits:281"), as_objective(deepdream("features.29"))
        (Objective(channel(features.22, 12)), Objective(class_logit(281)), Objective(deepdream(features.29)))
        >>> as_objective("features.22")
        Traceback (most recent call last):
        ...
        gradviz.errors.GradvizError: objective given as 'features.22'; valid: an Objective (channel(...), deepdream(...), ...) or 'layer:n' for channel n of a layer
    """
    if isinstance(objective, Objective):
        return objective
    if isinstance(objective, str) and ":" in objective:
        layer, index = split_layer(objective, None, "channel")
        return class_logit(index) if layer == LOGITS else channel(layer, index)
    raise GradvizError(f"objective given as {short_repr(objective)}; valid: an Objective (channel(...), deepdream(...), "
                       "...) or 'layer:n' for channel n of a layer")


def short_repr(value: object, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
