"""The exact reference for jitter: the input gradient averaged over every circular shift of one period.

With ``S`` the period (the stride of the objective's layer) and ``∇f`` the input gradient,

    H(x) = mean_{δ in Z_S^2} roll(∇f(roll(x, δ)), -δ).

A pattern locked to the network's sampling grid of period ``S`` takes every one of its ``S^2``
phases once in this mean, so every non-zero lattice frequency cancels exactly, while a gradient
that follows the image is kept. Roll jitter (:class:`gradviz.optvis.transforms.RandomRoll`)
approximates this mean with a few random shifts (:mod:`gradviz.optvis.jitter_law` says how well);
:class:`gradviz.core.shift_average.ShiftAverage` applies it to any captum attribution.
"""

from __future__ import annotations

import torch
from torch import nn

from gradviz.core.gradients import input_gradient
from gradviz.core.objectives import Objective
from gradviz.core.shift_average import SHIFTS_PER_PASS, all_shifts, shift_average

__all__ = ["shift_averaged_gradient"]


def shift_averaged_gradient(model: nn.Module, images: torch.Tensor, objective: Objective, period: int) -> torch.Tensor:
    """``mean_{δ in Z_period^2} roll(∇f(roll(x, δ)), -δ)``: the exact reference for jitter.

    Args:
        model: a frozen model on pixels in [0, 1].
        images: the batch ``x``.
        objective: one value per image; ``f`` is its sum over the batch.
        period: ``S``; the mean runs over all ``S^2`` shifts, ``SHIFTS_PER_PASS`` per forward pass.

    Returns:
        The averaged input gradient.

    Shape:
        images: (B, C, H, W) -> (B, C, H, W).

    Example:
        A stride-2 box convolution (circular padding) has a period-2 gradient, the overlap count
        4:2:2:1; its shift average is flat:

        >>> from gradviz.core.objectives import channel
        >>> conv = nn.Conv2d(1, 1, 3, stride=2, padding=1, padding_mode="circular", bias=False)
        >>> _ = nn.init.ones_(conv.weight)
        >>> net = nn.Sequential(conv).requires_grad_(False)
        >>> x = torch.zeros(1, 1, 8, 8)  # f is linear: its gradient does not depend on x
        >>> (input_gradient(net, x, channel("0", 0)) * 16).unique()
        tensor([1., 2., 4.])
        >>> (shift_averaged_gradient(net, x, channel("0", 0), period=2) * 16).unique()
        tensor([2.2500])
    """

    def gradient(batch: torch.Tensor, chunk) -> torch.Tensor:
        return input_gradient(model, batch, objective)

    return shift_average(gradient, images, all_shifts(period), SHIFTS_PER_PASS)
