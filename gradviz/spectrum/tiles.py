"""The shared-tile test: the energy pattern of period S that different images share.

**Tile** (:func:`shared_tile_test`). Per image, the mean of ``sum_c g_c^2`` at each of the ``S x S``
phases, on the interior (``max(S, 16)`` pixels, rounded up to a multiple of ``S``, cut from every
side: the image border makes a tile of its own; it must hold at least 4 periods per side), with the
energy's slow trend removed and a taper applied (:func:`relative_tiles`), divided by the mean energy
and centred: ``t_i``. The pattern that images *share* is estimated without each image's own chance
variation by a U-statistic,

    ``U = sum_{i != k} <t_i, t_k> / (n (n - 1) S^2)``,

whose expectation is 0 when the images share no pattern; ``shared_tile_cv = sqrt(max(U, 0))`` is the
coefficient of variation of the shared tile. Its null rolls each image's tile by an independent
random phase ``n_null`` times.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from gradviz.spectrum.lines import NULL_CHUNK_ELEMENTS
from gradviz.spectrum.metrics import DEFAULT_NULL_DRAWS

# The smallest margin, in pixels, cut from every side before the shared tile is measured.
MIN_INTERIOR_MARGIN = 16
# The interior must hold this many periods per side: with fewer, the layout that photographs share
# (subjects near the centre) looks like a tile of period S, and the random-phase null cannot tell.
MIN_INTERIOR_PERIODS = 4


def interior_margin(stride: int) -> int:
    """Pixels cut from every side before the shared tile: ``max(S, 16)`` rounded up to a multiple of ``S``.

    Args:
        stride: the period ``S``.

    Returns:
        The margin in pixels.

    Example:
        >>> [interior_margin(s) for s in (2, 6, 16, 24, 32)]
        [16, 18, 16, 24, 32]
    """
    return stride * math.ceil(max(stride, MIN_INTERIOR_MARGIN) / stride)


def tile_testable(height: int, width: int, stride: int) -> bool:
    """True when the interior of an ``height x width`` map holds ``MIN_INTERIOR_PERIODS`` (4) periods per side.

    Args:
        height: ``H'``.
        width: ``W'``.
        stride: the period ``S``.

    Returns:
        ``min(H', W') - 2 * interior_margin(S) >= 4 * S``.

    Example:
        >>> tile_testable(64, 64, 8), tile_testable(48, 48, 8)  # interiors of 32 and 16 px
        (True, False)
        >>> tile_testable(160, 160, 32), tile_testable(192, 192, 32)  # S = 32: 2 x 32 + 4 x 32 px
        (False, True)
    """
    cut = interior_margin(stride)
    return min(height, width) - 2 * cut >= MIN_INTERIOR_PERIODS * stride


@dataclass
class TileTest:
    """Result of :func:`shared_tile_test`."""

    shared_tile_cv: float  # sqrt(max(U, 0)): coefficient of variation of the shared tile
    p_value: float  # against random per-image phase rolls; NaN without null draws
    statistic: float  # U, the mean product of different images' tiles
    note: str = ""  # why the test could not run, if it could not


def _u_statistic(tiles: torch.Tensor) -> torch.Tensor:
    """U over the leading dims ``(..., n, S, S)``: mean of <t_i, t_k> / S^2 over pairs i != k."""
    n, s = tiles.shape[-3], tiles.shape[-1]
    total = tiles.sum(-3)
    cross = total.square().sum((-2, -1)) - tiles.square().sum((-3, -2, -1))
    return cross / (n * (n - 1) * s * s)


def _period_box(stride: int, dtype, device) -> torch.Tensor:
    """Symmetric 1D kernel that averages exactly one period: width S for odd S, else S + 1 with half ends.

    It maps any pattern of period S to its mean, and a polynomial of degree 2 to itself plus a constant.
    """
    if stride % 2:
        k = torch.ones(stride, dtype=dtype, device=device)
    else:
        k = torch.ones(stride + 1, dtype=dtype, device=device)
        k[0] = k[-1] = 0.5
    return k / stride


def _hann(n: int, like: torch.Tensor) -> torch.Tensor:
    """Hann taper over n pixels, sampled at pixel centres (never exactly 0)."""
    x = (torch.arange(n, dtype=like.dtype, device=like.device) + 0.5) / n
    return 0.5 - 0.5 * torch.cos(2 * math.pi * x)


def relative_tiles(energy: torch.Tensor, stride: int) -> torch.Tensor:
    """Per-image relative energy tile on the interior, with the slow trend of the energy removed.

    ``d = e - B(e)`` where ``B`` averages exactly one period (:func:`_period_box`, separably in y and
    x): a pattern of period ``S`` passes unchanged (less its mean), while trends in the energy up to
    the second degree become constants. Without this step a smooth trend across the image makes a
    ramp-shaped tile whose jump sits at the interior's edge in every image, which the random-phase
    null cannot reproduce (false positives on steep spectra). For the same reason the phase means
    are weighted by a Hann taper over the interior (normalised per phase, so a periodic pattern is
    kept exactly): what is left of a smooth trend then no longer depends on where the interior ends.

    Args:
        energy: ``(B, H, W)`` per-pixel energy ``sum_c g_c^2``, ``H`` and ``W`` multiples of ``S``.
        stride: the period ``S``.

    Returns:
        The tapered phase means of ``d`` over the interior (``interior_margin(S)`` pixels cut from
        every side) over the tapered mean energy there, centred to mean 0.

    Shape:
        ``(B, H, W) -> (B, S, S)``.

    Example:
        >>> energy = torch.tensor([[3.0, 1.0], [1.0, 3.0]], dtype=torch.float64).repeat(20, 20)
        >>> relative_tiles(energy[None], 2)[0].tolist()  # pattern / mean - 1, exactly
        [[0.5, -0.5], [-0.5, 0.5]]
    """
    s = stride
    cut = interior_margin(s)
    b, h, w = energy.shape
    k = _period_box(s, energy.dtype, energy.device)
    r = (k.numel() - 1) // 2  # the kernel's half-width: the valid convolution loses r pixels on each side
    smooth = F.conv2d(energy[:, None], k.view(1, 1, -1, 1))
    smooth = F.conv2d(smooth, k.view(1, 1, 1, -1))[:, 0]
    inner = energy[:, cut : h - cut, cut : w - cut]
    detrended = inner - smooth[:, cut - r : h - cut - r, cut - r : w - cut - r]
    ih, iw = inner.shape[-2:]
    taper = _hann(ih, energy)[:, None] * _hann(iw, energy)[None, :]
    weights = taper.reshape(ih // s, s, iw // s, s).sum(dim=(0, 2))
    tiles = (detrended * taper).reshape(b, ih // s, s, iw // s, s).sum(dim=(1, 3)) / weights
    level = (inner * taper).sum((-2, -1)) / taper.sum()
    tiles = torch.where(level[:, None, None] > 0, tiles / level.clamp_min(1e-300)[:, None, None], torch.zeros_like(tiles))
    return tiles - tiles.mean((-2, -1), keepdim=True)


def shared_tile_test(tiles: torch.Tensor, *, n_null: int = DEFAULT_NULL_DRAWS, seed: int = 0) -> TileTest:
    """The tile pattern that images share, with a random-phase null (see the module docstring).

    Args:
        tiles: ``(n, S, S)`` per-image relative tiles (:func:`relative_tiles`); each is re-centred.
        n_null: null draws; 0 computes the statistic only (p-value NaN).
        seed: seeds the random phases.

    Returns:
        :class:`TileTest`; NaN with a note for fewer than two images or ``S == 1``.

    Shape:
        ``tiles``: ``(n, S, S)``.

    Example:
        >>> checker = 0.3 * torch.tensor([[1.0, -1.0], [-1.0, 1.0]], dtype=torch.float64)
        >>> t = shared_tile_test(checker.repeat(12, 1, 1), n_null=200)  # 12 images, one tile
        >>> round(t.shared_tile_cv, 12), t.p_value == 1 / 201  # its own cv; no roll of the 12 matches
        (0.3, True)
    """
    n, s = tiles.shape[0], tiles.shape[-1]
    if s < 2:
        return TileTest(math.nan, math.nan, math.nan, "a period of 1 has no tile")
    t = tiles.to(torch.float64)
    t = t - t.mean((-2, -1), keepdim=True)
    t = t[t.abs().sum((-2, -1)) > 0]  # images without energy in the interior carry no tile
    n = t.shape[0]
    if n < 2:
        return TileTest(math.nan, math.nan, math.nan, "a shared tile needs two or more images with energy")
    u = float(_u_statistic(t))
    gen = torch.Generator().manual_seed(int(seed))
    ar = torch.arange(s)
    exceed = 0
    chunk = max(1, NULL_CHUNK_ELEMENTS // (n * s * s))
    flat = t.reshape(n, s * s)
    for start in range(0, n_null, chunk):
        d = min(chunk, n_null - start)
        shift = torch.randint(s, (d, n, 2), generator=gen)
        rows = (ar[None, None, :] - shift[..., :1]) % s  # (d, n, S)
        cols = (ar[None, None, :] - shift[..., 1:]) % s
        index = (rows[..., :, None] * s + cols[..., None, :]).reshape(d, n, s * s)
        rolled = torch.gather(flat.expand(d, n, s * s), 2, index.to(t.device)).reshape(d, n, s, s)
        exceed += int((_u_statistic(rolled) >= u - 1e-15).sum())
    p_value = (1 + exceed) / (1 + n_null) if n_null else math.nan
    return TileTest(math.sqrt(max(u, 0.0)), p_value, u)
