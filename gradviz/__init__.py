"""gradviz: see, measure and remove grid ("checkerboard") artifacts in CNN gradients.

The names below are imported on first use, so that ``import gradviz`` does not load torch: the
``gradviz`` command installs its signal handlers before anything heavy is imported.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# Public name -> the module that defines it.
_EXPORTS = {
    "CheckerboardMetrics": "gradviz.spectrum",
    "GradvizError": "gradviz.errors",
    "LayerMap": "gradviz.core.layermap",
    "Report": "gradviz.report",
    "SpectrumAccumulator": "gradviz.spectrum",
    "Taps": "gradviz.core.taps",
    "build_report": "gradviz.report",
    "checkerboard_metrics": "gradviz.spectrum",
    "input_gradient": "gradviz.core.gradients",
    "input_gradients": "gradviz.core.gradients",
    "layer_map": "gradviz.core.layermap",
    "load_model": "gradviz.core.models",
    "radial_profile": "gradviz.spectrum",
    "write_report": "gradviz.report.render",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'gradviz' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
