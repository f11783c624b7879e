"""The DCGAN conventions the generators and the discriminators share: their initialisation, the
LeakyReLU slope, and a seeded construction that leaves torch's global random state as it was."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

__all__ = ["DCGAN_STD", "LEAKY_SLOPE", "dcgan_init_", "seeded_construction"]

# DCGAN initialisation: weights ~ N(0, DCGAN_STD), BatchNorm scales ~ N(1, DCGAN_STD), biases 0.
DCGAN_STD = 0.02
# Negative slope of the discriminators' LeakyReLUs (DCGAN).
LEAKY_SLOPE = 0.2


def dcgan_init_(module: nn.Module) -> None:
    """Initialise one module in place as DCGAN does; use it with ``net.apply(dcgan_init_)``.

    Convolutions (plain and transposed) and linear layers get weights ~ N(0, ``DCGAN_STD``) and zero
    biases; BatchNorm layers get scales ~ N(1, ``DCGAN_STD``) and zero shifts; other modules are
    left alone. The draws come from torch's global generator (wrap the construction in
    :func:`seeded_construction` to fix them).

    Args:
        module: any module; only the kinds above are changed.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
        >>> with seeded_construction(0):
        ...     _ = net.apply(dcgan_init_)
        >>> net[0].bias.abs().max().item(), round(net[0].weight.std().item(), 2)
        (0.0, 0.02)
    """
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, DCGAN_STD)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, DCGAN_STD)
        nn.init.zeros_(module.bias)


@contextmanager
def seeded_construction(seed: int) -> Iterator[None]:
    """Seed torch's global (CPU) generator for the block, and restore its state afterwards.

    PyTorch's layer constructors and ``nn.init`` draw from the global generator, so a network built
    inside the block is fixed by ``seed`` (the same draws, in the same order, as after
    ``torch.manual_seed(seed)``) while the caller's random state is left untouched.

    Args:
        seed: the seed of the global generator inside the block.

    Example:
        >>> before = torch.random.get_rng_state()
        >>> with seeded_construction(3):
        ...     a = nn.Linear(2, 2).weight.clone()
        >>> with seeded_construction(3):
        ...     b = nn.Linear(2, 2).weight.clone()
        >>> torch.equal(a, b), torch.equal(before, torch.random.get_rng_state())
        (True, True)
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
