"""The meter: the FFT spectrum of gradient maps, its energy shares and its calibrated grid tests.

:mod:`~gradviz.spectrum.lattice` (which frequency bins a period owns), :mod:`~gradviz.spectrum.lines`
(line excess over the local background, with p-values), :mod:`~gradviz.spectrum.tiles` (the shared
energy tile and its phase-roll null), :mod:`~gradviz.spectrum.meter` (the accumulator and
:func:`checkerboard_metrics`), :mod:`~gradviz.spectrum.metrics` (:class:`CheckerboardMetrics`,
every reading defined), :mod:`~gradviz.spectrum.synthetic` and
:mod:`~gradviz.spectrum.calibration` (fields with known answers, and how the tests behave on them).
"""

from gradviz.spectrum.lattice import crop_to_period, lattice_mask, period_map, radial_profile
from gradviz.spectrum.meter import CheckerboardMetrics, NonFiniteGradient, SpectrumAccumulator, checkerboard_metrics

__all__ = ["CheckerboardMetrics", "NonFiniteGradient", "SpectrumAccumulator", "checkerboard_metrics",
           "crop_to_period", "lattice_mask", "period_map", "radial_profile"]
