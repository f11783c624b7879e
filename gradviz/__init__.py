"""gradviz: see, measure and remove grid ("checkerboard") artifacts in CNN gradients."""

from gradviz.errors import GradvizError
from gradviz.spectrum import CheckerboardMetrics, SpectrumAccumulator, checkerboard_metrics, radial_profile

__version__ = "0.1.0"

__all__ = [
    "CheckerboardMetrics",
    "GradvizError",
    "SpectrumAccumulator",
    "checkerboard_metrics",
    "radial_profile",
]
