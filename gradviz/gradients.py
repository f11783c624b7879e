"""Gradient stage: the gradient of an objective with respect to the input pixels.

Only what is needed is computed: parameters are frozen (no parameter gradients), the forward
pass stops at the deepest layer the objectives use, and several objectives share one forward
pass (``input_gradients``). Attribution methods come from captum (``attribution``).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from gradviz.errors import GradvizError
from gradviz.objectives import Objective
from gradviz.taps import Taps


def input_gradients(
    model: nn.Module, images: torch.Tensor, objectives: Mapping[str, Objective]
) -> dict[str, torch.Tensor]:
    """``{key: d objective / d images}`` for each objective, from one shared forward pass.

    ``images`` is (B, 3, H, W) in [0, 1]; each gradient has the same shape. The forward pass
    runs to the deepest layer any objective uses; one backward pass per objective follows.
    """
    layers = [layer for obj in objectives.values() for layer in obj.layers]
    x = images.detach().clone().requires_grad_(True)
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
            (grads[key],) = torch.autograd.grad(value.sum(), x, retain_graph=i < len(keys) - 1)
    return grads


def input_gradient(model: nn.Module, images: torch.Tensor, objective: Objective) -> torch.Tensor:
    """``d objective / d images`` for a batch (B, 3, H, W) of images in [0, 1]."""
    return input_gradients(model, images, {"g": objective})["g"]


class ObjectiveModule(nn.Module):
    """``forward(x)`` = the objective's values (B,): the forward function captum attributes."""

    def __init__(self, model: nn.Module, objective: Objective):
        super().__init__()
        self.model = model
        self.objective = objective

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with Taps(self.model, self.objective.layers, stop=True) as taps:
            return self.objective(taps.forward(x))


# Gradient sources: the plain gradient (ours) and captum's attribution methods.
GRADIENT_SOURCES = ("gradient", "saliency", "integrated-gradients", "smoothgrad")

# SmoothGrad defaults (Smilkov et al. 2017): noise std 15% of the [0, 1] pixel range, 16 samples.
SMOOTHGRAD_STDEV = 0.15
SMOOTHGRAD_SAMPLES = 16
# Integrated gradients: Riemann steps from a black baseline.
IG_STEPS = 32


def attribution(
    model: nn.Module, images: torch.Tensor, objective: Objective, source: str = "gradient", seed: int = 0
) -> torch.Tensor:
    """A signed gradient map from one of ``GRADIENT_SOURCES`` (captum for all but ``"gradient"``).

    ``saliency`` is captum's Saliency with ``abs=False`` (equal to ``"gradient"``);
    ``integrated-gradients`` uses a black baseline and ``IG_STEPS`` steps; ``smoothgrad`` is
    NoiseTunnel over Saliency with ``SMOOTHGRAD_SAMPLES`` samples of std ``SMOOTHGRAD_STDEV``,
    its noise drawn after seeding torch with ``seed``.
    """
    if source not in GRADIENT_SOURCES:
        raise GradvizError(f"unknown gradient source {source!r}; valid: {', '.join(GRADIENT_SOURCES)}")
    if source == "gradient":
        return input_gradient(model, images, objective)
    from captum.attr import IntegratedGradients, NoiseTunnel, Saliency

    forward = ObjectiveModule(model, objective)
    x = images.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        if source == "saliency":
            return Saliency(forward).attribute(x, abs=False).detach()
        if source == "integrated-gradients":
            return IntegratedGradients(forward).attribute(x, baselines=0.0, n_steps=IG_STEPS).detach()
        with torch.random.fork_rng(devices=[x.device] if x.is_cuda else []):
            torch.manual_seed(seed)
            tunnel = NoiseTunnel(Saliency(forward))
            out = tunnel.attribute(
                x, nt_type="smoothgrad", nt_samples=SMOOTHGRAD_SAMPLES, stdevs=SMOOTHGRAD_STDEV, abs=False
            )
        return out.detach()
