"""Optimisation stage: DeepDream-style feature visualisation with jitter and octaves.

The pipeline per step is parameterisation -> transforms -> model (taps) -> objective -> step:

    x = param()                          # image in [0, 1]           (gradviz.parameterization)
    v = objective(taps(transform(x)))    # one value per image, (B,)  (gradviz.transforms, taps, objectives)
    g = d sum(v) / d param               # frozen model: input gradients only
    param += lr * g / mean|g|            # "normalized" (DeepDream; mean per image), or Adam
    param.project()                      # pixels back into [0, 1]

**Octaves** (DeepDream): sizes ``s_0 = size``, ``s_{k+1} = round(s_k / octave_scale)``, run from the
smallest up. At each octave the image is ``base_k + resize(detail)`` with ``base_k`` the start
image resized to ``s_k`` and ``detail = x - base`` carried over from the octave before. The
smallest octave must be at least the model's total stride.

**History**: for every step, the objective (before the step) and the checkerboard metrics of that
step's update ``x_{t+1} - x_t``; :meth:`DreamResult.update_metrics` gives the metrics of the
accumulated update ``x_final - x_start``. The period is the stride of the objective's layer.

**Exact reference** (:func:`shift_averaged_gradient`): the gradient averaged over every circular
shift of one period, ``mean_{δ in Z_S^2} roll(∇f(roll(x, δ)), -δ)``, which removes any
grid-locked period-S pattern; jitter approximates it with a few random shifts.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, PngImagePlugin
from torch import nn
from tqdm import tqdm

import gradviz
from gradviz.errors import GradvizError
from gradviz.models import model_device
from gradviz.objectives import Objective
from gradviz.outputs import SOFTWARE, atomic_file, json_ready
from gradviz.parameterization import PARAMETERIZATIONS, make_parameterization
from gradviz.spectrum import CheckerboardMetrics, checkerboard_metrics
from gradviz.taps import LOGITS, Taps, check_layers_exist, layer_table, total_stride
from gradviz.transforms import Compose, Pad, RandomCrop, RandomRoll, RandomRotate, RandomScale, roll, unroll

OPTIMIZERS = ("normalized", "adam")
# DeepDream's step: 1.5 / mean|g| on 0..255 pixels, i.e. 1.5 / 255 on [0, 1] pixels.
NORMALIZED_LR = 1.5 / 255
# Lucid's and Lucent's Adam learning rate.
ADAM_LR = 0.05
# Guards the division by mean|g| when a gradient is exactly zero.
TINY = 1e-12
# Layer strides are read from one forward pass on a zero image of this size (a multiple of 32).
STRIDE_PROBE_SIZE = 64
# Images and shifts per batch in the exact shift average.
SHIFT_CHUNK = 16
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass
class DreamSettings:
    """Everything that controls one optimisation; ``lr=None`` takes the optimiser's default."""

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
        if self.steps < 1:
            raise GradvizError(f"steps must be >= 1, got {self.steps}")
        if self.optimizer not in OPTIMIZERS:
            raise GradvizError(f"unknown optimizer {self.optimizer!r}; valid: {', '.join(OPTIMIZERS)}")
        if self.parameterization not in PARAMETERIZATIONS:
            raise GradvizError(
                f"unknown parameterisation {self.parameterization!r}; valid: {', '.join(PARAMETERIZATIONS)}"
            )
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
        if self.lr is not None:
            return self.lr
        return NORMALIZED_LR if self.optimizer == "normalized" else ADAM_LR

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
    """One step: objective before it (mean over images, and per image) and its update's metrics."""

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


@dataclass
class DreamResult:
    """Final images (B, 3, H, W) in [0, 1], the start images, and the per-step history."""

    images: torch.Tensor
    start: torch.Tensor
    history: list[StepRecord]
    octave_sizes: list[int]
    stride: int  # period of the checkerboard metrics: the stride of the objective's layer
    objective: str
    settings: DreamSettings

    def update(self) -> torch.Tensor:
        """The accumulated update ``x_final - x_start``."""
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

    Raises GradvizError when the smallest is below ``min_size`` (the model's total stride).
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


def objective_stride(model: nn.Module, objective: Objective, probe: int = STRIDE_PROBE_SIZE) -> int:
    """The largest stride among the objective's layers (the total stride for ``logits``)."""
    check_layers_exist(model, objective.layers)
    table = {row.name: row.stride for row in layer_table(model, probe)}
    strides = [total_stride(model, probe) if name == LOGITS else table.get(name) for name in objective.layers]
    strides = [s for s in strides if s]
    if not strides:
        raise GradvizError(f"objective {objective.name} has no layer with a spatial output")
    return max(strides)


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of (B, C, H, W) to ``size`` x ``size`` (antialiased when shrinking)."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    shrink = size < images.shape[-1]
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=shrink)


def _normalized_step(params: list[torch.Tensor], grads: list[torch.Tensor], lr: float) -> None:
    """DeepDream's ascent step ``p += lr * g / mean|g|``, the mean taken per image."""
    for p, g in zip(params, grads):
        scale = g.abs().flatten(1).mean(1).clamp_min(TINY).view(-1, *([1] * (g.dim() - 1)))
        p.add_(lr * g / scale)


def dream(
    model: nn.Module,
    objective: Objective,
    start: torch.Tensor,
    settings: DreamSettings | None = None,
) -> DreamResult:
    """Maximise ``objective`` from ``start`` (B, 3, S, S) in [0, 1]; see the module docstring."""
    settings = settings or DreamSettings()
    settings.check()
    if start.dim() != 4 or start.shape[1] != 3 or start.shape[-1] != start.shape[-2]:
        raise GradvizError(f"start images must have shape (B, 3, S, S), got {tuple(start.shape)}")
    device = model_device(model)
    start = start.detach().to(device, torch.float32)
    stride = objective_stride(model, objective)
    sizes = octave_sizes(start.shape[-1], settings.octaves, settings.octave_scale, total_stride(model, STRIDE_PROBE_SIZE))
    transform = settings.transforms()
    gen = torch.Generator().manual_seed(settings.seed)
    history: list[StepRecord] = []
    detail = torch.zeros_like(resize(start, sizes[0]))
    bar = tqdm(total=settings.steps * len(sizes), desc="dream", disable=None if settings.progress else True, leave=False)
    with bar, Taps(model, objective.layers, stop=True) as taps, torch.enable_grad():
        for octave, size in enumerate(sizes):
            base = resize(start, size)
            param = make_parameterization(settings.parameterization, (base + resize(detail, size)).clamp(0, 1))
            params = list(param.parameters())
            adam = torch.optim.Adam(params, lr=settings.step_size, maximize=True) if settings.optimizer == "adam" else None
            before = param().detach().clone()  # a copy: the pixel parameter is updated in place
            for step in range(settings.steps):
                values = objective(taps.forward(transform(param(), gen)))
                if values.dim() != 1 or values.shape[0] != start.shape[0]:
                    raise GradvizError(f"objective {objective.name} must give one value per image, got {tuple(values.shape)}")
                grads = torch.autograd.grad(values.sum(), params)
                with torch.no_grad():
                    if adam is None:
                        _normalized_step(params, grads, settings.step_size)
                    else:
                        for p, g in zip(params, grads):
                            p.grad = g
                        adam.step()
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


def shift_averaged_gradient(model: nn.Module, images: torch.Tensor, objective: Objective, period: int) -> torch.Tensor:
    """``mean_{δ in Z_period^2} roll(∇f(roll(x, δ)), -δ)``: the exact reference for jitter (T9)."""
    from gradviz.gradients import input_gradient

    shifts = [(dy, dx) for dy in range(period) for dx in range(period)]
    total = torch.zeros_like(images)
    for i in range(0, len(shifts), SHIFT_CHUNK):
        chunk = shifts[i : i + SHIFT_CHUNK]
        grads = input_gradient(model, torch.cat([roll(images, s) for s in chunk]), objective)
        for s, g in zip(chunk, grads.split(images.shape[0])):
            total += unroll(g, s)
    return total / len(shifts)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [0, 1] -> one (H, B*W, 3) uint8 strip, images side by side."""
    strip = torch.cat(list(images.detach().clamp(0, 1).cpu()), dim=-1)
    return (strip.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)


def write_image(images: torch.Tensor, path: str | Path) -> None:
    """Write the batch side by side as one PNG or JPEG at ``path``, marked as gradviz's
    (a PNG text chunk or a JPEG comment; see :func:`gradviz.outputs.is_gradviz_file`)."""
    path = Path(path)
    mark = f"{SOFTWARE} {gradviz.__version__}"
    image = Image.fromarray(to_uint8(images))
    if path.suffix.lower() == ".png":
        info = PngImagePlugin.PngInfo()
        info.add_text("Software", mark)
        image.save(path, format="PNG", pnginfo=info)
    else:
        image.save(path, format="JPEG", comment=mark.encode())


def save_images(images: torch.Tensor, path: str | Path, guard: bool = False) -> None:
    """Write the batch side by side as one PNG or JPEG, atomically (see :func:`write_image`)."""
    path = Path(path)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise GradvizError(f"image output must end in {', '.join(IMAGE_SUFFIXES)}, got {path.name!r}")
    with atomic_file(path, guard=guard) as tmp:
        write_image(images, tmp)
