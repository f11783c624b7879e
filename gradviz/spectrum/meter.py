"""Spectrum stage: FFT power of signed gradient maps, energy shares, and calibrated grid tests.

Conventions, for a gradient ``g`` of shape (C, H, W) or (B, C, H, W) and a period ``S``
(the cumulative stride of the layer whose objective produced ``g``):

1. **Crop.** Keep the top-left ``H' x W'`` pixels with ``H' = S * floor(H / S)`` (same for W).
   A network samples its input on a grid anchored at pixel (0, 0), so cutting rows and
   columns off the bottom and right keeps every pixel at the phase it had.
2. **Equal weights.** By default each image is scaled to unit energy (``weighting="equal"``; the
   energy once the means of step 3 are removed), so that a few images with large gradients cannot
   decide a pooled number; ``"energy"`` pools raw.
3. **Mean.** Remove each channel's mean, per image.
4. **FFT.** ``G_c = fft2(g_c, norm="ortho")`` so that ``sum |G_c|^2 = sum g_c^2`` (Parseval);
   the power is ``P(u, v) = sum_c |G_c(u, v)|^2``, summed over images for a batch.

Frequencies are ``f_y = u / H'`` and ``f_x = v / W'`` cycles per pixel. The *lattice* is the set
of bins whose two frequencies are both multiples of ``1 / S``; a pattern that repeats every ``S``
pixels lives there and nowhere else. The bin at ``(a/S, b/S)`` has period ``S / gcd(a, b, S)``.

The numbers (:class:`CheckerboardMetrics`, where each is defined) answer two questions.
*Is there a grid?* Calibrated tests with p-values: lines on the lattice against their local
background (:mod:`gradviz.spectrum.lines`) and an energy tile the images share (:mod:`gradviz.spectrum.tiles`).
*How much of the gradient is grid?* Energy shares, exact arithmetic and no test, among them:

- ``lattice_fraction = sum_{lattice, not DC} P / sum_{not DC} P``;
- ``hf_offlattice_fraction``: energy in the top octave (``max(|f_y|, |f_x|) >= 1/4``) that is not on
  the lattice, over all non-DC energy; the less organised high-frequency noise;
- ``coherent_lattice_fraction``: the lattice share of the mean gradient's spectrum (the mean over
  images of the weighted gradients, its channel means removed), DC left out.

Everything is built from sums over images (spectra, tiles, the mean gradient) and one ``S x S`` tile
per image, so accumulators on several processes can be merged (:meth:`SpectrumAccumulator.merge`).
"""

from __future__ import annotations

import math

import torch

from gradviz.spectrum.lattice import as_batch, check_stride, crop_to_period, high_band, period_map
from gradviz.spectrum.lines import line_excess_test, periodic_fft, power_of
from gradviz.spectrum.metrics import DEFAULT_NULL_DRAWS, CheckerboardMetrics
from gradviz.spectrum.tiles import interior_margin, relative_tiles, shared_tile_test, tile_testable

__all__ = ["CheckerboardMetrics", "NonFiniteGradient", "SpectrumAccumulator", "checkerboard_metrics"]

WEIGHTINGS = ("equal", "energy")


class NonFiniteGradient(ValueError):
    """A gradient with NaN or infinite values; ``bad`` holds the indices of those images in the batch.

    Example:
        >>> g = torch.zeros(3, 1, 4, 4)
        >>> g[1, 0, 2, 2] = math.inf
        >>> try:
        ...     SpectrumAccumulator(2).add(g)
        ... except NonFiniteGradient as e:
        ...     print(e.bad, e)
        [1] the gradient holds NaN or infinite values (images [1] of the batch)
    """

    def __init__(self, bad: list[int]):
        super().__init__(f"the gradient holds NaN or infinite values (images {bad} of the batch)")
        self.bad = bad


class SpectrumAccumulator:
    """Accumulates, over batches, what the metrics need: sums and one ``S x S`` tile per image.

    Memory grows with the number of images only by ``S * S`` numbers each; everything is kept on
    the gradients' device in float64.

    Args:
        stride: the period ``S``.
        weighting: ``"equal"`` scales each image to unit energy before pooling; ``"energy"`` pools
            the raw gradients (images with larger gradients count more).

    Example:
        >>> gen = torch.Generator().manual_seed(0)
        >>> acc = SpectrumAccumulator(4)
        >>> acc.add(torch.randn(2, 3, 32, 32, generator=gen)); acc.add(torch.randn(3, 3, 32, 32, generator=gen))
        >>> acc.n_images, acc.incoherent_power().shape, acc.metrics(n_null=0).n_images
        (5, torch.Size([32, 32]), 5)
    """

    def __init__(self, stride: int, weighting: str = "equal"):
        self.stride = check_stride(stride)
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {', '.join(WEIGHTINGS)}, got {weighting!r}")
        self.weighting = weighting
        self.n_images = 0
        self.n_maps = 0  # (image, channel) maps with energy: the K of the self-conjugate correction
        self.power_sum: torch.Tensor | None = None  # (H', W'): sum over images of P
        self.periodic_power_sum: torch.Tensor | None = None  # same, of the periodic components
        self.grad_sum: torch.Tensor | None = None  # (C, H', W'): for the coherent spectrum
        self.tile_sum: torch.Tensor | None = None  # (S, S): sum over images of the phase means
        self.interior_tiles: list[torch.Tensor] = []  # one (S, S) relative tile per image (tiles.relative_tiles)

    def add(self, grad: torch.Tensor) -> None:
        """Add a gradient map or a batch (cropped to multiples of ``S``; every batch the same ``(C, H', W')``).

        Args:
            grad: the gradient; each image is weighted, centred and transformed as in the module docstring.

        Raises:
            NonFiniteGradient: on NaN or infinite values (nothing is added).
            ValueError: when its cropped shape differs from the first gradient's.

        Shape:
            ``grad``: ``(H, W)``, ``(C, H, W)`` or ``(B, C, H, W)``.

        Example:
            >>> acc = SpectrumAccumulator(2)
            >>> acc.add(torch.ones(3, 5, 5))  # cropped to 4 x 4; a constant map has no energy left
            >>> acc.n_images, acc.n_maps, acc.tile_sum.tolist()
            (1, 0, [[0.0, 0.0], [0.0, 0.0]])
        """
        g = crop_to_period(as_batch(grad.detach()), self.stride).to(torch.float64)
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
        spectrum = torch.fft.fft2(centred, norm="ortho")
        power = power_of(spectrum).sum(dim=(0, 1))
        periodic_power = power_of(periodic_fft(centred, spectrum)).sum(dim=(0, 1))
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
        """Add another accumulator's images (same stride, weighting and shape) to this one.

        Args:
            other: the accumulator to add; it is left unchanged.

        Returns:
            ``self``, holding the images of both: its metrics are those of one accumulator fed them all.

        Example:
            >>> g = torch.randn(4, 1, 16, 16, generator=torch.Generator().manual_seed(0))
            >>> a, b, whole = SpectrumAccumulator(2), SpectrumAccumulator(2), SpectrumAccumulator(2)
            >>> a.add(g[:1]); b.add(g[1:]); whole.add(g)
            >>> merged = a.merge(b)
            >>> merged.n_images, torch.allclose(merged.power_sum, whole.power_sum, rtol=1e-12, atol=0)
            (4, True)
        """
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
        """Mean over images of the power spectrum P (the mean of the spectra), ``(H', W')``."""
        self._require()
        return self.power_sum / self.n_images

    def periodic_power(self) -> torch.Tensor:
        """Mean over images of the power spectrum of the periodic components (boundary cross removed): the
        spectrum the line test reads, ``(H', W')``."""
        self._require()
        return self.periodic_power_sum / self.n_images

    def coherent_power(self) -> torch.Tensor:
        """Power spectrum of the mean gradient (the spectrum of the mean), ``(H', W')``, summed over channels."""
        self._require()
        mean = self.grad_sum / self.n_images
        mean = mean - mean.mean(dim=(-2, -1), keepdim=True)
        return power_of(torch.fft.fft2(mean, norm="ortho")).sum(0)

    def mean_gradient(self) -> torch.Tensor:
        """Mean over images of the weighted, cropped gradients, ``(C, H', W')``."""
        self._require()
        return self.grad_sum / self.n_images

    def metrics(self, *, seed: int = 0, alpha: float = 0.05, n_null: int = DEFAULT_NULL_DRAWS) -> CheckerboardMetrics:
        """The metrics of the pooled images: energy shares, descriptions, and the two tests.

        Args:
            seed: seeds the null draws of both tests.
            alpha: the level of ``grid_detected`` and of ``verdict``.
            n_null: null draws per test (at least 200); 0 skips both tests (excess and shared tile cv
                only, every p-value NaN, ``grid_detected`` False), for cheap per-step tracking.

        Returns:
            :class:`CheckerboardMetrics` of all the images added.

        Example:
            >>> acc = SpectrumAccumulator(2)
            >>> acc.add(torch.tensor([[1.0, -1.0], [-1.0, 1.0]]).repeat(1, 4, 4))
            >>> acc.metrics(n_null=0).lattice_fraction
            1.0
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

        high = high_band(h, w, power.device) & ~on_lattice
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
                                 n_null=draws, seed=seed, alpha=alpha)
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
            octave_null_band=[lines.period_null_band.get(p, (math.nan, math.nan)) for p in octaves],
            octave_threshold=[lines.period_threshold.get(p, math.nan) for p in octaves],
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
    gradient. See the module docstring for the formulas and :mod:`gradviz.spectrum.lines` for the tests.

    Args:
        grad: the gradient, ``(H, W)``, ``(C, H, W)`` or ``(B, C, H, W)``.
        stride: the period ``S`` to test (the cumulative stride of the layer).
        seed: seeds the null draws; the same input and seed give the same numbers.
        alpha: level of ``grid_detected``.
        n_null: null draws per test (0: no tests, see :meth:`SpectrumAccumulator.metrics`).
        weighting: ``"equal"`` or ``"energy"`` (see :class:`SpectrumAccumulator`).

    Returns:
        :class:`CheckerboardMetrics`.

    Shape:
        ``grad``: ``(H, W)``, ``(C, H, W)`` or ``(B, C, H, W)``; cropped to ``(H', W')``.

    Example:
        >>> checker = torch.tensor([[1.0, -1.0], [-1.0, 1.0]]).repeat(8, 8)  # (-1)^(y + x), 16 x 16
        >>> noise = torch.randn(16, 16, generator=torch.Generator().manual_seed(0))
        >>> m = checkerboard_metrics(checker + 0.1 * noise, 2, n_null=200)
        >>> m.verdict  # no null draw reaches the line: p = 1 / (1 + n_null)
        'grid: period 2 (18.4x) (p = 0.00498)'
        >>> checkerboard_metrics(checker, 2, n_null=0).lattice_fraction  # a pure checkerboard is all lattice
        1.0
    """
    acc = SpectrumAccumulator(stride, weighting)
    acc.add(grad)
    return acc.metrics(seed=seed, alpha=alpha, n_null=n_null)
