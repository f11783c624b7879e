"""Calibrated tests for a grid: line strength against the local background, and a shared energy tile.

Two questions, two tests, each with a null that holds whatever the spectrum's slope:

**Lines** (:func:`line_excess_test`). A pattern that repeats every ``S`` pixels puts its energy on the
*lattice* bins, whose two frequencies are multiples of ``1/S``. Gradients of real networks have
sloped spectra (more power at low frequencies), so a lattice bin is compared with the bins around it:

1. ``P`` is the power spectrum of the *periodic component* (Moisan's periodic-plus-smooth
   decomposition, :func:`periodic_fft`): a map that is not periodic puts a cross of energy on the
   frequency axes, which the smooth component carries away.
2. ``R(u, v) = log P(u, v) - mean log P`` over the non-lattice bins within +-2 bins of ``(u, v)``
   (circularly); bins on an axis (``u = 0`` or ``v = 0``) are compared with the non-lattice bins of
   the same axis only, the others with off-axis bins only. ``exp(R)`` is the bin's power over the
   geometric mean of its background: 1 where there is no line, whatever the slope.
3. For the lattice bins of one period ``p`` (the bin at ``(a/S, b/S)`` has period
   ``S / gcd(a, b, S)``; octave ``j`` is period ``2**j``), each conjugate pair counted once, the
   statistic is ``mean R`` and the *excess* is ``exp(mean R)``.
4. The null distribution: the same statistic on ``n_null`` copies of that set of bins translated in
   frequency by a random offset ``(du, dv)`` with ``du`` and ``dv`` not multiples of ``H/S`` and
   ``W/S``, so that every copy lands on non-lattice bins; bins on an axis move along their axis, so
   the copy has as many axis bins as the set. ``p = (1 + #{null >= observed}) / (1 + n_null)``.
5. The three self-conjugate lattice bins ``(0, W/2)``, ``(H/2, 0)``, ``(H/2, W/2)`` hold one real
   Fourier coefficient per map instead of a complex one, so by chance their power spreads more
   (a Gamma(K/2, 2) instead of a Gamma(K, 1) law, for K Gaussian maps pooled). Before the test each is
   mapped through the two laws' survival functions onto the complex bins' law, with the background
   level taken from its neighbours; otherwise period 2 would be judged against the wrong spread.
6. Several periods are tested at once: ``p_value`` is the smallest Holm-adjusted p-value, which is
   ``min(1, G * min_j p_j)`` for ``G`` periods tested (Bonferroni's bound for the global test).

**Tile** (:func:`shared_tile_test`). Per image, the mean of ``sum_c g_c^2`` at each of the ``S x S``
phases, on the interior (``max(S, 16)`` pixels, rounded up to a multiple of ``S``, cut from every
side: the image border makes a tile of its own; it must hold at least 4 periods per side), with the energy's slow trend removed and a taper
applied (:func:`relative_tiles`), divided by the mean energy and centred: ``t_i``. The pattern
that images *share* is estimated without each image's own chance variation by a U-statistic,

    ``U = sum_{i != k} <t_i, t_k> / (n (n - 1) S^2)``,

whose expectation is 0 when the images share no pattern; ``shared_tile_cv = sqrt(max(U, 0))`` is the
coefficient of variation of the shared tile. Its null rolls each image's tile by an independent
random phase ``n_null`` times.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from scipy import special

__all__ = [
    "LineTest",
    "TileTest",
    "holm_adjust",
    "interior_margin",
    "line_excess_test",
    "line_ratio_map",
    "periodic_fft",
    "relative_tiles",
    "shared_tile_test",
    "tile_testable",
]

# Half-width, in bins, of the window that gives a bin its local background (the audit's +-2).
BACKGROUND_HALF_WIDTH = 2
# The smallest margin, in pixels, cut from every side before the shared tile is measured.
MIN_INTERIOR_MARGIN = 16
# The interior must hold this many periods per side: with fewer, the layout that photographs share
# (subjects near the centre) looks like a tile of period S, and the random-phase null cannot tell.
MIN_INTERIOR_PERIODS = 4
# Null draws are processed in chunks of at most this many numbers, to bound memory.
_CHUNK_ELEMENTS = 2_000_000


def periodic_fft(x: torch.Tensor) -> torch.Tensor:
    """FFT (``norm="ortho"``) of the periodic component of Moisan's periodic-plus-smooth decomposition.

    L. Moisan, "Periodic plus smooth image decomposition", J. Math. Imaging Vis. 39 (2011).
    ``x = p + s`` where ``s`` is smooth and carries the jumps across the image's borders; ``p``
    has no boundary cross in its spectrum. The mean is removed (the DC bin is 0).

    Args:
        x: real maps, shape ``(..., H, W)``.

    Returns:
        Complex tensor ``(..., H, W)``: the spectrum of ``p`` minus its mean.

    Example:
        >>> ramp = torch.arange(8.0).repeat(8, 1)   # a jump of 7 where the border wraps around
        >>> raw = torch.fft.fft2(ramp - ramp.mean(), norm="ortho").abs().square()
        >>> periodic = periodic_fft(ramp).abs().square()
        >>> round(float(raw[0, 4]), 6), round(float(periodic[0, 4]), 6)
        (16.0, 0.25)
    """
    h, w = x.shape[-2:]
    jump_y = x[..., -1, :] - x[..., 0, :]
    jump_x = x[..., :, -1] - x[..., :, 0]
    v = torch.zeros_like(x)
    v[..., 0, :] += jump_y
    v[..., -1, :] -= jump_y
    v[..., :, 0] += jump_x
    v[..., :, -1] -= jump_x
    cy = torch.cos(2 * math.pi * torch.arange(h, device=x.device, dtype=x.dtype) / h)
    cx = torch.cos(2 * math.pi * torch.arange(w, device=x.device, dtype=x.dtype) / w)
    den = 2 * cy[:, None] + 2 * cx[None, :] - 4
    den[0, 0] = 1.0
    smooth = torch.fft.fft2(v, norm="ortho") / den
    spectrum = torch.fft.fft2(x, norm="ortho") - smooth
    spectrum[..., 0, 0] = 0
    return spectrum


def _box_sum(x: torch.Tensor, half: int) -> torch.Tensor:
    """Circular sum over a (2 half + 1)^2 window of an (H, W) map."""
    k = 2 * half + 1
    padded = F.pad(x[None, None], (half, half, half, half), mode="circular")
    return F.conv2d(padded, torch.ones(1, 1, k, k, dtype=x.dtype, device=x.device))[0, 0]


def _box_sum_1d(x: torch.Tensor, half: int) -> torch.Tensor:
    k = 2 * half + 1
    padded = F.pad(x[None, None], (half, half), mode="circular")
    return F.conv1d(padded, torch.ones(1, 1, k, dtype=x.dtype, device=x.device))[0, 0]


def line_ratio_map(log_power: torch.Tensor, lattice: torch.Tensor, half: int = BACKGROUND_HALF_WIDTH) -> torch.Tensor:
    """``R = log P - (mean log P over the local non-lattice background)`` at every bin (see step 2).

    Args:
        log_power: ``(H, W)`` log power spectrum (DC anywhere: it is never used).
        lattice: ``(H, W)`` boolean, True on lattice bins (DC included or not).
        half: half-width of the background window in bins.

    Returns:
        ``(H, W)`` map; NaN where a bin has no background bin.
    """
    h, w = log_power.shape
    off_axis = torch.ones(h, w, dtype=torch.bool, device=log_power.device)
    off_axis[0, :] = False
    off_axis[:, 0] = False
    weight = (off_axis & ~lattice).to(log_power.dtype)
    lp = torch.where(weight > 0, log_power, torch.zeros_like(log_power))
    num = _box_sum(lp * weight, half) - lp * weight  # the bin itself is not its own background
    den = _box_sum(weight, half) - weight
    background = num / den

    def axis_background(line: torch.Tensor, on_lattice: torch.Tensor) -> torch.Tensor:
        wt = (~on_lattice).to(line.dtype)
        wt[0] = 0.0  # DC
        vals = torch.where(wt > 0, line, torch.zeros_like(line))
        return (_box_sum_1d(vals * wt, half) - vals * wt) / (_box_sum_1d(wt, half) - wt)

    background[0, :] = axis_background(log_power[0, :], lattice[0, :])
    background[:, 0] = axis_background(log_power[:, 0], lattice[:, 0])
    return log_power - background


def holm_adjust(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment (NaNs are left out and stay NaN)."""
    finite = [(p, i) for i, p in enumerate(p_values) if not math.isnan(p)]
    finite.sort()
    m = len(finite)
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(finite):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


@dataclass
class LineTest:
    """Result of :func:`line_excess_test`: excess and p-value per period (keys: period in pixels)."""

    lattice_excess: float
    period_excess: dict[int, float] = field(default_factory=dict)
    period_p_values: dict[int, float] = field(default_factory=dict)
    period_p_adjusted: dict[int, float] = field(default_factory=dict)
    p_value: float = math.nan
    n_null: int = 0


def _representatives(periods: torch.Tensor) -> torch.Tensor:
    """Boolean mask picking one bin of each conjugate pair (u, v) ~ (-u, -v) of the lattice."""
    h, w = periods.shape
    u = torch.arange(h, device=periods.device)[:, None]
    v = torch.arange(w, device=periods.device)[None, :]
    index = u * w + v
    conj = ((-u) % h) * w + (-v) % w
    return (periods > 1) & (index <= conj)


def _match_self_conjugate(ratio: torch.Tensor, n_maps: int) -> torch.Tensor:
    """Map the self-conjugate bins' R onto the law of a complex bin (step 5 of the module docstring)."""
    h, w = ratio.shape
    out = ratio.clone()
    k = float(n_maps)
    for u, v in {(0, w // 2), (h // 2, 0), (h // 2, w // 2)} - {(0, 0)}:
        if (u and 2 * u != h) or (v and 2 * v != w):
            continue  # odd size: no real bin there
        r = float(ratio[u, v])
        if math.isnan(r) or math.isinf(r):
            continue
        # A complex bin's power over its neighbours' geometric mean is Gamma(K, 1) / exp(psi(K)) by
        # chance; a real bin's is Gamma(K/2, 2) / exp(psi(K)). Map through the survival functions.
        x = math.exp(r + special.digamma(k))
        tail = special.gammaincc(k / 2, x / 2)
        if 0.0 < tail < 1.0:
            out[u, v] = math.log(special.gammainccinv(k, tail)) - special.digamma(k)
    return out


def line_excess_test(
    power: torch.Tensor,
    stride: int,
    periods: torch.Tensor,
    *,
    n_maps: int,
    n_null: int = 999,
    seed: int = 0,
) -> LineTest:
    """Line strength of the lattice against its local background, per period, with p-values.

    Args:
        power: ``(H, W)`` power spectrum of periodic components (summed over maps), ``H`` and ``W``
            multiples of ``stride``.
        stride: the period ``S``.
        periods: ``(H, W)`` period of each lattice bin, 0 elsewhere (:func:`gradviz.spectrum.period_map`).
        n_maps: how many (image, channel) maps were summed into ``power`` (for step 5).
        n_null: null draws per period (at least 200 for a p-value near 0.005 to mean anything);
            0 computes the excesses only (every p-value NaN), for cheap per-step tracking.
        seed: seeds the null draws; equal inputs give equal numbers.

    Returns:
        :class:`LineTest`. Everything is NaN when ``H == S`` or ``W == S`` (no background exists).
    """
    h, w = power.shape
    my, mx = h // stride, w // stride
    if stride < 2 or my < 2 or mx < 2:
        return LineTest(lattice_excess=math.nan)
    power = power.to(torch.float64)
    positive = power[power > 0]
    floor = float(positive.mean()) * 1e-12 if positive.numel() else 1.0  # keeps log finite on exact zeros
    log_power = torch.log(power.clamp_min(floor))
    lattice = periods > 0
    ratio = line_ratio_map(log_power, lattice)
    ratio = _match_self_conjugate(ratio, n_maps)

    reps = _representatives(periods)
    gen = torch.Generator().manual_seed(int(seed))
    du = _offsets(h, my, n_null, gen)
    dv = _offsets(w, mx, n_null, gen)
    ratio_flat = ratio.flatten()
    result = LineTest(lattice_excess=math.exp(float(ratio[reps].mean())), n_null=n_null)
    for p in sorted(int(x) for x in periods[reps].unique().tolist()):
        ys, xs = torch.nonzero(reps & (periods == p), as_tuple=True)
        observed = float(ratio[ys, xs].mean())
        result.period_excess[p] = math.exp(observed)
        if n_null == 0:
            result.period_p_values[p] = math.nan
            continue
        # translate: off-axis bins by (du, dv), bins on the row u = 0 by (0, dv), on the column v = 0 by (du, 0)
        ty = torch.where(ys[None, :] == 0, ys[None, :], (ys[None, :] + du[:, None].to(ys.device)) % h)
        tx = torch.where(xs[None, :] == 0, xs[None, :], (xs[None, :] + dv[:, None].to(xs.device)) % w)
        null = ratio_flat[ty * w + tx].mean(dim=1)
        result.period_p_values[p] = (1 + int((null >= observed - 1e-12).sum())) / (1 + n_null)
    keys = list(result.period_p_values)
    adjusted = holm_adjust([result.period_p_values[k] for k in keys])
    result.period_p_adjusted = dict(zip(keys, adjusted))
    finite = [q for q in adjusted if not math.isnan(q)]
    result.p_value = min(finite) if finite else math.nan
    return result


def _offsets(n: int, step: int, count: int, gen: torch.Generator) -> torch.Tensor:
    """``count`` random offsets in ``[1, n)`` that are not multiples of ``step``."""
    allowed = torch.tensor([d for d in range(1, n) if d % step], dtype=torch.long)
    return allowed[torch.randint(len(allowed), (count,), generator=gen)]


def interior_margin(stride: int) -> int:
    """Pixels cut from every side before the shared tile: ``max(S, 16)`` rounded up to a multiple of ``S``."""
    return stride * math.ceil(max(stride, MIN_INTERIOR_MARGIN) / stride)


def tile_testable(height: int, width: int, stride: int) -> bool:
    """True when the interior of an ``height x width`` map holds ``MIN_INTERIOR_PERIODS`` periods per side."""
    cut = interior_margin(stride)
    return min(height, width) - 2 * cut >= MIN_INTERIOR_PERIODS * stride


@dataclass
class TileTest:
    """Result of :func:`shared_tile_test`."""

    shared_tile_cv: float
    p_value: float
    statistic: float  # U, the mean product of different images' tiles
    note: str = ""


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
        ``(B, S, S)``: the tapered phase means of ``d`` over the interior (``interior_margin(S)``
        pixels cut from every side) over the tapered mean energy there, centred to mean 0.
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


def shared_tile_test(tiles: torch.Tensor, *, n_null: int = 999, seed: int = 0) -> TileTest:
    """The tile pattern that images share, with a random-phase null (see the module docstring).

    Args:
        tiles: ``(n, S, S)`` per-image relative tiles (:func:`relative_tiles`); each is re-centred.
        n_null: null draws; 0 computes the statistic only (p-value NaN).
        seed: seeds the random phases.

    Returns:
        :class:`TileTest`; NaN with a note for fewer than two images or ``S == 1``.
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
    chunk = max(1, _CHUNK_ELEMENTS // (n * s * s))
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
