"""Compare downsampling variants of one network: checkerboard metrics, fairness, kernel predictions.

Measures and returns a :class:`Comparison`; :mod:`gradviz.downsampling.render` draws and writes it.

**Comparison layers** (:func:`comparison_layers`): one layer per cumulative stride, the first whose
output every variant gives at the original's shape. VGG: each max-pool's output (``features.4``,
``.9``, ``.16``, ``.23``, ``.30`` for VGG16; the layers between two pools will not do, as in the
``stride`` variant the convolution before a pool already runs at the next stride). ResNet: the
stages of :attr:`LayerMap.stages <gradviz.core.layermap.LayerMap.stages>` (``relu``, ``layer1`` ..
``layer4``). For VGG they are not the report's stages (``LayerMap.stages``, the last layer at each
stride: ``features.8``, ``.15``, ... for VGG16). The output files call them "stages" (``stages`` in
``comparison.json``, ``stage-<layer>.png``); in Python they are ``VariantResult.layers``, each a
:class:`ComparedLayer`.

For every variant (:mod:`gradviz.downsampling.variants`) and every comparison layer ``L`` with
cumulative stride ``S`` (or the user's ``layers``):

- the input gradient of ``deepdream(L) = mean a_L**2`` is accumulated over the images with a
  :class:`~gradviz.spectrum.SpectrumAccumulator` of period ``S`` (memory constant in the
  number of images), giving the core checkerboard metrics;
- **fairness**: ``cos(a_L^variant, a_L^original)`` per image (activations flattened), mean and
  minimum over the images; near 1 means the variant still computes what the trained network
  computes, so a cleaner gradient is not a broken network;
- **lines**: at the stage of stride ``p`` the line excess at bins of period exactly ``p`` over their
  local background, with its p-value (:mod:`gradviz.spectrum.lines`), beside what the kernels of the layers
  making lines of period ``p`` predict (:mod:`gradviz.downsampling.kernels`).
"""

from __future__ import annotations

import math
from contextlib import closing
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from gradviz.core.gradients import input_gradients
from gradviz.core.layermap import LayerMap, layer_map
from gradviz.core.models import model_device
from gradviz.core.objectives import deepdream
from gradviz.core.taps import Taps, layer_root
from gradviz.downsampling.kernels import KernelPrediction, predict_lines
from gradviz.downsampling.variants import build_variant, model_family, variants_for
from gradviz.errors import GradvizError
from gradviz.io.images import ImageSet
from gradviz.io.outputs import json_ready
from gradviz.spectrum import CheckerboardMetrics, SpectrumAccumulator

__all__ = ["BATCH_SIZE", "MIN_SIZE", "OBJECTIVE", "SIZE_MULTIPLE", "Comparison", "ComparedLayer", "VariantResult",
           "check_size", "compare_variants", "comparison_layers", "measure_variant", "resolve_layers"]

# Images per forward/backward pass: bounds memory; the results do not depend on it.
BATCH_SIZE = 4
# Smallest image side: the deepest blur pool pads by 2 with reflection, which needs 3 pixels there.
MIN_SIZE = 64
# Every stage period must divide the image side so that all variants keep the original's shapes.
SIZE_MULTIPLE = 32
OBJECTIVE = "deepdream (mean squared activation of the stage)"


@dataclass
class ComparedLayer:
    """One variant at one comparison layer (a "stage" in the output files): checkerboard metrics
    of its input gradients and its fairness.

    Attributes:
        layer: the comparison layer.
        stride: its cumulative stride, the period tested.
        cosine_mean, cosine_min: mean and minimum over the images of the cosine similarity of
            the variant's activations to the original's.
        metrics: the checkerboard metrics of the input gradients of ``deepdream(layer)``.

    Example:
        >>> from gradviz.spectrum import checkerboard_metrics
        >>> g = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
        >>> stage = ComparedLayer("layer1", 4, 1.0, 1.0, checkerboard_metrics(g, 4))
        >>> stage.own_line_excess == stage.metrics.octave_excess[1], sorted(stage.to_dict())[:3]
        (True, ['cosine_mean', 'cosine_min', 'layer'])
    """

    layer: str
    stride: int
    cosine_mean: float
    cosine_min: float
    metrics: CheckerboardMetrics

    def _own(self, values: list[float]) -> float:
        j = self.stride.bit_length() - 2  # octave index of period == stride
        return values[j] if 0 <= j < len(values) else math.nan

    @property
    def own_line_excess(self) -> float:
        """Line excess at period exactly ``stride`` (the newest line) over its local background."""
        return self._own(self.metrics.octave_excess)

    @property
    def own_line_p(self) -> float:
        """p-value of :attr:`own_line_excess` (before any adjustment)."""
        return self._own(self.metrics.octave_p_values)

    def to_dict(self) -> dict:
        """The JSON form (``comparison.json``'s ``stages`` entries)."""
        return {"layer": self.layer, "stride": self.stride, "cosine_mean": self.cosine_mean, "cosine_min": self.cosine_min,
                "own_line_excess": json_ready(self.own_line_excess), "own_line_p": json_ready(self.own_line_p),
                "metrics": self.metrics.to_dict()}


@dataclass
class VariantResult:
    """All comparison layers of one variant, its kernel predictions, and the arrays its figures need.

    Attributes:
        name, description: the variant's registry name and description.
        layers: one :class:`ComparedLayer` per comparison layer, shallowest first.
        predictions: the kernel predictions of the variant's strided layers, in call order.
        example_gradients: per layer, the first image's input gradient ``(3, H, W)``.
        spectra: per layer, the mean power spectrum of the gradients ``(H', W')`` (cropped to
            a multiple of the stride).
    """

    name: str
    description: str
    layers: list[ComparedLayer]
    predictions: list[KernelPrediction]
    example_gradients: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)  # first image
    spectra: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)  # mean power per stage

    def predicted_line(self, period: int) -> float | None:
        """Mean ``P(w_q) / P(0)`` over harmonics and over the layers whose lines have ``period``.

        Args:
            period: the line period in pixels.

        Returns:
            The mean, or None when no layer with a fixed kernel makes lines of that period.

        Example:
            >>> p = KernelPrediction("conv", "conv", 2, 2, 4, {"0,1": 0.1, "1,0": 0.3, "1,1": None}, None, None)
            >>> v = VariantResult("stride", "as built", [], [p])
            >>> round(v.predicted_line(4), 6), v.predicted_line(8)
            (0.2, None)
        """
        values = [
            v
            for p in self.predictions
            if p.line_period == period and p.harmonic_to_dc
            for v in p.harmonic_to_dc.values()
            if v is not None
        ]
        return sum(values) / len(values) if values else None

    def to_dict(self) -> dict:
        """The JSON form (``comparison.json``'s ``variants`` entries; no arrays)."""
        return {
            "name": self.name,
            "description": self.description,
            "stages": [s.to_dict() for s in self.layers],
            "predictions": [p.to_dict() for p in self.predictions],
            "lines": [
                {"period": s.stride, "measured_excess": json_ready(s.own_line_excess), "measured_p": json_ready(s.own_line_p),
                 "predicted_to_dc": self.predicted_line(s.stride)}
                for s in self.layers
            ],
        }


@dataclass
class Comparison:
    """A whole comparison: which model, weights and images, and one result per variant (every
    variant with the same comparison layers, in the same order)."""

    arch: str
    weights: str
    images: str
    image_names: list[str]
    size: int
    seed: int
    variants: list[VariantResult]
    objective: str = OBJECTIVE

    def to_dict(self) -> dict:
        """The JSON form (``comparison.json`` before rounding)."""
        return {"arch": self.arch, "weights": self.weights, "images": self.images, "image_names": self.image_names,
                "size": self.size, "seed": self.seed, "objective": self.objective,
                "variants": [v.to_dict() for v in self.variants]}


def check_size(size: int) -> None:
    """Refuse an image side that not every variant can take.

    Args:
        size: the image side in pixels: a multiple of :data:`SIZE_MULTIPLE`, at least :data:`MIN_SIZE`.

    Raises:
        GradvizError: otherwise.

    Example:
        >>> check_size(96)
        >>> check_size(48)
        Traceback (most recent call last):
        ...
        gradviz.errors.GradvizError: --size must be a multiple of 32 and at least 64, got 48
    """
    if size < MIN_SIZE or size % SIZE_MULTIPLE:
        raise GradvizError(f"--size must be a multiple of {SIZE_MULTIPLE} and at least {MIN_SIZE}, got {size}")


def comparison_layers(model: nn.Module, lmap: LayerMap) -> list[tuple[str, int]]:
    """The comparison layers of ``model``: where every variant is measured (see the module docstring).

    Args:
        model: a torchvision VGG or ResNet, or a :class:`~gradviz.core.models.PixelModel` of one.
        lmap: ``model``'s layer map at the image size.

    Returns:
        ``(layer name, cumulative stride)``, shallowest first. VGG: every max-pool's output;
        ResNet: ``lmap.stages``.

    Example:
        >>> import torchvision
        >>> net = torchvision.models.resnet18()
        >>> comparison_layers(net, layer_map(net, 64))
        [('relu', 2), ('layer1', 4), ('layer2', 8), ('layer3', 16), ('layer4', 32)]
    """
    if model_family(model) == "resnet":
        return [(row.name, row.stride) for row in lmap.stages]
    features = layer_root(model).features
    return [(f"features.{i}", lmap.stride_of(f"features.{i}")) for i, m in enumerate(features) if isinstance(m, nn.MaxPool2d)]


def resolve_layers(model: nn.Module, lmap: LayerMap, layers: list[str] | None = None) -> list[tuple[str, int]]:
    """``(layer, stride)`` to measure: the comparison layers, or ``layers`` with their strides.

    Args:
        model: a torchvision VGG or ResNet, or a PixelModel of one.
        lmap: ``model``'s layer map at the image size (the strides are read from it).
        layers: the user's layer names; None or empty: :func:`comparison_layers`.

    Returns:
        ``(name, cumulative stride)`` in the order given.

    Raises:
        GradvizError: an unknown layer, or one whose stride is not 2, 4, 8, ...

    Example:
        >>> import torchvision
        >>> net = torchvision.models.resnet18()
        >>> lmap = layer_map(net, 64)
        >>> resolve_layers(net, lmap, ["layer2.0.conv1", "layer1"])
        [('layer2.0.conv1', 8), ('layer1', 4)]
        >>> resolve_layers(net, lmap, ["fc"])
        Traceback (most recent call last):
        ...
        gradviz.errors.GradvizError: layer fc has stride None; valid: layers at a stride of 2, 4, 8, ...
    """
    if not layers:
        return comparison_layers(model, lmap)
    out = []
    for layer in layers:
        if layer not in lmap:
            valid = ", ".join(n for n, _ in comparison_layers(model, lmap))
            raise GradvizError(f"unknown layer {layer!r}; valid: e.g. {valid}")
        s = lmap[layer].stride
        if s is None or s < 2 or s & (s - 1):
            raise GradvizError(f"layer {layer} has stride {s}; valid: layers at a stride of 2, 4, 8, ...")
        out.append((layer, s))
    return out


def _check_shapes(name: str, acts: dict[str, torch.Tensor], ref: dict[str, torch.Tensor]) -> None:
    for layer, a in acts.items():
        if a.shape != ref[layer].shape:
            raise GradvizError(
                f"variant {name!r} gives layer {layer} shape {tuple(a.shape[1:])}, the original "
                f"{tuple(ref[layer].shape[1:])}; valid: layers at the stage outputs (see --help)"
            )


def measure_variant(
    original: nn.Module,
    variant: nn.Module,
    name: str,
    images: ImageSet | torch.Tensor,
    compared: list[tuple[str, int]],
    batch_size: int = BATCH_SIZE,
    progress: tqdm | None = None,
    seed: int = 0,
) -> tuple[list[ComparedLayer], dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Measure one variant against the original at the given layers.

    Args:
        original, variant: the loaded model (the reference activations) and one of its variants.
        name: the variant's name, for errors.
        images: a tensor or an :class:`~gradviz.io.images.ImageSet` (read batch by batch).
        compared: ``(layer, stride)`` pairs, from :func:`resolve_layers`.
        batch_size: images per pass; ``progress``: a tqdm bar advanced per image.
        seed: seeds the null draws of the tests.

    Returns:
        ``(stage results, first image's gradient per layer, mean power spectrum per layer)``.

    Shape:
        ``images``: ``(N, 3, H, W)``; each gradient ``(3, H, W)``.

    Raises:
        GradvizError: a layer whose shape differs between the variant and the original.
    """
    device = model_device(variant)
    images = images if isinstance(images, ImageSet) else ImageSet(images, [""] * images.shape[0])
    layers = [layer for layer, _ in compared]
    accs = {layer: SpectrumAccumulator(stride) for layer, stride in compared}
    cos_sum = dict.fromkeys(layers, 0.0)
    cos_min = dict.fromkeys(layers, math.inf)
    objectives = {layer: deepdream(layer) for layer in layers}
    examples: dict[str, torch.Tensor] = {}
    with closing(images.batches(batch_size)) as batches:  # closed here on an error, not at exit
        for batch_index, x in enumerate(batches):
            x = x.to(device)
            with torch.no_grad(), Taps(original, layers, stop=True) as t_ref, Taps(variant, layers, stop=True) as t_var:
                ref, acts = t_ref.forward(x), t_var.forward(x)
            _check_shapes(name, acts, ref)
            for layer in layers:
                cos = F.cosine_similarity(acts[layer].flatten(1).double(), ref[layer].flatten(1).double(), dim=1)
                cos_sum[layer] += float(cos.sum())
                cos_min[layer] = min(cos_min[layer], float(cos.min()))
            grads = input_gradients(variant, x, objectives)
            for layer in layers:
                accs[layer].add(grads[layer])
                if batch_index == 0:
                    examples[layer] = grads[layer][0].detach().cpu()
            if progress is not None:
                progress.update(len(x))
    results = [
        ComparedLayer(layer, stride, cos_sum[layer] / len(images), cos_min[layer], accs[layer].metrics(seed=seed))
        for layer, stride in compared
    ]
    spectra = {layer: acc.incoherent_power().cpu() for layer, acc in accs.items()}
    return results, examples, spectra


def compare_variants(
    model: nn.Module,
    names: list[str],
    images: ImageSet,
    seed: int = 0,
    layers: list[str] | None = None,
    batch_size: int = BATCH_SIZE,
    lmap: LayerMap | None = None,
    progress: bool | None = None,
) -> Comparison:
    """Measure every variant ``names`` of ``model`` on ``images`` (see the module docstring).

    Args:
        model: a :class:`~gradviz.core.models.PixelModel` of a torchvision VGG or ResNet.
        names: variant names of :func:`~gradviz.downsampling.variants.variants_for` ``(model)``.
        images: square images whose side passes :func:`check_size`.
        seed: seeds the null draws of the tests.
        layers: layers to measure instead of the comparison layers (see :func:`resolve_layers`).
        batch_size: images per pass (the results do not depend on it).
        lmap: ``model``'s layer map at ``images.size``, when the caller has it (made when None).
        progress: show a progress bar (None: only on a terminal).

    Returns:
        A :class:`Comparison`, one :class:`VariantResult` per name, in the order given.

    Example:
        >>> import torchvision
        >>> from gradviz.core.models import PixelModel
        >>> model = PixelModel(torchvision.models.resnet18().eval().requires_grad_(False), arch="resnet18")
        >>> images = ImageSet(torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)), ["noise"])
        >>> comp = compare_variants(model, ["stride"], images, layers=["relu"])
        >>> stage = comp.variants[0].layers[0]
        >>> stage.layer, stage.stride, round(stage.cosine_mean, 6)   # the as-built variant is the original
        ('relu', 2, 1.0)
    """
    size = images.size
    check_size(size)
    if lmap is None:
        lmap = layer_map(model, size)
    elif lmap.size != size:
        raise GradvizError(f"the layer map is at {lmap.size} px, the images at {size} px; valid: a map at the images' size")
    compared = resolve_layers(model, lmap, layers)
    registry = variants_for(model)
    results = []
    with tqdm(total=len(names) * len(images), desc=f"compare {getattr(model, 'arch', '')}", unit="img",
              disable=None if progress is None else not progress) as bar:
        for name in names:
            variant = build_variant(model, name)
            layer_results, examples, spectra = measure_variant(model, variant, name, images, compared, batch_size, bar, seed)
            results.append(
                VariantResult(name, registry.describe(name), layer_results, predict_lines(variant, size), examples, spectra)
            )
    return Comparison(
        getattr(model, "arch", "custom"), getattr(model, "weights", "custom"), images.source, list(images.names),
        size, seed, results,
    )
