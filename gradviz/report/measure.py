"""Report, measuring half: plan the layers, take the gradients of one objective per layer over a
set of images, and accumulate them into spectra and checkerboard metrics. Nothing is drawn or
written here (see :mod:`gradviz.report.render`).

Data path: model -> layer map -> taps -> gradients -> spectrum -> :class:`Report`. Spectra are
accumulated per batch (:class:`~gradviz.spectrum.SpectrumAccumulator`), so memory does not grow
with the number of images.
"""

from __future__ import annotations

import platform
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm

import gradviz
from gradviz.core.budget import check_image_size, check_memory, report_bytes
from gradviz.core.gradients import GRADIENT_SOURCES, attribution, input_gradients
from gradviz.core.layermap import PROBE_SIZE, LayerMap, layer_map, layer_map_at
from gradviz.core.models import check_finite_parameters, model_device
from gradviz.core.objectives import OBJECTIVES, Objective, class_logit
from gradviz.core.taps import LOGITS, resolve_layer
from gradviz.errors import GradvizError
from gradviz.io.images import ImageSet
from gradviz.spectrum import CheckerboardMetrics, NonFiniteGradient, SpectrumAccumulator

# Objectives (names in :data:`~gradviz.core.objectives.OBJECTIVES`) a report can put on each
# layer; the logits always use the top logit.
REPORT_OBJECTIVES = ("deepdream", "layer-mean", "channel")
# Layers assumed by the memory estimate when the default plan is used (5 stages and the logits, and slack).
DEFAULT_LAYER_COUNT = 8


@dataclass
class LayerSpec:
    """A layer to measure, the period S of its lattice, and the objective placed on it."""

    name: str
    stride: int
    objective: Objective


@dataclass
class LayerResult:
    """What a report keeps of one layer: the pooled metrics, the two averaged spectra and one example map."""

    name: str
    stride: int
    objective: str
    metrics: CheckerboardMetrics
    incoherent_power: torch.Tensor
    coherent_power: torch.Tensor
    example_gradient: torch.Tensor

    def to_dict(self) -> dict:
        d = {"name": self.name, "stride": self.stride, "objective": self.objective}
        d.update(self.metrics.to_dict())
        return d


@dataclass
class Report:
    """A gradient-spectrum report of one model on one set of images."""

    model: str
    weights: str
    images: str
    n_images: int
    image_size: int
    seed: int
    device: str
    source: str
    layers: list[LayerResult]
    notes: list[str] = field(default_factory=list)
    alpha: float = 0.05

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "weights": self.weights,
            "images": self.images,
            "n_images": self.n_images,
            "image_size": self.image_size,
            "seed": self.seed,
            "device": self.device,
            "source": self.source,
            "alpha": self.alpha,
            "versions": versions(),
            "notes": self.notes,
            "layers": [layer.to_dict() for layer in self.layers],
        }


def versions() -> dict[str, str]:
    """The versions a report records: gradviz, Python, torch, torchvision, captum."""
    import captum
    import torchvision

    return {
        "gradviz": gradviz.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "captum": captum.__version__,
    }


def make_layer_objective(kind: str, layer: str, index: int = 0) -> Objective:
    """The report's objective for ``layer``: ``deepdream``, ``layer-mean`` or ``channel`` (index);
    the top logit for ``"logits"``."""
    if kind not in REPORT_OBJECTIVES:
        raise GradvizError(f"unknown objective {kind!r}; valid: {', '.join(REPORT_OBJECTIVES)}")
    if layer == LOGITS:
        return class_logit("top")
    return OBJECTIVES[kind](layer, index)


def plan_layers(
    model: nn.Module,
    layers: Sequence[str | nn.Module] | None,
    lmap: LayerMap,
    objective: str = "deepdream",
    channel_index: int = 0,
    include_logits: bool = True,
) -> list[LayerSpec]:
    """The layers a report measures, each with its period and objective.

    Args:
        model: the model ``lmap`` describes.
        layers: dotted names or module references; None for every downsampling stage's output
            (plus ``"logits"`` when ``include_logits``).
        lmap: the model's layer map at the images' size (strides are read from it).
        objective: one of :data:`REPORT_OBJECTIVES`.
        channel_index: the channel for ``objective="channel"``.
        include_logits: add ``"logits"`` to the default plan.

    Returns:
        One :class:`LayerSpec` per layer, period = the layer's cumulative stride.

    Example:
        >>> import torchvision
        >>> from gradviz.core.layermap import layer_map
        >>> net = torchvision.models.resnet18()
        >>> [(s.name, s.stride) for s in plan_layers(net, None, layer_map(net, 64), include_logits=False)]
        [('relu', 2), ('layer1', 4), ('layer2', 8), ('layer3', 16), ('layer4', 32)]
    """
    if objective not in REPORT_OBJECTIVES:
        raise GradvizError(f"unknown objective {objective!r}; valid: {', '.join(REPORT_OBJECTIVES)}")
    if layers is None:
        names = [row.name for row in lmap.stages] + ([LOGITS] if include_logits else [])
    else:
        names = [resolve_layer(model, layer)[0] for layer in layers]
    specs = []
    for name in names:
        stride = lmap.stride_of(name)
        if stride is None:
            raise GradvizError(f"layer {name} does not output a 4D feature map; choose a convolutional layer")
        specs.append(LayerSpec(name, stride, make_layer_objective(objective, name, channel_index)))
    return specs


def measure_layers(
    model: nn.Module,
    images: ImageSet | torch.Tensor,
    specs: list[LayerSpec],
    source: str = "gradient",
    batch_size: int = 8,
    seed: int = 0,
    progress: bool | None = None,
    alpha: float = 0.05,
) -> list[LayerResult]:
    """Gradients of every layer's objective for every image, accumulated into spectra and metrics.

    With ``source="gradient"`` all layers share one forward pass per batch; captum sources run
    per layer. ``images`` (a tensor or an :class:`ImageSet`, read batch by batch) stay on their
    device until their batch is moved to the model's. A gradient that is NaN or infinite is
    refused (the model's output is not finite); a layer whose gradient is zero for every image
    gets a note.

    Args:
        model: a frozen model on [0, 1] pixels.
        images: ``(N, 3, H, W)`` in [0, 1], or an :class:`ImageSet`.
        specs: the layers, periods and objectives (:func:`plan_layers`).
        source, batch_size, seed, progress, alpha: as in :func:`build_report`.

    Returns:
        One :class:`LayerResult` per spec, in order.

    Example:
        >>> from gradviz.core.layermap import layer_map
        >>> from gradviz.core.models import load_model
        >>> model = load_model("vgg11", "random", seed=0, device="cpu")
        >>> specs = plan_layers(model, ["features.2"], layer_map(model, 32))
        >>> [r] = measure_layers(model, torch.rand(2, 3, 32, 32), specs, progress=False)
        >>> r.name, r.stride, r.objective, tuple(r.incoherent_power.shape)
        ('features.2', 2, 'deepdream(features.2)', (32, 32))
    """
    GRADIENT_SOURCES[source]  # an unknown name raises the registry's one-line error
    device = model_device(model)
    accs = {spec.name: SpectrumAccumulator(spec.stride) for spec in specs}
    examples: dict[str, torch.Tensor] = {}
    image_set = images if isinstance(images, ImageSet) else ImageSet(images, [""] * images.shape[0])
    start = 0
    bar = tqdm(total=len(image_set), desc="gradients", unit="img", disable=None if progress is None else not progress)
    with bar, closing(image_set.batches(batch_size)) as batches:  # closed here on an error, not at exit
        for batch in batches:
            batch = batch.to(device)
            if source == "gradient":
                grads = input_gradients(model, batch, {s.name: s.objective for s in specs})
            else:
                grads = {s.name: attribution(model, batch, s.objective, source, seed + start) for s in specs}
            for name, g in grads.items():
                try:
                    accs[name].add(g)
                except NonFiniteGradient as exc:
                    first = image_set.names[start + exc.bad[0]] or str(start + exc.bad[0])
                    raise GradvizError(f"the gradient at layer {name} is NaN or infinite for image {first} "
                                       f"({len(exc.bad)} of this batch): the model's output is not finite there") from None
                examples.setdefault(name, g[0].detach().cpu())
            start += batch.shape[0]
            bar.update(batch.shape[0])
    return [
        LayerResult(
            name=s.name,
            stride=s.stride,
            objective=s.objective.name,
            metrics=accs[s.name].metrics(seed=seed, alpha=alpha),
            incoherent_power=accs[s.name].incoherent_power().cpu(),
            coherent_power=accs[s.name].coherent_power().cpu(),
            example_gradient=examples[s.name],
        )
        for s in specs
    ]


def check_report_fits(model: nn.Module, size: int, batch_size: int, n_layers: int = DEFAULT_LAYER_COUNT,
                      held_images: int = 0, probe: LayerMap | None = None) -> None:
    """Refuse (one line) a report whose estimated memory exceeds what the model's device has free.

    ``held_images``: images held in memory at ``size`` px besides the batches (the built-in set).
    ``probe``: the model's layer map at :data:`~gradviz.core.layermap.PROBE_SIZE` (made when None).
    """
    device = model_device(model)
    check_image_size(size, device, batch=max(batch_size, held_images))
    probe = layer_map(model, PROBE_SIZE) if probe is None else probe
    need = report_bytes(probe, size, batch_size, n_layers) + held_images * 3 * size * size * 4
    check_memory(need, device, f"a report at {size} px with batches of {batch_size}",
                 "choose a smaller --size or --batch-size")


def build_report(
    model: nn.Module,
    image_set: ImageSet,
    *,
    layers: list[str] | None = None,
    objective: str = "deepdream",
    channel_index: int = 0,
    source: str = "gradient",
    include_logits: bool | None = None,
    batch_size: int = 8,
    seed: int = 0,
    progress: bool | None = None,
    alpha: float = 0.05,
    probe: LayerMap | None = None,
) -> Report:
    """Measure ``model`` on ``image_set`` and return a :class:`Report` (nothing is written).

    Args:
        model: a frozen model on [0, 1] pixels (:func:`~gradviz.core.models.load_model`).
        image_set: the images (an :class:`~gradviz.io.images.ImageSet`, read batch by batch).
        layers: names or modules to measure; None for every downsampling stage (see :func:`plan_layers`).
        objective, channel_index: the objective on each layer (:data:`REPORT_OBJECTIVES`).
        source: a name in :data:`~gradviz.core.gradients.GRADIENT_SOURCES`.
        include_logits: None includes the logits unless the classifier alone is untrained
            (features-only weights); with random weights every layer is equally untrained.
        batch_size: images per forward pass.
        seed: seeds SmoothGrad's noise and the tests' null draws.
        progress: show a progress bar (None: only on a terminal).
        alpha: level of the grid verdicts.
        probe: the model's layer map at :data:`~gradviz.core.layermap.PROBE_SIZE`, when the caller
            has it (the memory check makes it otherwise).

    Returns:
        A :class:`Report` with one :class:`LayerResult` per measured layer.

    Example:
        >>> from gradviz.core.models import load_model
        >>> model = load_model("resnet18", "random", seed=0, device="cpu")
        >>> images = ImageSet(torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)), ["a", "b"], "noise")
        >>> report = build_report(model, images, progress=False)
        >>> [(layer.name, layer.stride) for layer in report.layers]
        [('relu', 2), ('layer1', 4), ('layer2', 8), ('layer3', 16), ('layer4', 32), ('logits', 32)]
        >>> report.layers[0].metrics.verdict[:4], tuple(report.layers[0].example_gradient.shape)
        ('grid', (3, 32, 32))
    """
    if batch_size < 1:
        raise GradvizError(f"batch size must be >= 1, got {batch_size}")
    check_finite_parameters(model)
    size = image_set.size
    probe = layer_map(model, PROBE_SIZE) if probe is None else probe
    check_report_fits(model, size, min(batch_size, len(image_set)), len(layers) if layers else DEFAULT_LAYER_COUNT,
                      probe=probe)
    lmap = layer_map_at(model, size, probe)
    top = lmap.total_stride
    if size < top:
        raise GradvizError(f"images of {size} px are smaller than the network's stride {top}")
    trained = getattr(model, "classifier_trained", True)
    notes = []
    if include_logits is None:
        include_logits = trained or str(getattr(model, "weights", "")).startswith("random")
        if not include_logits and layers is None:
            notes.append("the classifier is untrained (features-only weights): logits left out (--logits adds them)")
    specs = plan_layers(model, layers, lmap, objective, channel_index, include_logits)
    results = measure_layers(model, image_set, specs, source, batch_size, seed, progress, alpha)
    for r in results:
        if r.metrics.zero_gradient:
            notes.append(f"{r.name}: the gradient is zero for every image, so there is nothing to measure "
                         "(the objective does not depend on the input there, e.g. a channel that never fires)")
    return Report(
        model=getattr(model, "arch", type(model).__name__),
        weights=getattr(model, "weights", "custom"),
        images=image_set.source,
        n_images=len(image_set),
        image_size=size,
        seed=seed,
        device=str(model_device(model)),
        source=source,
        layers=results,
        notes=notes,
        alpha=alpha,
    )

