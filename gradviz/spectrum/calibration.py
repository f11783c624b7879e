"""Calibration of the grid tests on synthetic fields with known answers.

:func:`calibrate` draws grid-free fields of every kind in :data:`gradviz.spectrum.synthetic.FIELDS` at several
periods and counts how often each test says "grid" (false positives); :func:`power` adds a weak grid
and counts how often the line test finds it, or a weak shared energy tile for the tile test. Both
take the same :class:`CalibrationSettings` (as keywords) and return rows (dataclasses);
``scripts/calibration_study.py`` writes them as a table and the tests run a small version.
Every batch is drawn from its own seeded generator, so the counts are the same on every run.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from gradviz.spectrum.meter import checkerboard_metrics
from gradviz.spectrum.metrics import DEFAULT_NULL_DRAWS, CheckerboardMetrics
from gradviz.spectrum.synthetic import FIELDS, add_grid

__all__ = ["CalibrationRow", "CalibrationSettings", "PowerRow", "calibrate", "power", "shared_tile_field"]

STRIDES = (2, 4, 8, 16, 32)


@dataclass(frozen=True)
class CalibrationSettings:
    """What :func:`calibrate` and :func:`power` share: the batches they draw and how they test them.

    Attributes:
        n_fields: batches per field kind and period.
        n_images: images per batch.
        channels: channels per image.
        size: side of the maps in pixels.
        alpha: the level of both tests.
        n_null: null draws per test (at least 200).
        seed: seeds the batches; batch ``k`` of a row seeds its null draws with ``k``.

    Example:
        >>> CalibrationSettings(size=64).n_null
        999
    """

    n_fields: int = 20
    n_images: int = 4
    channels: int = 3
    size: int = 128
    alpha: float = 0.05
    n_null: int = DEFAULT_NULL_DRAWS
    seed: int = 0

    def batch(self, field: str, generator: torch.Generator) -> torch.Tensor:
        """``(n_images, channels, size, size)`` maps of the field kind ``field``."""
        return FIELDS[field](self.n_images, self.channels, self.size, generator=generator)

    def measure(self, batch: torch.Tensor, stride: int, k: int) -> CheckerboardMetrics:
        """Metrics of batch number ``k`` (its null draws seeded with ``k``)."""
        return checkerboard_metrics(batch, stride, seed=k, alpha=self.alpha, n_null=self.n_null)


@dataclass
class CalibrationRow:
    """False positives of both tests on ``n_fields`` grid-free fields of one kind and period."""

    field: str
    stride: int
    n_fields: int
    line_false_positives: int
    tile_false_positives: int
    tile_tested: int  # fields large enough for the interior cut
    median_excess: float
    excess_values: list[float]
    # what the old readings say on the same grid-free fields (for the docs; neither is a test):
    median_flat_ratio: float  # lattice share over the share a flat (white) spectrum would have
    median_tile_contrast: float  # max / min of the pooled energy tile


@dataclass
class PowerRow:
    """Detections of a planted pattern holding ``strength`` (see :func:`power`)."""

    test: str  # "line" or "tile"
    field: str
    stride: int
    strength: float
    n_fields: int
    detected: int
    tested: int  # batches the test could run on (the tile test needs 4 periods inside the interior)


def _seed(*parts: int) -> int:
    """A generator seed from integers (``hash`` of a tuple of ints is the same on every run)."""
    return hash(parts) & 0x7FFFFFFF


def calibrate(fields: Sequence[str] = tuple(FIELDS), strides: Sequence[int] = STRIDES,
              **settings) -> list[CalibrationRow]:
    """False-positive counts of the line and tile tests on grid-free fields.

    Args:
        fields: field kinds, keys of :data:`gradviz.spectrum.synthetic.FIELDS`.
        strides: the periods ``S`` to test.
        **settings: fields of :class:`CalibrationSettings` (``n_fields``, ``n_images``, ``channels``,
            ``size``, ``alpha``, ``n_null``, ``seed``); the rest keep its defaults.

    Returns:
        One :class:`CalibrationRow` per field kind and period, fields outer.

    Example:
        >>> rows = calibrate(fields=["white"], strides=[4], n_fields=2, n_images=2, size=64, n_null=200)
        >>> [(r.field, r.stride, r.n_fields, r.line_false_positives, r.tile_tested) for r in rows]
        [('white', 4, 2, 0, 2)]
    """
    run = CalibrationSettings(**settings)
    rows = []
    for fi, name in enumerate(fields):
        for stride in strides:
            line_fp = tile_fp = tile_n = 0
            excess, flat, contrast = [], [], []
            for k in range(run.n_fields):
                gen = torch.Generator().manual_seed(_seed(run.seed, fi, stride, k))
                m = run.measure(run.batch(name, gen), stride, k)
                line_fp += m.grid_detected
                if m.tile_p_value == m.tile_p_value:  # not NaN
                    tile_n += 1
                    tile_fp += m.tile_detected
                excess.append(m.lattice_excess)
                flat.append(m.lattice_fraction / m.null_fraction)
                contrast.append(m.tile_contrast)
            rows.append(CalibrationRow(name, stride, run.n_fields, line_fp, tile_fp, tile_n, statistics.median(excess),
                                       excess, statistics.median(flat), statistics.median(contrast)))
    return rows


def shared_tile_field(field: torch.Tensor, period: int, strength: float, *, generator: torch.Generator) -> torch.Tensor:
    """Multiply every image by ``sqrt(1 + strength * m)``, ``m`` one random period tile of mean 0 and std 1.

    The images then share an energy tile of coefficient of variation about ``strength`` (exactly,
    for a constant field, unless ``1 + strength * m`` is clamped at 0 somewhere).

    Args:
        field: the maps.
        period: the tile's period in pixels.
        strength: the relative strength of the energy tile.
        generator: draws ``m`` (after whatever ``field`` drew).

    Returns:
        ``field`` times the gain, the same for every image and channel.

    Shape:
        ``(n, c, H, W) -> (n, c, H, W)``.

    Example:
        >>> gain = shared_tile_field(torch.ones(1, 1, 8, 8, dtype=torch.float64), 4, 0.3,
        ...                          generator=torch.Generator().manual_seed(0))[0, 0]
        >>> energy = gain.square()  # 1 + 0.3 m, repeated every 4 pixels
        >>> torch.equal(energy[:4, :4], energy[4:, 4:])
        True
        >>> round(float(energy.mean()), 12), round(float(energy.std(unbiased=False)), 12)
        (1.0, 0.3)
    """
    n, c, h, w = field.shape
    m = torch.randn(period, period, generator=generator, dtype=torch.float64)
    m = (m - m.mean()) / m.std(unbiased=False)
    reps = (-(-h // period), -(-w // period))
    gain = torch.sqrt((1 + strength * m).clamp_min(0)).repeat(*reps)[:h, :w]
    return field * gain


def power(test: str, field: str, strides: Sequence[int], strength: float, **settings) -> list[PowerRow]:
    """How often a planted pattern is found.

    ``test="line"`` adds a period-``S`` grid holding ``strength`` of the energy
    (:func:`gradviz.spectrum.synthetic.add_grid`); ``test="tile"`` plants a shared energy tile of relative
    strength ``strength`` (:func:`shared_tile_field`).

    Args:
        test: ``"line"`` or ``"tile"``.
        field: the field kind, a key of :data:`gradviz.spectrum.synthetic.FIELDS`.
        strides: the periods ``S``, each that of its planted pattern.
        strength: the grid's energy share, or the tile's relative strength.
        **settings: fields of :class:`CalibrationSettings`, as in :func:`calibrate`.

    Returns:
        One :class:`PowerRow` per period.

    Example:
        >>> rows = power("line", "white", [2, 4], 0.5, n_fields=2, n_images=2, size=32, n_null=200)
        >>> [(r.stride, r.detected, r.tested) for r in rows]  # half the energy: found every time
        [(2, 2, 2), (4, 2, 2)]
    """
    if test not in ("line", "tile"):
        raise ValueError(f"test must be 'line' or 'tile', got {test!r}")
    run = CalibrationSettings(**settings)
    rows = []
    for stride in strides:
        detected = tested = 0
        for k in range(run.n_fields):
            gen = torch.Generator().manual_seed(_seed(run.seed, 99, stride, k))
            x = run.batch(field, gen)
            if test == "line":
                x = add_grid(x, stride, strength, generator=gen)
            else:
                x = shared_tile_field(x, stride, strength, generator=gen)
            m = run.measure(x, stride, k)
            p = m.p_value if test == "line" else m.tile_p_value
            tested += p == p  # not NaN
            detected += m.grid_detected if test == "line" else m.tile_detected
        rows.append(PowerRow(test, field, stride, strength, run.n_fields, detected, tested))
    return rows
