"""Synthetic fields with known answers, to calibrate the grid tests (and to check a meter of your own).

The filtered fields are drawn on a canvas twice as large and cropped, so that, like a real gradient,
they are not periodic across their borders (white noise needs no crop; the blue field is computed
from a canvas 2 pixels larger). All take a ``torch.Generator`` and return float64 tensors
``(n, c, size, size)``: ``n`` images of ``c`` channels.

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
    """Gaussian white noise: a flat spectrum.

    Args:
        n, c, size: images, channels, and the side in pixels.
        generator: the source of the draws.

    Returns:
        Standard normal float64 values.

    Shape:
        ``(n, c, size, size)``.

    Example:
        >>> x = white_field(2, 3, 4, generator=torch.Generator().manual_seed(0))
        >>> torch.equal(x, torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
        True
    """
    return torch.randn(n, c, size, size, generator=generator, dtype=torch.float64)


def power_law_field(n: int, c: int, size: int, *, exponent: float, generator: torch.Generator) -> torch.Tensor:
    """Gaussian field whose power falls as ``1 / f**exponent`` (DC removed).

    Args:
        n, c, size: images, channels, and the side in pixels.
        exponent: the slope of the power spectrum (0: white; 2: about that of natural images).
        generator: the source of the draws.

    Returns:
        White noise on a ``2 size`` canvas, filtered by ``|f|**(-exponent / 2)``, cropped at the top left.

    Shape:
        ``(n, c, size, size)``.

    Example:
        >>> canvas = torch.randn(1, 1, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        >>> x = power_law_field(1, 1, 4, exponent=0.0, generator=torch.Generator().manual_seed(0))
        >>> torch.allclose(x, (canvas - canvas.mean())[..., :4, :4], rtol=0, atol=1e-12)  # exponent 0: only DC goes
        True
    """
    big = 2 * size
    r = _radius(big)
    gain = torch.where(r > 0, r.clamp_min(1e-12) ** (-exponent / 2), torch.zeros_like(r))
    return _filtered(torch.randn(n, c, big, big, generator=generator, dtype=torch.float64), gain, size)


def blurred_field(n: int, c: int, size: int, *, sigma: float = 2.0, generator: torch.Generator) -> torch.Tensor:
    """White noise blurred by a Gaussian of ``sigma`` pixels: power falls off a cliff.

    Args:
        n, c, size: images, channels, and the side in pixels.
        sigma: the blur's standard deviation in pixels (circular, on a ``2 size`` canvas).
        generator: the source of the draws.

    Returns:
        The blurred noise, cropped at the top left.

    Shape:
        ``(n, c, size, size)``.

    Example:
        >>> canvas = torch.randn(1, 1, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        >>> x = blurred_field(1, 1, 4, sigma=0.0, generator=torch.Generator().manual_seed(0))
        >>> torch.allclose(x, canvas[..., :4, :4], rtol=0, atol=1e-12)  # no blur: the canvas itself
        True
    """
    big = 2 * size
    gain = torch.exp(-2 * (math.pi * sigma * _radius(big)) ** 2)
    return _filtered(torch.randn(n, c, big, big, generator=generator, dtype=torch.float64), gain, size)


def blue_field(n: int, c: int, size: int, *, generator: torch.Generator) -> torch.Tensor:
    """The 5-point Laplacian of white noise: power rises with frequency.

    Args:
        n, c, size: images, channels, and the side in pixels.
        generator: the source of the draws (a ``size + 2`` canvas).

    Returns:
        The Laplacian on the canvas's interior (no wrap-around).

    Shape:
        ``(n, c, size, size)``.

    Example:
        >>> canvas = torch.randn(1, 1, 6, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        >>> x = blue_field(1, 1, 4, generator=torch.Generator().manual_seed(0))
        >>> laplacian = torch.tensor([[[[0.0, 1, 0], [1, -4, 1], [0, 1, 0]]]], dtype=torch.float64)
        >>> torch.allclose(x, torch.nn.functional.conv2d(canvas, laplacian), rtol=0, atol=1e-12)
        True
    """
    x = torch.randn(n, c, size + 2, size + 2, generator=generator, dtype=torch.float64)
    lap = x[..., 1:-1, :-2] + x[..., 1:-1, 2:] + x[..., :-2, 1:-1] + x[..., 2:, 1:-1] - 4 * x[..., 1:-1, 1:-1]
    return lap.contiguous()


def heavy_tailed_field(n: int, c: int, size: int, *, df: float = 3.0, exponent: float = 1.0,
                       generator: torch.Generator) -> torch.Tensor:
    """Student-t noise (``df`` degrees of freedom) shaped to ``1 / f**exponent``: rare huge values.

    Args:
        n, c, size: images, channels, and the side in pixels.
        df: the degrees of freedom (3: a finite variance, an infinite fourth moment).
        exponent: the slope of the power spectrum, as in :func:`power_law_field`.
        generator: the source of the draws.

    Returns:
        The filtered noise on a ``2 size`` canvas, cropped at the top left.

    Shape:
        ``(n, c, size, size)``.

    Example:
        >>> x = heavy_tailed_field(2, 1, 16, generator=torch.Generator().manual_seed(0))
        >>> x.shape, x.dtype, bool(torch.isfinite(x).all())
        (torch.Size([2, 1, 16, 16]), torch.float64, True)
    """
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
    ``energy_share`` of its total after the addition, counting energies after removing the channel
    means and leaving out the cross term (zero in expectation).

    Args:
        field: the maps to add the grid to.
        period: the grid's period in pixels.
        energy_share: ``E_grid / (E_grid + E_field)`` per image, in ``[0, 1)``.
        generator: draws the tile (after whatever ``field`` drew).

    Returns:
        ``field`` plus the grid, scaled per image.

    Shape:
        ``(n, c, H, W) -> (n, c, H, W)``.

    Example:
        >>> gen = torch.Generator().manual_seed(0)
        >>> field = white_field(2, 3, 16, generator=gen)
        >>> grid = add_grid(field, 4, 0.1, generator=gen) - field
        >>> energy = lambda t: (t - t.mean((-2, -1), keepdim=True)).square().sum((1, 2, 3))
        >>> [round(x, 12) for x in (energy(grid) / (energy(grid) + energy(field))).tolist()]
        [0.1, 0.1]
        >>> torch.allclose(grid[..., :4, :4], grid[..., 8:12, 4:8], rtol=0, atol=1e-12)  # period 4
        True
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
