"""Calibration of the grid tests on synthetic fields with known answers.

:func:`calibrate` draws grid-free fields of every kind in :data:`gradviz.synthetic.FIELDS` at several
periods and counts how often each test says "grid" (false positives), then adds a weak grid and
counts how often the line test finds it, and a weak shared energy tile for the tile test.
It returns rows (dataclasses); ``scripts/calibration_study.py`` writes them as a table and the tests
run a small version.

Example:
    >>> rows = calibrate(fields=["white"], strides=[4], n_fields=2, n_images=2, size=64, n_null=200)
    >>> rows[0].field, rows[0].stride, rows[0].n_fields
    ('white', 4, 2)
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from gradviz.spectrum import checkerboard_metrics
from gradviz.synthetic import FIELDS, add_grid

__all__ = ["CalibrationRow", "PowerRow", "calibrate", "power", "shared_tile_field"]


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
    return hash(parts) & 0x7FFFFFFF


def calibrate(
    fields: Sequence[str] = tuple(FIELDS),
    strides: Sequence[int] = (2, 4, 8, 16, 32),
    *,
    n_fields: int = 20,
    n_images: int = 4,
    channels: int = 3,
    size: int = 128,
    alpha: float = 0.05,
    n_null: int = 999,
    seed: int = 0,
) -> list[CalibrationRow]:
    """False-positive counts of the line and tile tests on grid-free fields."""
    rows = []
    for fi, name in enumerate(fields):
        make = FIELDS[name]
        for stride in strides:
            line_fp = tile_fp = tile_n = 0
            excess, flat, contrast = [], [], []
            for k in range(n_fields):
                gen = torch.Generator().manual_seed(_seed(seed, fi, stride, k))
                m = checkerboard_metrics(make(n_images, channels, size, generator=gen), stride,
                                         seed=k, alpha=alpha, n_null=n_null)
                line_fp += m.grid_detected
                if m.tile_p_value == m.tile_p_value:  # not NaN
                    tile_n += 1
                    tile_fp += m.tile_detected
                excess.append(m.lattice_excess)
                flat.append(m.lattice_fraction / m.null_fraction)
                contrast.append(m.tile_contrast)
            rows.append(CalibrationRow(name, stride, n_fields, line_fp, tile_fp, tile_n, statistics.median(excess),
                                       excess, statistics.median(flat), statistics.median(contrast)))
    return rows


def shared_tile_field(field: torch.Tensor, period: int, strength: float, *, generator: torch.Generator) -> torch.Tensor:
    """Multiply every image by ``sqrt(1 + strength * m)``, ``m`` one random zero-mean period tile.

    The images then share an energy tile of coefficient of variation about ``strength * std(m)``.
    """
    n, c, h, w = field.shape
    m = torch.randn(period, period, generator=generator, dtype=torch.float64)
    m = (m - m.mean()) / m.std(unbiased=False)
    reps = (-(-h // period), -(-w // period))
    gain = torch.sqrt((1 + strength * m).clamp_min(0)).repeat(*reps)[:h, :w]
    return field * gain


def power(
    test: str,
    field: str,
    strides: Sequence[int],
    strength: float,
    *,
    n_fields: int = 20,
    n_images: int = 4,
    channels: int = 3,
    size: int = 128,
    alpha: float = 0.05,
    n_null: int = 999,
    seed: int = 0,
) -> list[PowerRow]:
    """How often a planted pattern is found.

    ``test="line"`` adds a period-``S`` grid holding ``strength`` of the energy
    (:func:`gradviz.synthetic.add_grid`); ``test="tile"`` plants a shared energy tile of relative
    strength ``strength`` (:func:`shared_tile_field`).
    """
    if test not in ("line", "tile"):
        raise ValueError(f"test must be 'line' or 'tile', got {test!r}")
    rows = []
    for stride in strides:
        detected = tested = 0
        for k in range(n_fields):
            gen = torch.Generator().manual_seed(_seed(seed, 99, stride, k))
            x = FIELDS[field](n_images, channels, size, generator=gen)
            if test == "line":
                x = add_grid(x, stride, strength, generator=gen)
            else:
                x = shared_tile_field(x, stride, strength, generator=gen)
            m = checkerboard_metrics(x, stride, seed=k, alpha=alpha, n_null=n_null)
            p = m.p_value if test == "line" else m.tile_p_value
            tested += p == p  # not NaN
            detected += m.grid_detected if test == "line" else m.tile_detected
        rows.append(PowerRow(test, field, stride, strength, n_fields, detected, tested))
    return rows
