"""Step stage: the optimisers that turn an input gradient into an update of the parameters.

:data:`OPTIMIZERS` maps the command line's names to step builders. An entry takes
``(params, lr)`` for one octave and returns ``step(grads)``, which :func:`~gradviz.optvis.dream.dream`
calls under ``torch.no_grad()`` once per step; ``entry.default_lr`` is the step size used when none
is given. Both ascend (they maximise the objective).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from gradviz.registry import Registry

__all__ = ["ADAM_LR", "NORMALIZED_LR", "OPTIMIZERS", "Step", "adam_ascent", "normalized_ascent"]

# DeepDream's step: 1.5 / mean|g| on 0..255 pixels, i.e. 1.5 / 255 on [0, 1] pixels.
NORMALIZED_LR = 1.5 / 255
# Lucid's and Lucent's Adam learning rate.
ADAM_LR = 0.05
# Guards the division by mean|g| when a gradient is exactly zero.
TINY = 1e-12

# One ascent step: the gradients of the parameters, applied in place (under no_grad).
Step = Callable[[Sequence[torch.Tensor]], None]
# Optimisers by the name the command line uses. Each entry takes ``(params, lr)`` and returns the
# step for one octave; its ``default_lr`` is the step size when none is given; its docstring's
# first line is the description ``--help`` shows.
OPTIMIZERS: Registry[Callable[[list[torch.Tensor], float], Step]] = Registry("optimizer")


def _optimizer(name: str, default_lr: float):
    """Register an optimiser under ``name`` with its default step size."""

    def add(fn):
        fn.default_lr = default_lr
        # the description --help shows (the docstring's first line) ends with the default step size
        first, rest = fn.__doc__.split("\n", 1)
        return OPTIMIZERS.register(name, doc=f"{first} (default lr {default_lr:.4g})\n{rest}")(fn)

    return add


@_optimizer("normalized", NORMALIZED_LR)
def normalized_ascent(params: list[torch.Tensor], lr: float) -> Step:
    """DeepDream's normalised gradient ascent, p += lr * g / mean|g| per image

    Args:
        params: the parameters, updated in place.
        lr: the step size.

    Returns:
        ``step(grads)``; the mean of ``|g|`` is taken over each image (the first dim).

    Example:
        >>> p = torch.zeros(2, 3)
        >>> normalized_ascent([p], 0.5)([torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])])
        >>> p
        tensor([[0.2500, 0.5000, 0.7500],
                [0.0000, 0.0000, 0.0000]])
    """

    def step(grads: Sequence[torch.Tensor]) -> None:
        for p, g in zip(params, grads):
            scale = g.abs().flatten(1).mean(1).clamp_min(TINY).view(-1, *([1] * (g.dim() - 1)))
            p.add_(lr * g / scale)

    return step


@_optimizer("adam", ADAM_LR)
def adam_ascent(params: list[torch.Tensor], lr: float) -> Step:
    """Adam ascent, as Lucid and Lucent optimise

    Args:
        params: the parameters, updated in place; one Adam state per call (per octave).
        lr: Adam's learning rate.

    Returns:
        ``step(grads)``: sets each parameter's ``.grad`` and takes one maximising Adam step.

    Example:
        >>> p = torch.zeros(3, requires_grad=True)
        >>> with torch.no_grad():
        ...     adam_ascent([p], 0.1)([torch.tensor([1.0, -2.0, 0.0])])
        >>> p.detach()
        tensor([ 0.1000, -0.1000,  0.0000])
    """
    adam = torch.optim.Adam(params, lr=lr, maximize=True)

    def step(grads: Sequence[torch.Tensor]) -> None:
        for p, g in zip(params, grads):
            p.grad = g
        adam.step()

    return step
