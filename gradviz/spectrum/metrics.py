"""The result of the meter: :class:`CheckerboardMetrics`, the numbers of one map or a pooled batch.

The conventions (crop, weights, FFT, lattice) are those of :mod:`gradviz.spectrum.meter`, which
computes them (:func:`gradviz.spectrum.meter.checkerboard_metrics`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from gradviz.io.outputs import json_ready

__all__ = ["DEFAULT_NULL_DRAWS", "CheckerboardMetrics"]

# Null draws per test: at least 200 are needed; 999 resolves p-values down to 0.001.
DEFAULT_NULL_DRAWS = 999


@dataclass
class CheckerboardMetrics:
    """Checkerboard metrics of one gradient map or a pooled batch (conventions: :mod:`gradviz.spectrum.meter`).

    ``P`` is the pooled power spectrum, ``H' x W'`` the cropped size, ``S`` the period.

    Attributes:
        stride: the period ``S``.
        shape: ``(H', W')``, the size after the crop.
        lattice_fraction: ``sum_{lattice, not DC} P / sum_{not DC} P``: how much of the gradient is grid.
        null_fraction: ``(S*S - 1) / (H'*W' - 1)``, the share a flat (white) spectrum would put on the
            lattice. Real gradients are sloped, so it is a reference, never a test.
        octave_fractions: ``[j-1]`` the share at period exactly ``2**j``, for ``S`` a power of two
            (empty otherwise); they add up to ``lattice_fraction``.
        octave_null_fractions: ``[j-1]`` the share a flat spectrum would put at period ``2**j``.
        tile: ``S x S`` list, the mean of ``sum_c g_c^2`` at ``y = p mod S``, ``x = q mod S`` on the whole
            cropped map, normalised to mean 1. For a constant kernel with white-noise upstream gradient
            it is the overlap-count pattern of the strided convolution.
        tile_contrast: the tile's ``max / min`` (``inf`` when a phase has no energy). A description: mostly
            chance at large ``S`` (``shared_tile_cv`` and ``tile_p_value`` are the evidence).
        tile_cv: the tile's ``std / mean``.
        hf_offlattice_fraction: energy in the top octave (``max(|f_y|, |f_x|) >= 1/4``) that is not on
            the lattice, over all non-DC energy: the less organised high-frequency noise.
        coherent_lattice_fraction: the lattice share of the mean gradient's spectrum.
        n_images: the images pooled.
        period_fractions: ``{p: share}`` for every period ``p > 1`` on the lattice; they add up to
            ``lattice_fraction``.
        lattice_excess: the lattice bins' power over the geometric mean of their local non-lattice
            background, after removing the boundary cross (:mod:`gradviz.spectrum.lines`); 1 means no
            grid, whatever the spectrum's slope.
        period_excess: ``{p: excess}``, the same per period.
        period_p_values: ``{p: p-value}`` against translated copies of the same bins.
        period_p_adjusted: ``{p: p-value}``, Holm-adjusted over the periods.
        octave_excess, octave_p_values, octave_p_adjusted: the three above at period ``2**j``, ``[j-1]``.
        octave_null_band: ``[j-1]`` the 5% and 95% quantiles of the excess that translated copies of
            the same bins show (what chance gives at this slope).
        octave_threshold: ``[j-1]`` the excess above which period ``2**j`` is detected whatever the other
            periods show: its p-value is then below ``alpha / G`` for ``G`` periods tested (``inf`` when
            ``n_null`` is too small to get there, NaN when not tested).
        p_value: the smallest Holm-adjusted p-value (NaN when not tested).
        grid_detected: ``p_value < alpha``.
        shared_tile_cv: the coefficient of variation of the energy tile that the images share, on the
            interior (a U-statistic, 0 in expectation without a shared pattern; :mod:`gradviz.spectrum.tiles`).
        tile_p_value: from random per-image phase rolls; NaN when not tested (``n_null = 0``) or not
            testable (then ``tile_note`` says why).
        tile_note: why the tile test could not run: the interior holds fewer than 4 periods per side,
            fewer than two images have energy there, ``S = 1``, or there is no gradient ("" when it ran).
        alpha, seed, n_null, weighting: the settings the numbers were computed with.
        zero_gradient: the gradient was zero everywhere: nothing measured, nothing tested.

    Example:
        >>> import torch
        >>> from gradviz.spectrum import checkerboard_metrics
        >>> m = checkerboard_metrics(torch.tensor([[1.0, -1.0], [-1.0, 1.0]]).repeat(8, 8), 2, n_null=0)
        >>> m.lattice_fraction, m.period_fractions, m.null_fraction == 3 / 255, m.hf_offlattice_fraction
        (1.0, {2: 1.0}, True, 0.0)
        >>> m.tile, m.tile_contrast, m.coherent_lattice_fraction, m.verdict
        ([[1.0, 1.0], [1.0, 1.0]], 1.0, 1.0, 'not tested (n_null = 0)')
    """

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
    octave_null_band: list[tuple[float, float]] = field(default_factory=list)
    octave_threshold: list[float] = field(default_factory=list)
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

    def __repr__(self) -> str:
        """One line: the period, the images, the verdict and the lattice share (not the tile or the lists)."""
        return (f"CheckerboardMetrics(S={self.stride}, {self.n_images} image(s), {self.verdict}; "
                f"lattice share {self.lattice_fraction:.3g}, shared tile cv {self.shared_tile_cv:.3g})")

    def to_dict(self) -> dict:
        """JSON-ready dict of the fields plus ``verdict`` and ``tile_detected``; infinities and NaNs become ``None``."""
        d = asdict(self)
        d["verdict"] = self.verdict
        d["tile_detected"] = self.tile_detected
        d["octave_null_band"] = [list(band) for band in self.octave_null_band]
        for key in ("period_fractions", "period_excess", "period_p_values", "period_p_adjusted"):
            d[key] = {str(k): v for k, v in d[key].items()}
        return json_ready(d)
