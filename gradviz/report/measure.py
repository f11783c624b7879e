"""Report, measuring half: plan the layers, take the gradients of one objective per layer over a
set of images, and accumulate them into spectra and checkerboard metrics. Nothing is drawn or
written here (see :mod:`gradviz.report.render`).

Data path: model -> layer map -> taps -> gradients -> spectrum -> :class:`Report`. Spectra are
accumulated per batch (:class:`~gradviz.spectrum.SpectrumAccumulator`), so memory does not grow
with the number of images.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from gradviz.core.budget import check_image_size, check_memory, report_bytes
from gradviz.core.distributed import Group, gather_accumulators, gather_first, shard_bounds
from gradviz.core.gradients import (
    SHIFT_IMAGES_PER_PASS,
    attribution,
    input_gradients,
    parse_source,
    preferred_memory_format,
)
from gradviz.core.layermap import LayerMap, probe_map
from gradviz.core.models import as_pixel_model, check_finite_parameters, eval_mode, model_device
from gradviz.core.objectives import OBJECTIVES, Objective, class_logit
from gradviz.core.precision import check_precision, compute_precision
from gradviz.core.taps import LOGITS, resolve_layer
from gradviz.errors import GradvizError
from gradviz.io.image_inputs import as_image_set
from gradviz.io.images import ImageSet
from gradviz.report.result import LayerResult, Report, versions
from gradviz.spectrum import NonFiniteGradient, SpectrumAccumulator

__all__ = ["DEFAULT_LAYER_COUNT", "REPORT_OBJECTIVES", "LayerResult", "LayerSpec", "Report", "build_report",
           "check_report_fits", "make_layer_objective", "measure_layers", "plan_layers", "versions"]

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
        specs.append(LayerSpec(name, lmap.period(name), make_layer_objective(objective, name, channel_index)))
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
    group: Group | None = None,
    precision: str = "float32",
    n_shifts: int | None = None,
) -> list[LayerResult]:
    """Gradients of every layer's objective for every image, accumulated into spectra and metrics.

    With ``source="gradient"`` all layers share one forward pass per batch, in the channels-last
    layout for a convolutional model (:func:`~gradviz.core.gradients.preferred_memory_format`);
    captum sources run per layer. ``images`` (a tensor or an :class:`ImageSet`, read batch by batch) stay on their
    device until their batch is moved to the model's. A gradient that is NaN or infinite is
    refused (the model's output is not finite); a layer whose gradient is zero for every image
    gets a note.

    Args:
        model: a frozen model on [0, 1] pixels.
        images: ``(N, 3, H, W)`` in [0, 1], or an :class:`ImageSet` (any form
            :func:`~gradviz.io.image_inputs.as_image_set` takes).
        specs: the layers, periods and objectives (:func:`plan_layers`).
        source, batch_size, seed, progress, alpha, group, precision, n_shifts: as in :func:`build_report`.

    Returns:
        One :class:`LayerResult` per spec, in order (on every rank of a distributed run, all ranks' images).

    Example:
        >>> from gradviz.core.layermap import layer_map
        >>> from gradviz.core.models import load_model
        >>> model = load_model("vgg11", "random", seed=0, device="cpu")
        >>> specs = plan_layers(model, ["features.2"], layer_map(model, 32))
        >>> [r] = measure_layers(model, torch.rand(2, 3, 32, 32), specs, progress=False)
        >>> r.name, r.stride, r.objective, tuple(r.incoherent_power.shape)
        ('features.2', 2, 'deepdream(features.2)', (32, 32))
    """
    parse_source(source)  # an unknown name raises a one-line error
    device = model_device(model)
    check_precision(precision, device)
    accs = {spec.name: SpectrumAccumulator(spec.stride) for spec in specs}
    examples: dict[str, torch.Tensor] = {}
    image_set = as_image_set(images)
    layout = preferred_memory_format(model)
    start = 0
    if group is not None:  # this rank's contiguous share; image names keep their global index
        start, stop = shard_bounds(len(image_set), group.rank, group.world_size)
        image_set = image_set.shard(start, stop)
        progress = progress if group.is_main else False
    offset = start
    bar = tqdm(total=image_set.count, desc="gradients", unit="img", disable=None if progress is None else not progress)
    with bar, closing(image_set.batches(batch_size)) as batches:  # closed here on an error, not at exit
        for batch in batches:
            batch = batch.to(device)
            with compute_precision(precision, device):
                if source == "gradient":
                    grads = input_gradients(model, batch, {s.name: s.objective for s in specs}, layout)
                else:
                    grads = {s.name: attribution(model, batch, s.objective, source, seed + start, s.stride, n_shifts)
                             for s in specs}
            for name, g in grads.items():
                try:
                    accs[name].add(g)
                except NonFiniteGradient as exc:
                    first = image_set.name(start - offset + exc.bad[0])
                    raise GradvizError(f"the gradient at layer {name} is NaN or infinite for image {first} "
                                       f"({len(exc.bad)} of this batch): the model's output is not finite there") from None
                examples.setdefault(name, g[0].detach().cpu())
            start += batch.shape[0]
            bar.update(batch.shape[0])
    if group is not None:
        accs = gather_accumulators(group, accs)
        examples = {s.name: gather_first(group, examples.get(s.name)) for s in specs}
    return [
        LayerResult(
            name=s.name,
            stride=s.stride,
            objective=s.objective.name,
            metrics=accs[s.name].metrics(seed=seed, alpha=alpha),
            incoherent_power=accs[s.name].incoherent_power().cpu(),
            coherent_power=accs[s.name].coherent_power().cpu(),
            example_gradient=examples[s.name],
            periodic_power=accs[s.name].periodic_power().cpu(),
        )
        for s in specs
    ]


def check_report_fits(model: nn.Module, size: int, batch_size: int, n_layers: int = DEFAULT_LAYER_COUNT,
                      held_images: int = 0, probe: LayerMap | None = None) -> None:
    """Refuse (one line) a report whose estimated memory exceeds what the model's device has free.

    ``held_images``: images held in memory at ``size`` px besides the batches (the built-in set).
    ``probe``: the model's probe map (:func:`~gradviz.core.layermap.probe_map`; made when None).
    """
    device = model_device(model)
    check_image_size(size, device, batch=max(batch_size, held_images))
    probe = probe_map(model, size) if probe is None else probe
    need = report_bytes(probe, size, batch_size, n_layers) + held_images * 3 * size * size * 4
    check_memory(need, device, f"a report at {size} px with batches of {batch_size}",
                 "choose a smaller --size or --batch-size")


def build_report(
    model: nn.Module,
    images,
    *,
    layers: Sequence[str | nn.Module] | str | nn.Module | None = None,
    normalize: str | tuple | None = None,
    size: int | None = None,
    objective: str = "deepdream",
    channel_index: int = 0,
    source: str = "gradient",
    include_logits: bool | None = None,
    batch_size: int = 8,
    seed: int = 0,
    progress: bool | None = None,
    alpha: float = 0.05,
    probe: LayerMap | None = None,
    group: Group | None = None,
    precision: str = "float32",
    n_shifts: int | None = None,
) -> Report:
    """Measure ``model`` on ``images`` and return a :class:`Report` (nothing is written).

    The model is measured in eval mode (a model in train mode is switched for the measurement and
    restored after, with a note); gradients are with respect to RGB pixels in [0, 1].

    Args:
        model: any ``nn.Module`` taking images: a :class:`~gradviz.core.models.PixelModel`
            (:func:`~gradviz.core.models.load_model`) as it is, any other module wrapped by
            :func:`~gradviz.core.models.as_pixel_model` with ``normalize`` (neither copied nor changed).
        images: a ``(B, 3, H, W)`` float tensor in [0, 1], an :class:`~gradviz.io.images.ImageSet`,
            a list of image paths, a folder path, or a ``DataLoader`` yielding such tensors or
            ``(tensor, label)`` pairs (streamed batch by batch). Square images of one size.
        layers: names or modules to measure (one name or module alone is fine); None for every
            downsampling stage (see :func:`plan_layers`).
        normalize: the normalisation inside the model for a plain module: None (ImageNet's),
            ``"imagenet"``, ``"none"``, ``"MEAN,STD"`` or a ``(mean, std)`` pair.
        size: the side files are resized to (None: 224); other images keep their size.
        objective, channel_index: the objective on each layer (:data:`REPORT_OBJECTIVES`).
        source: a name in :func:`~gradviz.core.gradients.source_names`: a gradient source, or one
            averaged over circular shifts of each layer's period (``shift-average``,
            ``saliency+shift-average``, ...: see :mod:`gradviz.core.shift_average`), which removes the grid.
        include_logits: None includes the logits unless the classifier alone is untrained
            (features-only weights); with random weights every layer is equally untrained.
        batch_size: images per forward pass (a DataLoader keeps its own).
        seed: seeds SmoothGrad's noise, the draw of ``n_shifts`` shifts and the tests' null draws.
        progress: show a progress bar (None: on a terminal or in Jupyter, not in a pipe or log).
        alpha: level of the grid verdicts.
        probe: the model's layer map at :data:`~gradviz.core.layermap.PROBE_SIZE`, when the caller
            has it (the memory check makes it otherwise).
        group: this process's place in a distributed run (:func:`gradviz.core.distributed.from_environment`):
            each rank measures its share of the images and every rank returns the whole report.
        precision: the arithmetic of the network's passes, a key of
            :data:`~gradviz.core.precision.PRECISIONS` (the meter itself is float64 either way).
        n_shifts: with a shift-averaged source, the shifts per layer: None for all ``S x S`` (the grid
            cancels exactly), else at most this many (a seeded sample where ``S x S`` is more).

    Returns:
        A :class:`Report` with one :class:`LayerResult` per measured layer.

    Example:
        >>> import torchvision
        >>> net = torchvision.models.resnet18()                   # any module; ImageNet normalisation added
        >>> report = build_report(net, torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)),
        ...                       layers=[net.layer1, "layer2"], progress=False)
        >>> [(layer.name, layer.stride) for layer in report.layers], report.notes
        ([('layer1', 4), ('layer2', 8)], ['the model was in train mode: measured in eval mode, then put back in train mode'])
        >>> report.layers[0].metrics.verdict[:4], tuple(report.layers[0].example_gradient.shape), net.training
        ('grid', (3, 32, 32), True)
    """
    if batch_size < 1:
        raise GradvizError(f"batch size must be >= 1, got {batch_size}")
    model = as_pixel_model(model, normalize)
    check_precision(precision, model_device(model))
    if not parse_source(source)[1] and n_shifts is not None:
        raise GradvizError(f"n_shifts={n_shifts} applies to a shift-averaged source, not {source}; "
                           "valid: a source ending in shift-average, or n_shifts=None")
    if n_shifts is not None and (isinstance(n_shifts, bool) or not isinstance(n_shifts, int) or n_shifts < 1):
        raise GradvizError(f"n_shifts must be a whole number >= 1 or None (all), got {n_shifts!r}")
    check_finite_parameters(model)
    layers = [layers] if isinstance(layers, (str, nn.Module)) else layers
    if layers is not None and not len(layers):
        raise GradvizError("layers=[] names no layer; valid: None (every downsampling stage) or layer names or modules")
    image_set = as_image_set(images, size)  # checked before any forward pass; files: headers only, pixels later
    with eval_mode(model) as was_training:
        probe = probe_map(model, image_set.size) if probe is None else probe
        per_pass = getattr(image_set.loader, "batch_size", None) or min(batch_size, image_set.count or batch_size)
        if parse_source(source)[1]:  # shifted copies go through the model together, up to SHIFT_IMAGES_PER_PASS
            per_pass = max(per_pass, SHIFT_IMAGES_PER_PASS)
        check_report_fits(model, image_set.size, per_pass, len(layers) if layers else DEFAULT_LAYER_COUNT, probe=probe)
        lmap = probe.for_images(image_set.size)  # strides from the probe: no pass at the images' size
        if image_set.size < probe.total_stride:
            raise GradvizError(f"images of {image_set.size} px are smaller than the network's stride {probe.total_stride}")
        notes = ["the model was in train mode: measured in eval mode, then put back in train mode"] if was_training else []
        if include_logits is None:
            include_logits = getattr(model, "classifier_trained", True) or str(getattr(model, "weights", "")).startswith("random")
            if not include_logits and layers is None:
                notes.append("the classifier is untrained (features-only weights): logits left out (--logits adds them)")
        specs = plan_layers(model, layers, lmap, objective, channel_index, include_logits)
        if group is not None and image_set.loader is not None:
            raise GradvizError("a DataLoader cannot be split between processes; valid under torchrun: a tensor, "
                               "an ImageSet, image files or a folder")
        results = measure_layers(model, image_set, specs, source, batch_size, seed, progress, alpha, group, precision,
                                 n_shifts)
    if parse_source(source)[1]:
        count = "all S x S" if n_shifts is None else f"at most {n_shifts} (seeded)"
        notes.append(f"source {source}: each layer's map is averaged over {count} circular shifts of its period S, "
                     "which cancels a grid locked to that period")
    distributed = None
    if group is not None:
        bounds = [shard_bounds(len(image_set), r, group.world_size) for r in range(group.world_size)]
        counts = [stop - start for start, stop in bounds]
        distributed = {"world_size": group.world_size, "images_per_rank": counts}
    for r in results:
        if r.metrics.zero_gradient:
            notes.append(f"{r.name}: the gradient is zero for every image, so there is nothing to measure "
                         "(the objective does not depend on the input there, e.g. a channel that never fires)")
    return Report(
        model=getattr(model, "arch", type(model).__name__),
        weights=getattr(model, "weights", "custom"),
        images=image_set.source,
        n_images=image_set.count if image_set.count is not None else results[0].metrics.n_images,
        image_size=image_set.size,
        seed=seed,
        device=str(model_device(model)),
        source=source,
        layers=results,
        notes=notes,
        alpha=alpha,
        normalize=getattr(model, "normalize", ""),
        distributed=distributed,
        precision=precision,
    )
