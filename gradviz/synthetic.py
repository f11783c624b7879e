"""Synthetic fields with known answers, to calibrate the grid tests (and to check a meter of your own).

Every field is drawn on a canvas twice as large and cropped, so that, like a real gradient, it is
not periodic across its borders. All take a ``torch.Generator`` and return float64 tensors
``(n, c, size, size)``.

Example:
    >>> gen = torch.Generator().manual_seed(0)
    >>> x = power_law_field(4, 3, 64, exponent=2.0, generator=gen)
    >>> x.shape
    torch.Size([4, 3, 64, 64])
"""

from __future__ import annotations

import math

import torch

__all__ = ["FIELDS", "add_grid", "blue_field", "blurred_field", "heavy_tailed_field", "power_law_field", "white_field"]


def _filtered(noise: torch.Tensor, gain: torch.Tensor, size: int) -> torch.Tensor:
    out = torch.fft.ifft2(torch.fft.fft2(noise) * gain).real
    return out[..., :size, :size].contiguous()


def _radius(n: int) -> torch.Tensor:
    f = torch.fft.fftfreq(n, dtype=torch.float64)
    return torch.sqrt(f[:, None] ** 2 + f[None, :] ** 2)


def white_field(n: int, c: int, size: int, *, generator: torch.Generator) -> torch.Tensor:
    """Gaussian white noise: a flat spectrum."""
    return torch.randn(n, c, size, size, generator=generator, dtype=torch.float64)


def power_law_field(n: int, c: int, size: int, *, exponent: float, generator: torch.Generator) -> torch.Tensor:
    """Gaussian field whose power falls as ``1 / f**exponent`` (DC removed)."""
    big = 2 * size
    r = _radius(big)
    gain = torch.where(r > 0, r.clamp_min(1e-12) ** (-exponent / 2), torch.zeros_like(r))
    return _filtered(torch.randn(n, c, big, big, generator=generator, dtype=torch.float64), gain, size)


def blurred_field(n: int, c: int, size: int, *, sigma: float = 2.0, generator: torch.Generator) -> torch.Tensor:
    """White noise blurred by a Gaussian of ``sigma`` pixels: power falls off a cliff."""
    big = 2 * size
    gain = torch.exp(-2 * (math.pi * sigma * _radius(big)) ** 2)
    return _filtered(torch.randn(n, c, big, big, generator=generator, dtype=torch.float64), gain, size)


def blue_field(n: int, c: int, size: int, *, generator: torch.Generator) -> torch.Tensor:
    """The 5-point Laplacian of white noise: power rises with frequency."""
    x = torch.randn(n, c, size + 2, size + 2, generator=generator, dtype=torch.float64)
    lap = x[..., 1:-1, :-2] + x[..., 1:-1, 2:] + x[..., :-2, 1:-1] + x[..., 2:, 1:-1] - 4 * x[..., 1:-1, 1:-1]
    return lap.contiguous()


def heavy_tailed_field(n: int, c: int, size: int, *, df: float = 3.0, exponent: float = 1.0,
                       generator: torch.Generator) -> torch.Tensor:
    """Student-t noise (``df`` degrees of freedom) shaped to ``1 / f**exponent``: rare huge values."""
    big = 2 * size
    normal = torch.randn(n, c, big, big, generator=generator, dtype=torch.float64)
    chi2 = 2 * torch._standard_gamma(torch.full((n, c, big, big), df / 2, dtype=torch.float64), generator=generator)
    t = normal / torch.sqrt(chi2 / df)
    r = _radius(big)
    gain = torch.where(r > 0, r.clamp_min(1e-12) ** (-exponent / 2), torch.zeros_like(r))
    return _filtered(t, gain, size)


def add_grid(field: torch.Tensor, period: int, energy_share: float, *, generator: torch.Generator) -> torch.Tensor:
    """Add a zero-mean pattern that repeats every ``period`` pixels, holding ``energy_share`` of the energy.

    One random ``period x period`` tile per channel, the same for every image (a grid locked to the
    pixel lattice, as a network's stride makes it); each image's share of grid energy is
    ``energy_share`` of its total after the addition.
    """
    n, c, h, w = field.shape
    tile = torch.randn(c, period, period, generator=generator, dtype=torch.float64)
    tile = tile - tile.mean((-2, -1), keepdim=True)
    grid = tile.repeat(1, math.ceil(h / period), math.ceil(w / period))[:, :h, :w]
    centred = field - field.mean((-2, -1), keepdim=True)
    field_energy = centred.square().sum((1, 2, 3))
    grid_energy = (grid - grid.mean((-2, -1), keepdim=True)).square().sum()
    scale = torch.sqrt(energy_share / (1 - energy_share) * field_energy / grid_energy)
    return field + scale[:, None, None, None] * grid


# name -> generator(n, c, size, generator=...) for the calibration tests and study
FIELDS = {
    "white": white_field,
    "1/f": lambda n, c, size, generator: power_law_field(n, c, size, exponent=1.0, generator=generator),
    "1/f^2": lambda n, c, size, generator: power_law_field(n, c, size, exponent=2.0, generator=generator),
    "1/f^3": lambda n, c, size, generator: power_law_field(n, c, size, exponent=3.0, generator=generator),
    "blurred": blurred_field,
    "blue": blue_field,
    "heavy-tailed": heavy_tailed_field,
}
