"""Frequency bookkeeping of the meter: the period crop, the lattice of a period, the top octave,
and the radial profile used in plots.

Conventions (see :mod:`gradviz.spectrum.meter`): a gradient is cropped at the top-left to a multiple
of the period ``S``; frequencies are ``f_y = u / H'`` and ``f_x = v / W'`` cycles per pixel; the lattice
bin ``(a/S, b/S)`` has period ``S / gcd(a, b, S)``; the *top octave* is where
``max(|f_y|, |f_x|) >= 1/4`` (:data:`HIGH_FREQUENCY_CUTOFF`).
"""

from __future__ import annotations

import math

import torch

# Bins with max(|f_y|, |f_x|) at or above this many cycles per pixel form the top octave
# (periods of 2 to 4 pixels), where max-pooling noise shows.
HIGH_FREQUENCY_CUTOFF = 0.25


def check_stride(stride: int) -> int:
    """Validate a period ``S``: a positive integer (``bool`` refused).

    Args:
        stride: the period in pixels.

    Returns:
        ``stride`` as an ``int``.

    Example:
        >>> check_stride(4.0)
        4
        >>> check_stride(0)
        Traceback (most recent call last):
        ...
        ValueError: stride must be a positive integer, got 0
    """
    if isinstance(stride, bool) or int(stride) != stride or stride < 1:
        raise ValueError(f"stride must be a positive integer, got {stride!r}")
    return int(stride)


def crop_to_period(grad: torch.Tensor, stride: int) -> torch.Tensor:
    """Top-left crop of the last two dims to multiples of ``stride`` (step 1 of :mod:`gradviz.spectrum.meter`).

    Args:
        grad: a map or a batch of maps, ``(..., H, W)``.
        stride: the period ``S``.

    Returns:
        A view of ``grad`` holding its first ``H'`` rows and ``W'`` columns.

    Shape:
        ``(..., H, W) -> (..., H', W')`` with ``H' = S * floor(H / S)``, ``W' = S * floor(W / S)``.

    Example:
        >>> crop_to_period(torch.zeros(3, 10, 7), 4).shape
        torch.Size([3, 8, 4])
        >>> crop_to_period(torch.arange(15).reshape(3, 5), 2).tolist()  # rows 0-1, columns 0-3
        [[0, 1, 2, 3], [5, 6, 7, 8]]
    """
    stride = check_stride(stride)
    h, w = grad.shape[-2:]
    hc, wc = (h // stride) * stride, (w // stride) * stride
    if hc == 0 or wc == 0:
        raise ValueError(f"gradient of size {h}x{w} is smaller than the period {stride}")
    return grad[..., :hc, :wc]


def period_map(height: int, width: int, stride: int, device=None) -> torch.Tensor:
    """The period ``S / gcd(a, b, S)`` of each lattice bin ``(a/S, b/S)``; 1 at DC, 0 off the lattice.

    Args:
        height: ``H'``, a multiple of ``stride``.
        width: ``W'``, a multiple of ``stride``.
        stride: the period ``S``.
        device: where to build the map.

    Returns:
        Integer (int64) map in FFT order (bin ``(u, v)`` is at ``f_y = u / H'``, ``f_x = v / W'``).

    Shape:
        ``(height, width)``.

    Example:
        >>> period_map(4, 4, 2).tolist()
        [[1, 0, 2, 0], [0, 0, 0, 0], [2, 0, 2, 0], [0, 0, 0, 0]]
        >>> period_map(8, 8, 4)[::2, ::2].tolist()  # the lattice bins only: periods 4 and 2
        [[1, 4, 2, 4], [4, 4, 4, 4], [2, 4, 2, 4], [4, 4, 4, 4]]
    """
    stride = check_stride(stride)
    if height % stride or width % stride:
        raise ValueError(f"size {height}x{width} is not a multiple of the period {stride}")
    my, mx = height // stride, width // stride
    u = torch.arange(height, device=device)
    v = torch.arange(width, device=device)
    on_u, on_v = (u % my == 0), (v % mx == 0)
    a, b = (u // my)[:, None], (v // mx)[None, :]
    g = torch.gcd(torch.gcd(a, b), torch.tensor(stride, device=device))
    periods = stride // g
    return torch.where(on_u[:, None] & on_v[None, :], periods, torch.zeros_like(periods))


def lattice_mask(height: int, width: int, stride: int, device=None) -> torch.Tensor:
    """The non-DC lattice bins for period ``stride``: ``period_map(...) > 1``.

    Args:
        height, width, stride, device: as for :func:`period_map`.

    Returns:
        Boolean mask with ``S * S - 1`` True bins.

    Shape:
        ``(height, width)``.

    Example:
        >>> lattice_mask(4, 4, 2).nonzero().tolist()
        [[0, 2], [2, 0], [2, 2]]
        >>> int(lattice_mask(24, 36, 6).sum())  # S * S - 1
        35
    """
    return period_map(height, width, stride, device) > 1


def high_band(height: int, width: int, device=None) -> torch.Tensor:
    """The top octave: bins with ``max(|f_y|, |f_x|) >= HIGH_FREQUENCY_CUTOFF`` (1/4 cycle per pixel).

    Args:
        height: ``H'``.
        width: ``W'``.
        device: where to build the mask.

    Returns:
        Boolean mask in FFT order.

    Shape:
        ``(height, width)``.

    Example:
        >>> int(high_band(8, 8).sum())  # all but the 3 x 3 bins with |f| < 1/4 on both axes
        55
    """
    fy = torch.fft.fftfreq(height, device=device).abs()
    fx = torch.fft.fftfreq(width, device=device).abs()
    return torch.maximum(fy[:, None], fx[None, :]) >= HIGH_FREQUENCY_CUTOFF


def as_batch(grad: torch.Tensor) -> torch.Tensor:
    """View a gradient ``(H, W)``, ``(C, H, W)`` or ``(B, C, H, W)`` as a batch.

    Args:
        grad: the gradient.

    Returns:
        ``grad`` with leading dims of size 1 added.

    Shape:
        ``(H, W) -> (1, 1, H, W)``, ``(C, H, W) -> (1, C, H, W)``, ``(B, C, H, W)`` unchanged.

    Example:
        >>> as_batch(torch.zeros(3, 5, 6)).shape
        torch.Size([1, 3, 5, 6])
    """
    if grad.dim() == 2:
        return grad[None, None]
    if grad.dim() == 3:
        return grad[None]
    if grad.dim() == 4:
        return grad
    raise ValueError(f"expected a gradient of shape (H, W), (C, H, W) or (B, C, H, W), got {tuple(grad.shape)}")


def radial_profile(power: torch.Tensor, n_bins: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Azimuthal mean of a power spectrum against radius in cycles per pixel.

    For plots only: averaging over rings dilutes the lattice lines (the corner bin (1/2, 1/2)
    sits alone at radius 0.707). The rings split ``[0, sqrt(1/2)]`` into ``n_bins`` equal widths;
    a bin at radius ``r`` falls in the ring whose upper edge is the first edge ``>= r``.

    Args:
        power: a power spectrum in FFT order (DC at ``[0, 0]``).
        n_bins: how many rings (default ``max(H, W) // 2``).

    Returns:
        ``(radius_centres, mean_power)``, float64; empty rings give NaN.

    Shape:
        ``(H, W) -> ((n_bins,), (n_bins,))``.

    Example:
        >>> r, p = radial_profile(torch.ones(8, 8))  # a flat spectrum is flat in every ring
        >>> [round(x, 4) for x in r.tolist()], p.tolist()
        ([0.0884, 0.2652, 0.4419, 0.6187], [1.0, 1.0, 1.0, 1.0])
    """
    h, w = power.shape
    fy = torch.fft.fftfreq(h, device=power.device, dtype=torch.float64)
    fx = torch.fft.fftfreq(w, device=power.device, dtype=torch.float64)
    r = torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2).flatten()
    n_bins = n_bins or max(h, w) // 2
    edges = torch.linspace(0.0, math.sqrt(0.5) + 1e-9, n_bins + 1, device=power.device, dtype=torch.float64)
    idx = torch.bucketize(r, edges[1:-1])
    p = power.flatten().to(torch.float64)
    sums = torch.zeros(n_bins, dtype=torch.float64, device=power.device).index_add_(0, idx, p)
    counts = torch.zeros(n_bins, dtype=torch.float64, device=power.device).index_add_(0, idx, torch.ones_like(p))
    centres = (edges[1:] + edges[:-1]) / 2
    return centres, sums / counts
