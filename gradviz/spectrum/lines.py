"""The line test: is there a grid? Line strength against the local background, with a null that
holds whatever the spectrum's slope.

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
7. For drawing, each period also gets the middle 90% of its null excesses (the *null band*) and its
   *detection threshold*: the excess above which its own p-value is below ``alpha / G``, so that the
   period is detected whatever the others show (Holm's first step; a period below it may still be
   detected at a later step).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from scipy import special

from gradviz.spectrum.metrics import DEFAULT_NULL_DRAWS

# Half-width, in bins, of the window that gives a bin its local background (+-2 bins, step 2 above).
BACKGROUND_HALF_WIDTH = 2
# Null draws are processed in chunks of at most this many numbers, to bound memory.
NULL_CHUNK_ELEMENTS = 250_000

def power_of(spectrum: torch.Tensor) -> torch.Tensor:
    """``|z|^2`` of a complex spectrum, as ``re^2 + im^2`` (no square root taken and undone).

    Example:
        >>> power_of(torch.tensor([3 + 4j, 1j], dtype=torch.complex128)).tolist()
        [25.0, 1.0]
    """
    return spectrum.real.square() + spectrum.imag.square()


def periodic_fft(x: torch.Tensor, x_fft: torch.Tensor | None = None) -> torch.Tensor:
    """FFT (``norm="ortho"``) of the periodic component of Moisan's periodic-plus-smooth decomposition.

    L. Moisan, "Periodic plus smooth image decomposition", J. Math. Imaging Vis. 39 (2011).
    ``x = p + s`` where ``s`` is smooth and carries the jumps across the image's borders; ``p``
    has no boundary cross in its spectrum. The mean is removed (the DC bin is 0).

    Args:
        x: real maps, shape ``(..., H, W)``.
        x_fft: ``torch.fft.fft2(x, norm="ortho")`` when the caller has it (it is not computed twice).

    Returns:
        Complex tensor: the spectrum of ``p`` minus its mean.

    Shape:
        ``(..., H, W) -> (..., H, W)``.

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
    spectrum = (torch.fft.fft2(x, norm="ortho") if x_fft is None else x_fft) - smooth
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
        ``R``; NaN where a bin has no background bin.

    Shape:
        ``(H, W), (H, W) -> (H, W)``.

    Example:
        >>> log_power = torch.zeros(8, 8, dtype=torch.float64)
        >>> lattice = torch.zeros(8, 8, dtype=torch.bool)
        >>> lattice[::4, ::4] = True  # period 2 on an 8 x 8 map
        >>> log_power[4, 4], log_power[0, 4] = 2.0, 1.5  # two lines above a flat background
        >>> r = line_ratio_map(log_power, lattice)
        >>> float(r[4, 4]), float(r[0, 4]), float(r[3, 3])
        (2.0, 1.5, 0.0)
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
    """Holm's step-down adjustment (NaNs are left out and stay NaN).

    The ``k``-th smallest of ``m`` p-values becomes ``min(1, max_{j <= k} (m - j + 1) p_(j))``.

    Args:
        p_values: raw p-values, NaN for an untested hypothesis.

    Returns:
        The adjusted p-values, in the order given.

    Example:
        >>> holm_adjust([0.25, 0.0625, math.nan, 0.125])  # 3 x 0.0625, then max(2 x 0.125, 0.1875), ...
        [0.25, 0.1875, nan, 0.25]
    """
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

    lattice_excess: float  # exp(mean R) over all lattice bins (one per conjugate pair)
    period_excess: dict[int, float] = field(default_factory=dict)  # exp(mean R) per period (step 3)
    period_p_values: dict[int, float] = field(default_factory=dict)  # against translated copies (step 4)
    period_p_adjusted: dict[int, float] = field(default_factory=dict)  # Holm-adjusted (step 6)
    p_value: float = math.nan  # the smallest adjusted p-value
    n_null: int = 0
    period_null_band: dict[int, tuple[float, float]] = field(default_factory=dict)  # 5% and 95% of the null (step 7)
    period_threshold: dict[int, float] = field(default_factory=dict)  # detected above this excess (step 7)


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
    n_null: int = DEFAULT_NULL_DRAWS,
    seed: int = 0,
    alpha: float = 0.05,
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
        alpha: the level the detection thresholds are for (step 7); the p-values do not depend on it.

    Returns:
        :class:`LineTest`. Everything is NaN when ``S == 1``, ``H == S`` or ``W == S`` (no lattice
        or no background).

    Shape:
        ``power`` and ``periods``: ``(H, W)``.

    Example:
        >>> from gradviz.spectrum.lattice import period_map
        >>> gen = torch.Generator().manual_seed(0)
        >>> checker = torch.tensor([[1.0, -1.0], [-1.0, 1.0]], dtype=torch.float64).repeat(8, 8)
        >>> x = checker + torch.randn(16, 16, generator=gen, dtype=torch.float64)
        >>> t = line_excess_test(periodic_fft(x).abs().square(), 2, period_map(16, 16, 2), n_maps=1, n_null=200)
        >>> t.p_value == 1 / 201, round(t.period_excess[2], 2)  # no null draw reaches the line: p = 1 / (1 + n_null)
        (True, 7.5)
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
    nulls = {}
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
        result.period_null_band[p] = (math.exp(float(torch.quantile(null, 0.05))),
                                      math.exp(float(torch.quantile(null, 0.95))))
        nulls[p] = null
    for p, null in nulls.items():
        result.period_threshold[p] = detection_threshold(null, alpha / len(nulls))
    keys = list(result.period_p_values)
    adjusted = holm_adjust([result.period_p_values[k] for k in keys])
    result.period_p_adjusted = dict(zip(keys, adjusted))
    finite = [q for q in adjusted if not math.isnan(q)]
    result.p_value = min(finite) if finite else math.nan
    return result


def detection_threshold(null: torch.Tensor, level: float) -> float:
    """The excess above which ``p = (1 + #{null >= observed}) / (1 + n)`` is below ``level``.

    ``p < level`` holds exactly when fewer than ``m`` null values reach the observed statistic, with
    ``m`` the largest count allowed, so the threshold is ``exp`` of the ``(m + 1)``-th largest null
    value; ``inf`` when even ``p = 1 / (1 + n)`` is not below ``level`` (too few draws).

    Args:
        null: the null statistics (``mean R`` of the translated copies), shape ``(n,)``.
        level: the p-value to get below.

    Example:
        >>> null = torch.log(torch.arange(1.0, 100.0, dtype=torch.float64))  # excesses 1 .. 99
        >>> round(detection_threshold(null, 0.05), 9)  # above 96, at most 3 of 99 draws reach it: p <= 4/100
        96.0
        >>> detection_threshold(null, 0.005)
        inf
    """
    n = int(null.numel())
    allowed = math.ceil(level * (1 + n) - 1) - 1  # the most null values >= observed with p < level
    if allowed < 0 or n == 0:
        return math.inf
    ordered = torch.sort(null, descending=True).values
    return math.exp(float(ordered[min(allowed, n - 1)]))


def _offsets(n: int, step: int, count: int, gen: torch.Generator) -> torch.Tensor:
    """``count`` random offsets in ``[1, n)`` that are not multiples of ``step``."""
    allowed = torch.tensor([d for d in range(1, n) if d % step], dtype=torch.long)
    return allowed[torch.randint(len(allowed), (count,), generator=gen)]
