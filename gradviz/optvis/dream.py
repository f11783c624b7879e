"""Optimisation stage: DeepDream-style feature visualisation with jitter and octaves.

The pipeline per step is parameterisation -> transforms -> model (taps) -> objective -> step:

    x = param()                          # image in [0, 1]           (gradviz.optvis.parameterization)
    v = objective(taps(transform(x)))    # one value per image, (B,)  (gradviz.optvis.transforms, taps, objectives)
    g = d sum(v) / d param               # frozen model: input gradients only
    param += lr * g / mean|g|            # "normalized" (DeepDream; mean per image), or Adam (gradviz.optvis.optimizers)
    param.project()                      # pixels back into [0, 1]

**Octaves** (DeepDream): sizes ``s_0 = size``, ``s_{k+1} = round(s_k / octave_scale)``, run from the
smallest up. At each octave the image is ``base_k + resize(detail)`` with ``base_k`` the start
image resized to ``s_k`` and ``detail = x - base`` carried over from the octave before. The
smallest octave must be at least the model's total stride.

**History**: for every step, the objective (before the step) and the checkerboard metrics of that
step's update ``x_{t+1} - x_t``; :meth:`DreamResult.update_metrics` gives the metrics of the
accumulated update ``x_final - x_start``. The period is the stride of the objective's layer, read
with the total stride from one :class:`~gradviz.core.layermap.LayerMap` at ``PROBE_SIZE``.

The exact reference that jitter approximates is in :mod:`gradviz.optvis.reference`; writing the
images, in :mod:`gradviz.optvis.render`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from gradviz.core.layermap import PROBE_SIZE, LayerMap, layer_map, probe_map
from gradviz.core.models import model_device
from gradviz.core.objectives import Objective, as_objective
from gradviz.core.taps import Taps, check_layers_exist
from gradviz.errors import GradvizError
from gradviz.io.outputs import json_ready
from gradviz.optvis.optimizers import OPTIMIZERS
from gradviz.optvis.parameterization import PARAMETERIZATIONS, make_parameterization
from gradviz.optvis.transforms import Compose, Pad, RandomCrop, RandomRoll, RandomRotate, RandomScale
from gradviz.spectrum import CheckerboardMetrics, checkerboard_metrics

__all__ = [
    "DreamResult",
    "DreamSettings",
    "StepRecord",
    "dream",
    "objective_stride",
    "octave_sizes",
    "resize",
]


@dataclass
class DreamSettings:
    """Everything that controls one optimisation; ``lr=None`` takes the optimiser's default.

    Attributes:
        steps: steps per octave.
        optimizer: a name in :data:`OPTIMIZERS`.
        lr: the step size (None: the optimiser's ``default_lr``).
        jitter: DeepDream's roll range ``d``: offsets in ``[-d, d]``.
        crop_jitter: Lucid's jitter: pad by this and crop at an offset in ``[0, 2 * crop_jitter]``.
        scales: random scale factors (empty: none).
        angles: random rotation angles in degrees (empty: none).
        octaves: the number of octaves.
        octave_scale: the size ratio between octaves (> 1).
        parameterization: a name in :data:`~gradviz.optvis.parameterization.PARAMETERIZATIONS`.
        seed: the seed of the local generator every transform draws from.
        progress: show a progress bar.
        track_metrics: record the checkerboard metrics of every step's update.
        custom_transforms: when set, replaces the transforms built from the fields above.

    Example:
        >>> s = DreamSettings(optimizer="adam", jitter=2)
        >>> s.step_size, [type(t).__name__ for t in s.transforms().transforms]  # ADAM_LR
        (0.05, ['RandomRoll'])
        >>> DreamSettings(optimizer="sgd").check()
        Traceback (most recent call last):
        ...
        gradviz.errors.GradvizError: unknown optimizer 'sgd'; valid: normalized, adam
    """

    steps: int = 20
    optimizer: str = "normalized"
    lr: float | None = None
    jitter: int = 0  # DeepDream roll range d: offsets in [-d, d]
    crop_jitter: int = 0  # Lucid jitter: pad by this and crop at an offset in [0, 2 * it]
    scales: tuple[float, ...] = ()  # random scale factors (empty: none)
    angles: tuple[float, ...] = ()  # random rotation angles in degrees (empty: none)
    octaves: int = 1
    octave_scale: float = 1.4
    parameterization: str = "pixel"
    seed: int = 0
    progress: bool = True
    track_metrics: bool = True  # per-step checkerboard metrics of the update
    custom_transforms: Compose | None = None  # when set, replaces the transforms built from the fields above

    def check(self) -> None:
        """Raise a one-line GradvizError for the first invalid field."""
        if self.steps < 1:
            raise GradvizError(f"steps must be >= 1, got {self.steps}")
        OPTIMIZERS[self.optimizer]  # an unknown name: "unknown optimizer ...; valid: ..."
        PARAMETERIZATIONS[self.parameterization]
        if self.jitter < 0 or self.crop_jitter < 0:
            raise GradvizError(f"jitter ranges must be >= 0, got {self.jitter} and {self.crop_jitter}")
        if self.octaves < 1:
            raise GradvizError(f"octaves must be >= 1, got {self.octaves}")
        if not (math.isfinite(self.octave_scale) and self.octave_scale > 1):
            raise GradvizError(f"octave scale must be a finite number > 1, got {self.octave_scale}")
        if self.lr is not None and not (math.isfinite(self.lr) and self.lr > 0):
            raise GradvizError(f"lr must be a finite number > 0, got {self.lr}")
        if not all(math.isfinite(v) and v > 0 for v in self.scales):
            raise GradvizError(f"scales must be finite numbers > 0, got {list(self.scales)}")
        if not all(math.isfinite(v) for v in self.angles):
            raise GradvizError(f"angles must be finite numbers (degrees), got {list(self.angles)}")

    @property
    def step_size(self) -> float:
        """``lr``, or the optimiser's ``default_lr`` when it is None (see :data:`OPTIMIZERS`)."""
        if self.lr is not None:
            return self.lr
        return OPTIMIZERS[self.optimizer].default_lr

    def transforms(self) -> Compose:
        """Roll jitter, pad-and-crop jitter, random scale, random rotation, in that order."""
        if self.custom_transforms is not None:
            return self.custom_transforms
        parts: list = [RandomRoll(self.jitter)]
        if self.crop_jitter:
            parts += [Pad(self.crop_jitter), RandomCrop(2 * self.crop_jitter)]
        if self.scales:
            parts.append(RandomScale(self.scales))
        if self.angles:
            parts.append(RandomRotate(self.angles))
        return Compose(parts)


@dataclass
class StepRecord:
    """One step: the objective before it (mean over images, and per image) and its update's metrics.

    The metric fields are those of :class:`~gradviz.spectrum.CheckerboardMetrics` for the update
    ``x_{t+1} - x_t`` (no null draws); they stay empty when metrics are off or the octave is
    smaller than the period.
    """

    octave: int
    step: int
    size: int
    objective: float
    values: list[float]
    lattice_fraction: float | None = None
    octave_fractions: list[float] = field(default_factory=list)
    tile_contrast: float | None = None
    lattice_excess: float | None = None
    octave_excess: list[float] = field(default_factory=list)

    def __repr__(self) -> str:
        share = "" if self.lattice_fraction is None else f", lattice_share={self.lattice_fraction:.3g}"
        return f"StepRecord(octave={self.octave}, step={self.step}, size={self.size}, objective={self.objective:.4g}{share})"


@dataclass
class DreamResult:
    """What :func:`dream` returns.

    Attributes:
        images: the final images, (B, 3, H, W) in [0, 1].
        start: the start images, (B, 3, H, W).
        history: one :class:`StepRecord` per step, octave by octave.
        octave_sizes: the image side of each octave, smallest first.
        stride: the period of the checkerboard metrics: the stride of the objective's layer.
        objective: the objective's name.
        settings: the settings it ran with.
    """

    images: torch.Tensor
    start: torch.Tensor
    history: list[StepRecord]
    octave_sizes: list[int]
    stride: int
    objective: str
    settings: DreamSettings

    def __repr__(self) -> str:
        b, _, h, w = self.images.shape
        first, last = (self.history[0].objective, self.history[-1].objective) if self.history else (math.nan, math.nan)
        name = self.objective if len(self.objective) <= 60 else self.objective[:57] + "..."
        return (f"DreamResult({b} images at {h}x{w} px, objective={name!r}, {len(self.octave_sizes)} octaves "
                f"({self.octave_sizes[0]}..{self.octave_sizes[-1]} px), {len(self.history)} steps, S={self.stride}, "
                f"value {first:.4g} -> {last:.4g})")

    def update(self) -> torch.Tensor:
        """The accumulated update ``x_final - x_start``, (B, 3, H, W)."""
        return self.images - self.start

    @property
    def stalled(self) -> bool:
        """True when the images never moved: the objective's gradient was zero at every step
        (typically a channel that never fires after a ReLU)."""
        return bool((self.update() == 0).all())

    def update_metrics(self) -> CheckerboardMetrics:
        """Checkerboard metrics of the accumulated update (pooled over the batch)."""
        return checkerboard_metrics(self.update(), self.stride)

    def to_dict(self) -> dict:
        """JSON-ready summary: settings, octave sizes, history, metrics of the accumulated update."""
        return json_ready({
            "objective": self.objective,
            "stride": self.stride,
            "octave_sizes": self.octave_sizes,
            "settings": asdict(self.settings),
            "update_metrics": self.update_metrics().to_dict(),
            "history": [asdict(r) for r in self.history],
        })


def octave_sizes(size: int, octaves: int, scale: float, min_size: int = 1) -> list[int]:
    """Octave image sizes, smallest first: ``s_0 = size``, ``s_{k+1} = round(s_k / scale)``.

    Args:
        size: the final (largest) image side.
        octaves: how many sizes.
        scale: the ratio between neighbours.
        min_size: the smallest valid side (the model's total stride).

    Returns:
        ``octaves`` sizes, smallest first, ending in ``size``.

    Raises:
        GradvizError: the smallest is below ``min_size``.

    Example:
        >>> octave_sizes(224, 4, 1.4)
        [81, 114, 160, 224]
    """
    sizes = [size]
    for _ in range(octaves - 1):
        sizes.append(round(sizes[-1] / scale))
    if sizes[-1] < min_size:
        fits = sum(1 for s in sizes if s >= min_size)
        raise GradvizError(
            f"smallest octave is {sizes[-1]} px, smaller than the model's total stride {min_size}; "
            f"valid: at most {fits} octaves at scale {scale} for a {size} px image, or a larger image"
        )
    return sizes[::-1]


def objective_stride(model: nn.Module, objective: Objective, probe: LayerMap | None = None) -> int:
    """The largest stride among the objective's layers (the total stride for ``logits``).

    Args:
        model: the model; every layer of the objective must exist in it.
        objective: the objective.
        probe: the model's layer map (default: ``layer_map(model, PROBE_SIZE)``, one forward pass).

    Returns:
        The period of the objective's grid.

    Raises:
        GradvizError: an unknown layer, or no layer of the objective with a spatial output.

    Example:
        >>> from gradviz.core.objectives import channel
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        >>> objective_stride(net, channel("1", 0)), objective_stride(net, channel("1", 0) + channel("2", 0))
        (2, 4)
    """
    check_layers_exist(model, objective.layers)
    probe = probe if probe is not None else layer_map(model, PROBE_SIZE)
    strides = [s for s in (probe.stride_of(name) for name in objective.layers) if s]
    if not strides:
        raise GradvizError(f"objective {objective.name} has no layer with a spatial output")
    return max(strides)


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of a batch to ``size`` x ``size`` (antialiased when shrinking).

    Args:
        images: the batch; returned as is when it already has that size.
        size: the new side.

    Shape:
        (B, C, H, W) -> (B, C, size, size).

    Example:
        >>> resize(torch.ones(1, 3, 8, 8), 5).shape
        torch.Size([1, 3, 5, 5])
    """
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    shrink = size < images.shape[-1]
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=shrink)


def dream(
    model: nn.Module,
    objective: Objective,
    start: torch.Tensor,
    settings: DreamSettings | None = None,
    probe: LayerMap | None = None,
) -> DreamResult:
    """Maximise ``objective`` from ``start`` (see the module docstring).

    Args:
        model: a frozen model on pixels in [0, 1].
        objective: one value per image.
        start: the start images in [0, 1].
        settings: default :class:`DreamSettings`.
        probe: the model's probe map when the caller has one (default: :func:`~gradviz.core.layermap.probe_map`
            at the start images' size, made here once), for the objective's period and the model's total stride.

    Returns:
        A :class:`DreamResult`; the model's hooks are removed whatever happens.

    Shape:
        start: (B, 3, S, S); ``result.images``: (B, 3, S, S).

    Example:
        >>> from gradviz.core.objectives import deepdream
        >>> conv = nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=False)
        >>> _ = nn.init.normal_(conv.weight, generator=torch.Generator().manual_seed(0))
        >>> net = nn.Sequential(conv, nn.ReLU(), nn.MaxPool2d(2)).requires_grad_(False)
        >>> start = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
        >>> settings = DreamSettings(steps=2, jitter=2, octaves=2, progress=False, track_metrics=False)
        >>> result = dream(net, deepdream("2"), start, settings)
        >>> result.octave_sizes, result.stride, len(result.history), result.images.shape
        ([11, 16], 4, 4, torch.Size([2, 3, 16, 16]))
        >>> result.history[-1].objective > result.history[0].objective
        True
    """
    settings = settings or DreamSettings()
    settings.check()
    if start.dim() != 4 or start.shape[1] != 3 or start.shape[-1] != start.shape[-2]:
        raise GradvizError(f"start images must have shape (B, 3, S, S), got {tuple(start.shape)}")
    device = model_device(model)
    start = start.detach().to(device, torch.float32)
    objective = as_objective(objective).bind(model)  # module references -> dotted names
    check_layers_exist(model, objective.layers)  # before the probe pass: an unknown layer fails first
    probe = probe if probe is not None else probe_map(model, start.shape[-1])
    stride = objective_stride(model, objective, probe)
    sizes = octave_sizes(start.shape[-1], settings.octaves, settings.octave_scale, probe.total_stride)
    transform = settings.transforms()
    make_step = OPTIMIZERS[settings.optimizer]
    gen = torch.Generator().manual_seed(settings.seed)
    history: list[StepRecord] = []
    detail = torch.zeros_like(resize(start, sizes[0]))
    bar = tqdm(total=settings.steps * len(sizes), desc="dream", disable=None if settings.progress else True, leave=False)
    with bar, Taps(model, objective.layers, stop=True) as taps, torch.enable_grad():
        for octave, size in enumerate(sizes):
            base = resize(start, size)
            param = make_parameterization(settings.parameterization, (base + resize(detail, size)).clamp(0, 1))
            params = list(param.parameters())
            step_params = make_step(params, settings.step_size)
            before = param().detach().clone()  # a copy: the pixel parameter is updated in place
            for step in range(settings.steps):
                values = objective(taps.forward(transform(param(), gen)))
                if values.dim() != 1 or values.shape[0] != start.shape[0]:
                    raise GradvizError(f"objective {objective.name} must give one value per image, got {tuple(values.shape)}")
                grads = torch.autograd.grad(values.sum(), params)
                with torch.no_grad():
                    step_params(grads)
                    param.project()
                    after = param().detach().clone()
                history.append(_record(octave, step, size, values, after - before, stride, settings.track_metrics))
                before = after
                bar.update()
            detail = before - base
    return DreamResult(before, start, history, sizes, stride, objective.name, settings)


def _record(octave: int, step: int, size: int, values: torch.Tensor, update: torch.Tensor, stride: int, metrics: bool) -> StepRecord:
    vals = [float(v) for v in values.detach().cpu()]
    record = StepRecord(octave, step, size, float(np.mean(vals)), vals)
    if metrics and size >= stride:
        m = checkerboard_metrics(update, stride, n_null=0)  # per step: excess only, no null draws
        record.lattice_fraction, record.octave_fractions, record.tile_contrast = (
            m.lattice_fraction,
            m.octave_fractions,
            m.tile_contrast,
        )
        record.lattice_excess, record.octave_excess = m.lattice_excess, m.octave_excess
    return record
