"""Gradient stage: the gradient of an objective with respect to the input pixels.

Only what is needed is computed: parameters are frozen (no parameter gradients), the forward
pass stops at the deepest layer the objectives use, and several objectives share one forward
pass (``input_gradients``). Attribution methods come from captum (``attribution``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import nn

from gradviz.core.objectives import Objective, as_objective
from gradviz.core.shift_average import choose_shifts, shift_average
from gradviz.core.taps import Taps
from gradviz.errors import GradvizError
from gradviz.registry import Registry


def input_gradients(
    model: nn.Module,
    images: torch.Tensor,
    objectives: Mapping[str, Objective],
    memory_format: torch.memory_format = torch.contiguous_format,
) -> dict[str, torch.Tensor]:
    """``{key: d objective / d images}`` for each objective, from one shared forward pass.

    The forward pass runs to the deepest layer any objective uses; one backward pass per
    objective follows; no parameter gradient is computed or touched.

    Args:
        model: a frozen model on pixels in [0, 1].
        images: the batch.
        objectives: ``{key: objective}``, each giving one value per image.
        memory_format: the layout the batch enters the model in; ``torch.channels_last`` makes
            the convolutions run in that layout (see :func:`preferred_memory_format`). The same
            gradients either way, to float rounding; they are returned contiguous.

    Returns:
        ``{key: gradient}``, detached.

    Shape:
        images ``(B, 3, H, W)`` -> each gradient ``(B, 3, H, W)``.

    Example:
        >>> from gradviz.core.objectives import channel, layer_mean
        >>> net = nn.Sequential(nn.Conv2d(3, 2, 1, bias=False)).requires_grad_(False)
        >>> _ = net[0].weight.copy_(torch.tensor([1.0, 2.0, 3.0, 0.0, 0.0, 1.0]).view(2, 3, 1, 1))
        >>> g = input_gradients(net, torch.rand(1, 3, 2, 2), {"c0": channel("0", 0), "mean": layer_mean("0")})
        >>> g["c0"][0, :, 0, 0].tolist(), g["mean"][0, :, 0, 0].tolist()   # weight / (H * W), then / (C * H * W)
        ([0.25, 0.5, 0.75], [0.125, 0.25, 0.5])
    """
    objectives = {key: as_objective(obj).bind(model) for key, obj in objectives.items()}  # modules -> names
    layers = [layer for obj in objectives.values() for layer in obj.layers]
    x = images.detach().clone(memory_format=memory_format).requires_grad_(True)
    keys = list(objectives)
    grads: dict[str, torch.Tensor] = {}
    with torch.enable_grad():
        with Taps(model, layers, stop=True) as taps:
            acts = taps.forward(x)
        for i, key in enumerate(keys):
            value = objectives[key](acts)
            if value.dim() != 1 or value.shape[0] != x.shape[0]:
                raise GradvizError(
                    f"objective {objectives[key].name} must give one value per image, got {tuple(value.shape)}"
                )
            (grad,) = torch.autograd.grad(value.sum(), x, retain_graph=i < len(keys) - 1)
            grads[key] = grad.contiguous()
    return grads


def preferred_memory_format(model: nn.Module) -> torch.memory_format:
    """``torch.channels_last`` for a model with 2-D convolutions, else the contiguous layout.

    Convolutions in the channels-last layout run faster on CPUs (oneDNN) and on recent GPUs:
    on the project's 2-core CPU, VGG16's gradients take 0.87 times as long as in the contiguous
    layout (``benchmarks/bench_report_end_to_end.py --parts``). Only the input batch is laid out
    so; the model is not changed.

    Example:
        >>> preferred_memory_format(nn.Sequential(nn.Conv2d(3, 4, 3))) is torch.channels_last
        True
        >>> preferred_memory_format(nn.Linear(3, 4)) is torch.contiguous_format
        True
    """
    has_conv = any(isinstance(m, nn.Conv2d) for m in model.modules())
    return torch.channels_last if has_conv else torch.contiguous_format


def input_gradient(model: nn.Module, images: torch.Tensor, objective: Objective) -> torch.Tensor:
    """``d objective / d images`` for a batch of images in [0, 1].

    Shape:
        images ``(B, 3, H, W)`` -> ``(B, 3, H, W)``.

    Example:
        >>> from gradviz.core.objectives import layer_mean
        >>> net = nn.Sequential(nn.Conv2d(3, 1, 1, bias=False)).requires_grad_(False)
        >>> _ = net[0].weight.fill_(0.5)
        >>> input_gradient(net, torch.rand(2, 3, 2, 2), layer_mean("0"))[0, 0].tolist()   # 0.5 / (H * W)
        [[0.125, 0.125], [0.125, 0.125]]
    """
    return input_gradients(model, images, {"g": objective})["g"]


class ObjectiveModule(nn.Module):
    """``forward(x)`` = the objective's values (B,): the forward function captum attributes."""

    def __init__(self, model: nn.Module, objective: Objective):
        super().__init__()
        self.model = model
        self.objective = as_objective(objective).bind(model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with Taps(self.model, self.objective.layers, stop=True) as taps:
            return self.objective(taps.forward(x))


# SmoothGrad defaults (Smilkov et al. 2017): noise std 15% of the [0, 1] pixel range, 16 samples.
SMOOTHGRAD_STDEV = 0.15
SMOOTHGRAD_SAMPLES = 16
# Integrated gradients: Riemann steps from a black baseline.
IG_STEPS = 32

# Gradient sources by the name the command line uses: ``fn(model, images, objective, seed)`` -> a
# signed map shaped like ``images``. All but ``gradient`` are captum's attribution methods.
GRADIENT_SOURCES: Registry[Callable[[nn.Module, torch.Tensor, Objective, int], torch.Tensor]] = Registry("gradient source")


@GRADIENT_SOURCES.register("gradient")
def _gradient(model: nn.Module, images: torch.Tensor, objective: Objective, seed: int = 0) -> torch.Tensor:
    """the plain input gradient (a report takes all its layers from one shared forward pass)"""
    return input_gradient(model, images, objective)


def _captum_input(model: nn.Module, images: torch.Tensor, objective: Objective):
    return ObjectiveModule(model, objective), images.detach().clone().requires_grad_(True)


@GRADIENT_SOURCES.register("saliency")
def _saliency(model: nn.Module, images: torch.Tensor, objective: Objective, seed: int = 0) -> torch.Tensor:
    """captum's Saliency with abs=False (equal to the plain gradient)"""
    from captum.attr import Saliency  # captum is imported only when a captum source is used

    forward, x = _captum_input(model, images, objective)
    with torch.enable_grad():
        return Saliency(forward).attribute(x, abs=False).detach()


@GRADIENT_SOURCES.register("integrated-gradients",
                           doc=f"captum's IntegratedGradients from a black baseline in {IG_STEPS} steps")
def _integrated_gradients(model: nn.Module, images: torch.Tensor, objective: Objective, seed: int = 0) -> torch.Tensor:
    from captum.attr import IntegratedGradients

    forward, x = _captum_input(model, images, objective)
    with torch.enable_grad():
        return IntegratedGradients(forward).attribute(x, baselines=0.0, n_steps=IG_STEPS).detach()


@GRADIENT_SOURCES.register("smoothgrad", doc=f"captum's NoiseTunnel over Saliency: {SMOOTHGRAD_SAMPLES} samples "
                                              f"of noise std {SMOOTHGRAD_STDEV}, seeded")
def _smoothgrad(model: nn.Module, images: torch.Tensor, objective: Objective, seed: int = 0) -> torch.Tensor:
    from captum.attr import NoiseTunnel, Saliency

    forward, x = _captum_input(model, images, objective)
    with torch.enable_grad(), torch.random.fork_rng(devices=[x.device] if x.is_cuda else []):
        torch.manual_seed(seed)  # captum draws the noise from torch's global generator
        out = NoiseTunnel(Saliency(forward)).attribute(
            x, nt_type="smoothgrad", nt_samples=SMOOTHGRAD_SAMPLES, stdevs=SMOOTHGRAD_STDEV, abs=False
        )
    return out.detach()


# The suffix that averages a source's map over circular shifts of the layer's period (gradviz.core.shift_average).
SHIFT_AVERAGE = "shift-average"
# Images per attribution call under shift averaging, counting a method's own copies (IntegratedGradients'
# steps, SmoothGrad's samples): the shifted copies then hold about as much memory as a batch of 16 images.
SHIFT_IMAGES_PER_PASS = 16
# Forward and backward passes each source makes per image.
SOURCE_PASSES = {"gradient": 1, "saliency": 1, "integrated-gradients": IG_STEPS, "smoothgrad": SMOOTHGRAD_SAMPLES}


def source_names() -> list[str]:
    """Every name ``--source`` takes: the :data:`GRADIENT_SOURCES`, ``shift-average`` (the plain
    gradient averaged over shifts) and ``METHOD+shift-average`` for each other source.

    Example:
        >>> source_names()[:5]
        ['gradient', 'saliency', 'integrated-gradients', 'smoothgrad', 'shift-average']
    """
    return list(GRADIENT_SOURCES) + [SHIFT_AVERAGE] + [f"{k}+{SHIFT_AVERAGE}" for k in GRADIENT_SOURCES if k != "gradient"]


def parse_source(source: str) -> tuple[str, bool]:
    """``(base source, shift-averaged?)`` of a name in :func:`source_names`; a one-line error for others.

    Example:
        >>> parse_source("saliency+shift-average"), parse_source("shift-average"), parse_source("smoothgrad")
        (('saliency', True), ('gradient', True), ('smoothgrad', False))
    """
    if source == SHIFT_AVERAGE:
        return "gradient", True
    base, plus, suffix = str(source).partition("+")
    if plus and suffix != SHIFT_AVERAGE or base not in GRADIENT_SOURCES or source == f"gradient+{SHIFT_AVERAGE}":
        raise GradvizError(f"unknown gradient source {source!r}; valid: {', '.join(source_names())}")
    return base, bool(plus)


def attribution(
    model: nn.Module,
    images: torch.Tensor,
    objective: Objective,
    source: str = "gradient",
    seed: int = 0,
    period: int | None = None,
    n_shifts: int | None = None,
) -> torch.Tensor:
    """A signed gradient map from one of :func:`source_names`.

    Args:
        model: a frozen model taking pixels in [0, 1].
        images: ``(B, 3, H, W)`` in [0, 1].
        objective: one value per image.
        source: a name in :data:`GRADIENT_SOURCES`, optionally ``+shift-average``d.
        seed: seeds SmoothGrad's noise and the draw of ``n_shifts`` shifts (the other sources draw nothing).
        period: the layer's period ``S``, for a shift-averaged source.
        n_shifts: a shift-averaged source's shifts: None for all ``S^2``, else at most this many (all
            ``S^2`` when that is no more, a seeded sample otherwise).

    Returns:
        ``(B, 3, H, W)``, detached.
    """
    base, averaged = parse_source(source)
    method = GRADIENT_SOURCES[base]
    if not averaged:
        return method(model, images, objective, seed)
    if period is None:
        raise GradvizError(f"source {source} averages over shifts of the layer's period; valid: give period=S")
    def attribute(batch: torch.Tensor, chunk) -> torch.Tensor:
        return method(model, batch, objective, seed)

    count = None if n_shifts is None or n_shifts >= period * period else n_shifts
    per_pass = max(1, SHIFT_IMAGES_PER_PASS // (images.shape[0] * SOURCE_PASSES.get(base, 1)))
    return shift_average(attribute, images, choose_shifts(period, count, seed), per_pass)
