"""Spectrum stage: FFT power of signed gradient maps, energy shares, and calibrated grid tests.

Conventions, for a gradient ``g`` of shape (C, H, W) or (B, C, H, W) and a period ``S``
(the cumulative stride of the layer whose objective produced ``g``):

1. **Crop.** Keep the top-left ``H' x W'`` pixels with ``H' = S * floor(H / S)`` (same for W).
   A network samples its input on a grid anchored at pixel (0, 0), so cutting rows and
   columns off the bottom and right keeps every pixel at the phase it had.
2. **Equal weights.** By default each image is scaled to unit energy (``weighting="equal"``), so
   that a few images with large gradients cannot decide a pooled number; ``"energy"`` pools raw.
3. **Mean.** Remove each channel's mean, per image.
4. **FFT.** ``G_c = fft2(g_c, norm="ortho")`` so that ``sum |G_c|^2 = sum g_c^2`` (Parseval);
   the power is ``P(u, v) = sum_c |G_c(u, v)|^2``, summed over images for a batch.

Frequencies are ``f_y = u / H'`` and ``f_x = v / W'`` cycles per pixel. The *lattice* is the set
of bins whose two frequencies are both multiples of ``1 / S``; a pattern that repeats every ``S``
pixels lives there and nowhere else. The bin at ``(a/S, b/S)`` has period ``S / gcd(a, b, S)``.

*Is there a grid?* (the calibrated tests of :mod:`gradviz.stats`)

- ``lattice_excess``, ``octave_excess[j-1]``: the lattice bins' power (of period ``2**j``) over the
  geometric mean of their local non-lattice background, after removing the boundary cross;
  1 means no grid whatever the spectrum's slope. ``octave_p_values`` against translated copies of
  the same bins; ``p_value`` the Holm-adjusted minimum; ``grid_detected = p_value < alpha``.
- ``shared_tile_cv``: the coefficient of variation of the energy tile that the images share (a
  U-statistic, 0 in expectation without a shared pattern), on the interior; ``tile_p_value`` from
  random per-image phase rolls. It needs 4 periods per side in the interior (NaN, with a note, otherwise).

*How much of the gradient is grid?* (energy shares, exact arithmetic, no test)

- ``lattice_fraction = sum_{lattice, not DC} P / sum_{not DC} P``; ``octave_fractions[j-1]`` the
  share at period exactly ``2**j``; they add up to ``lattice_fraction``.
- ``null_fraction = (S*S - 1) / (H'*W' - 1)``: the share a *flat* (white) spectrum would put on the
  lattice. Real gradients are sloped, so it is a reference, never a test.
- ``tile[p, q]``: mean of ``sum_c g_c^2`` at ``y = p mod S``, ``x = q mod S`` on the whole cropped map,
  normalised to mean 1; ``tile_contrast = max / min``, ``tile_cv = std / mean``. A description: its
  max/min is mostly chance at large ``S`` (use ``shared_tile_cv`` and ``tile_p_value`` as evidence).
  For a constant kernel with white-noise upstream gradient it is the Distill article's overlap count
  pattern.
- ``hf_offlattice_fraction``: energy in the top octave (``max(|f_y|, |f_x|) >= 1/4``) that is not on
  the lattice, over all non-DC energy; the less organised high-frequency noise.
- ``coherent_lattice_fraction``: the lattice share of the mean gradient's spectrum.

Everything is built from sums over images (spectra, tiles, the mean gradient) and one ``S x S`` tile
per image, so accumulators on several processes can be merged (:meth:`SpectrumAccumulator.merge`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch

from gradviz.outputs import json_ready
from gradviz.stats import (
    interior_margin,
    line_excess_test,
    periodic_fft,
    relative_tiles,
    shared_tile_test,
    tile_testable,
)

__all__ = [
    "CheckerboardMetrics",
    "SpectrumAccumulator",
    "checkerboard_metrics",
    "crop_to_period",
    "lattice_mask",
    "period_map",
    "radial_profile",
]

# Bins with max(|f_y|, |f_x|) at or above this many cycles per pixel form the top octave
# (periods of 2 to 4 pixels), where max-pooling noise shows.
HIGH_FREQUENCY_CUTOFF = 0.25
# Null draws per test: at least 200 are needed; 999 resolves p-values down to 0.001.
DEFAULT_NULL_DRAWS = 999
WEIGHTINGS = ("equal", "energy")


@dataclass
class CheckerboardMetrics:
    """Checkerboard metrics of one gradient map or a pooled batch (see the module docstring)."""

    stride: int
    shape: tuple[int, int]  # (H', W') after cropping
    lattice_fraction: float
    null_fraction: float
    octave_fractions: list[float]
    octave_null_fractions: list[float]
    tile: list[list[float]]
    tile_contrast: float
    tile_cv: float
    hf_offlattice_fraction: float
    coherent_lattice_fraction: float = math.nan
    n_images: int = 1
    period_fractions: dict[int, float] = field(default_factory=dict)
    # the calibrated tests
    lattice_excess: float = math.nan
    octave_excess: list[float] = field(default_factory=list)
    octave_p_values: list[float] = field(default_factory=list)
    octave_p_adjusted: list[float] = field(default_factory=list)
    p_value: float = math.nan
    grid_detected: bool = False
    period_excess: dict[int, float] = field(default_factory=dict)
    period_p_values: dict[int, float] = field(default_factory=dict)
    period_p_adjusted: dict[int, float] = field(default_factory=dict)
    shared_tile_cv: float = math.nan
    tile_p_value: float = math.nan
    tile_note: str = ""
    alpha: float = 0.05
    seed: int = 0
    n_null: int = DEFAULT_NULL_DRAWS
    weighting: str = "equal"
    zero_gradient: bool = False  # the gradient was zero everywhere: nothing to measure, nothing tested

    @property
    def tile_detected(self) -> bool:
        """True when the images share an energy tile (``tile_p_value < alpha``)."""
        return not math.isnan(self.tile_p_value) and self.tile_p_value < self.alpha

    def grid_octaves(self) -> list[int]:
        """Periods (pixels) whose Holm-adjusted p-value is below ``alpha``."""
        return [p for p, q in self.period_p_adjusted.items() if q < self.alpha]

    @property
    def verdict(self) -> str:
        """``"grid: period 2 (5.1x), ..."`` or ``"no detectable grid"``, with the p-value."""
        if self.zero_gradient:
            return "no gradient (zero everywhere): nothing to measure"
        if self.n_null == 0:
            return "not tested (n_null = 0)"
        if math.isnan(self.p_value):
            return "not testable (the map holds a single period)"
        if not self.grid_detected:
            return f"no detectable grid (p = {self.p_value:.3g})"
        parts = [f"period {p} ({self.period_excess[p]:.3g}x)" for p in self.grid_octaves()]
        return f"grid: {', '.join(parts)} (p = {self.p_value:.3g})"

    def to_dict(self) -> dict:
        """JSON-ready dict; infinities and NaNs become ``None``."""
        d = asdict(self)
        d["verdict"] = self.verdict
        d["tile_detected"] = self.tile_detected
        for key in ("period_fractions", "period_excess", "period_p_values", "period_p_adjusted"):
            d[key] = {str(k): v for k, v in d[key].items()}
        return json_ready(d)


class NonFiniteGradient(ValueError):
    """A gradient with NaN or infinite values; ``bad`` holds the indices of those images in the batch."""

    def __init__(self, bad: list[int]):
        super().__init__(f"the gradient holds NaN or infinite values (images {bad} of the batch)")
        self.bad = bad


def _check_stride(stride: int) -> int:
    if isinstance(stride, bool) or int(stride) != stride or stride < 1:
        raise ValueError(f"stride must be a positive integer, got {stride!r}")
    return int(stride)


def crop_to_period(grad: torch.Tensor, stride: int) -> torch.Tensor:
    """Top-left crop of the last two dims to multiples of ``stride`` (see step 1 above)."""
    stride = _check_stride(stride)
    h, w = grad.shape[-2:]
    hc, wc = (h // stride) * stride, (w // stride) * stride
    if hc == 0 or wc == 0:
        raise ValueError(f"gradient of size {h}x{w} is smaller than the period {stride}")
    return grad[..., :hc, :wc]


def period_map(height: int, width: int, stride: int, device=None) -> torch.Tensor:
    """(H, W) integer map: the period ``S / gcd(a, b, S)`` of each lattice bin, 0 elsewhere.

    ``height`` and ``width`` must be multiples of ``stride``; DC has period 1.
    """
    stride = _check_stride(stride)
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
    """Boolean (H, W) mask of the non-DC lattice bins for period ``stride``."""
    return period_map(height, width, stride, device) > 1


def _high_band(height: int, width: int, device=None) -> torch.Tensor:
    fy = torch.fft.fftfreq(height, device=device).abs()
    fx = torch.fft.fftfreq(width, device=device).abs()
    return torch.maximum(fy[:, None], fx[None, :]) >= HIGH_FREQUENCY_CUTOFF


def _as_batch(grad: torch.Tensor) -> torch.Tensor:
    if grad.dim() == 2:
        return grad[None, None]
    if grad.dim() == 3:
        return grad[None]
    if grad.dim() == 4:
        return grad
    raise ValueError(f"expected a gradient of shape (H, W), (C, H, W) or (B, C, H, W), got {tuple(grad.shape)}")


class SpectrumAccumulator:
    """Accumulates, over batches, what the metrics need: sums and one ``S x S`` tile per image.

    Memory grows with the number of images only by ``S * S`` numbers each; everything is kept on
    the gradients' device in float64.

    Args:
        stride: the period ``S``.
        weighting: ``"equal"`` scales each image to unit energy before pooling; ``"energy"`` pools
            the raw gradients (images with larger gradients count more).

    Example:
        >>> acc = SpectrumAccumulator(4)
        >>> acc.add(torch.randn(2, 3, 32, 32)); acc.add(torch.randn(3, 3, 32, 32))
        >>> acc.metrics().n_images
        5
    """

    def __init__(self, stride: int, weighting: str = "equal"):
        self.stride = _check_stride(stride)
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {', '.join(WEIGHTINGS)}, got {weighting!r}")
        self.weighting = weighting
        self.n_images = 0
        self.n_maps = 0  # (image, channel) maps with energy: the K of the self-conjugate correction
        self.power_sum: torch.Tensor | None = None  # (H', W'): sum over images of P
        self.periodic_power_sum: torch.Tensor | None = None  # same, of the periodic components
        self.grad_sum: torch.Tensor | None = None  # (C, H', W'): for the coherent spectrum
        self.tile_sum: torch.Tensor | None = None  # (S, S): sum over images of the phase means
        self.interior_tiles: list[torch.Tensor] = []  # one (S, S) relative tile per image (stats.relative_tiles)

    def add(self, grad: torch.Tensor) -> None:
        """Add a gradient map (C, H, W) or a batch (B, C, H, W)."""
        g = crop_to_period(_as_batch(grad.detach()), self.stride).to(torch.float64)
        b, c, h, w = g.shape
        if self.power_sum is not None and self.grad_sum.shape != (c, h, w):
            raise ValueError(
                f"gradient shape {(c, h, w)} differs from the first one {tuple(self.grad_sum.shape)}"
            )
        finite = torch.isfinite(g).flatten(1).all(1)
        if not bool(finite.all()):
            raise NonFiniteGradient([i for i, ok in enumerate(finite.tolist()) if not ok])
        s = self.stride
        centred = g - g.mean(dim=(-2, -1), keepdim=True)
        energy_per_image = centred.square().sum((1, 2, 3))
        if self.weighting == "equal":
            scale = torch.where(energy_per_image > 0, energy_per_image.rsqrt(), torch.zeros_like(energy_per_image))
            g, centred = g * scale[:, None, None, None], centred * scale[:, None, None, None]
        energy = (g * g).sum(1)  # (B, H', W')
        tile = energy.reshape(b, h // s, s, w // s, s).mean(dim=(1, 3)).sum(0)
        power = torch.fft.fft2(centred, norm="ortho").abs().square().sum(dim=(0, 1))
        periodic_power = periodic_fft(centred).abs().square().sum(dim=(0, 1))
        if tile_testable(h, w, s):
            self.interior_tiles.extend(relative_tiles(energy, s).unbind(0))
        if self.power_sum is None:
            self.power_sum, self.periodic_power_sum = power, periodic_power
            self.grad_sum, self.tile_sum = g.sum(0), tile
        else:
            self.power_sum += power
            self.periodic_power_sum += periodic_power
            self.grad_sum += g.sum(0)
            self.tile_sum += tile
        self.n_images += b
        self.n_maps += int((centred.square().sum((-2, -1)) > 0).sum())

    def merge(self, other: "SpectrumAccumulator") -> "SpectrumAccumulator":
        """Add another accumulator's images (same stride, weighting and shape) to this one."""
        if (other.stride, other.weighting) != (self.stride, self.weighting):
            raise ValueError("accumulators differ in stride or weighting")
        if other.n_images == 0:
            return self
        if self.n_images == 0:
            self.__dict__.update({k: (v.clone() if torch.is_tensor(v) else (list(v) if isinstance(v, list) else v))
                                  for k, v in other.__dict__.items()})
            return self
        if self.grad_sum.shape != other.grad_sum.shape:
            raise ValueError("accumulators hold gradients of different shapes")
        self.power_sum += other.power_sum
        self.periodic_power_sum += other.periodic_power_sum
        self.grad_sum += other.grad_sum
        self.tile_sum += other.tile_sum
        self.interior_tiles.extend(other.interior_tiles)
        self.n_images += other.n_images
        self.n_maps += other.n_maps
        return self

    def _require(self) -> None:
        if self.n_images == 0:
            raise ValueError("no gradient was added")

    def incoherent_power(self) -> torch.Tensor:
        """Mean over images of the power spectrum P (the mean of the spectra), (H', W')."""
        self._require()
        return self.power_sum / self.n_images

    def coherent_power(self) -> torch.Tensor:
        """Power spectrum of the mean gradient (the spectrum of the mean), (H', W')."""
        self._require()
        mean = self.grad_sum / self.n_images
        mean = mean - mean.mean(dim=(-2, -1), keepdim=True)
        return torch.fft.fft2(mean, norm="ortho").abs().square().sum(0)

    def mean_gradient(self) -> torch.Tensor:
        self._require()
        return self.grad_sum / self.n_images

    def metrics(self, *, seed: int = 0, alpha: float = 0.05, n_null: int = DEFAULT_NULL_DRAWS) -> CheckerboardMetrics:
        """The metrics of the pooled images: energy shares, descriptions, and the two tests.

        Args:
            seed: seeds the null draws of both tests.
            alpha: the level of ``grid_detected`` and of ``verdict``.
            n_null: null draws per test (at least 200); 0 skips both tests (excess and shared tile cv
                only, every p-value NaN, ``grid_detected`` False), for cheap per-step tracking.
        """
        self._require()
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
        if n_null != 0 and n_null < 200:
            raise ValueError(f"n_null must be 0 (no tests) or at least 200 for a usable p-value, got {n_null!r}")
        power = self.power_sum
        h, w = power.shape
        s = self.stride
        periods = period_map(h, w, s, power.device)
        non_dc = power.clone()
        non_dc[0, 0] = 0.0
        total = float(non_dc.sum())
        n_bins = h * w - 1
        on_lattice = periods > 1

        period_fractions: dict[int, float] = {}
        for p in sorted({int(x) for x in periods.unique().tolist()} - {0, 1}):
            period_fractions[p] = _ratio(float(non_dc[periods == p].sum()), total)
        power_of_two = s & (s - 1) == 0
        octaves = [2**j for j in range(1, s.bit_length())] if power_of_two else []
        octave_fracs = [period_fractions.get(p, 0.0) for p in octaves]
        octave_nulls = [float((periods == p).sum()) / n_bins for p in octaves]

        high = _high_band(h, w, power.device) & ~on_lattice
        high[0, 0] = False

        tile = self.tile_sum / self.n_images
        tile_mean = float(tile.mean())
        if tile_mean > 0:
            tile = tile / tile_mean
            tmin = float(tile.min())
            contrast = float(tile.max()) / tmin if tmin > 0 else math.inf
            cv = float(tile.std(unbiased=False))
        else:
            contrast, cv = math.nan, math.nan

        coherent = self.coherent_power()
        coherent[0, 0] = 0.0
        coherent_fraction = _ratio(float(coherent[on_lattice].sum()), float(coherent.sum()))

        empty = not total > 0  # a gradient that is zero everywhere: no test has anything to test
        draws = 0 if empty else n_null
        lines = line_excess_test(self.periodic_power_sum, s, periods, n_maps=max(self.n_maps, 1),
                                 n_null=draws, seed=seed)
        if self.interior_tiles and not empty:
            tiles = shared_tile_test(torch.stack(self.interior_tiles), n_null=draws, seed=seed)
        else:
            tiles = None
        p_value = lines.p_value
        return CheckerboardMetrics(
            stride=s,
            shape=(h, w),
            lattice_fraction=_ratio(float(non_dc[on_lattice].sum()), total),
            null_fraction=(s * s - 1) / n_bins if n_bins > 0 else math.nan,
            octave_fractions=octave_fracs,
            octave_null_fractions=octave_nulls,
            tile=tile.tolist(),
            tile_contrast=contrast,
            tile_cv=cv,
            hf_offlattice_fraction=_ratio(float(non_dc[high].sum()), total),
            coherent_lattice_fraction=coherent_fraction,
            n_images=self.n_images,
            period_fractions=period_fractions,
            lattice_excess=lines.lattice_excess,
            octave_excess=[lines.period_excess.get(p, math.nan) for p in octaves],
            octave_p_values=[lines.period_p_values.get(p, math.nan) for p in octaves],
            octave_p_adjusted=[lines.period_p_adjusted.get(p, math.nan) for p in octaves],
            p_value=p_value,
            grid_detected=bool(not math.isnan(p_value) and p_value < alpha),
            period_excess=lines.period_excess,
            period_p_values=lines.period_p_values,
            period_p_adjusted=lines.period_p_adjusted,
            shared_tile_cv=tiles.shared_tile_cv if tiles else math.nan,
            tile_p_value=tiles.p_value if tiles else math.nan,
            tile_note=tiles.note if tiles else "no gradient" if empty else
            f"the map is too small: the interior ({interior_margin(s)} px cut from every side) must hold 4 periods per side",
            alpha=alpha,
            seed=seed,
            n_null=n_null,
            weighting=self.weighting,
            zero_gradient=empty,
        )


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else math.nan


def checkerboard_metrics(
    grad: torch.Tensor,
    stride: int,
    *,
    seed: int = 0,
    alpha: float = 0.05,
    n_null: int = DEFAULT_NULL_DRAWS,
    weighting: str = "equal",
) -> CheckerboardMetrics:
    """Checkerboard metrics of a signed gradient map (C, H, W) or a batch (B, C, H, W).

    For a batch, each image is scaled to unit energy (``weighting="equal"``) and the spectra and
    tiles are summed before the ratios are taken; ``coherent_lattice_fraction`` is that of the mean
    gradient. See the module docstring for the formulas and :mod:`gradviz.stats` for the tests.

    Args:
        grad: the gradient, ``(H, W)``, ``(C, H, W)`` or ``(B, C, H, W)``.
        stride: the period ``S`` to test (the cumulative stride of the layer).
        seed: seeds the null draws; the same input and seed give the same numbers.
        alpha: level of ``grid_detected``.
        n_null: null draws per test (0: no tests, see :meth:`SpectrumAccumulator.metrics`).
        weighting: ``"equal"`` or ``"energy"`` (see :class:`SpectrumAccumulator`).

    Example:
        >>> g = torch.randn(8, 3, 64, 64, generator=torch.Generator().manual_seed(0))
        >>> m = checkerboard_metrics(g, 8)
        >>> m.grid_detected, round(m.lattice_excess, 1)
        (False, 1.0)
    """
    acc = SpectrumAccumulator(stride, weighting)
    acc.add(grad)
    return acc.metrics(seed=seed, alpha=alpha, n_null=n_null)


def radial_profile(power: torch.Tensor, n_bins: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Azimuthal mean of a power spectrum (H, W) against radius in cycles per pixel.

    For plots only: averaging over rings dilutes the lattice lines (the corner bin (1/2, 1/2)
    sits alone at radius 0.707).
    Returns ``(radius_centres, mean_power)``; empty rings give NaN.
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
