"""gradviz: see, measure and remove grid ("checkerboard") artifacts in CNN gradients.

The names below are imported on first use, so that ``import gradviz`` does not load torch: the
``gradviz`` command installs its signal handlers before anything heavy is imported. The same
table is how computing code reaches drawing code without importing matplotlib itself:
``Report.plot()`` calls ``gradviz.make_figures``, which loads :mod:`gradviz.report.render`
(and with it matplotlib) only then.

Example:
    >>> import torch, torchvision, gradviz
    >>> net = torchvision.models.resnet18().eval()               # any nn.Module; ImageNet normalisation added
    >>> images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))   # (B, 3, H, W) in [0, 1]
    >>> report = gradviz.build_report(net, images, layers=["layer1"], progress=False)
    >>> report.layers[0].stride, report.layers[0].metrics.grid_detected
    (4, True)
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# Public name -> the module that defines it.
_EXPORTS = {
    "CheckerboardMetrics": "gradviz.spectrum",
    "GradvizError": "gradviz.errors",
    "ImageSet": "gradviz.io.images",
    "LayerMap": "gradviz.core.layermap",
    "LayerResult": "gradviz.report",
    "Objective": "gradviz.core.objectives",
    "PixelModel": "gradviz.core.models",
    "Report": "gradviz.report",
    "ShiftAverage": "gradviz.core.shift_average",
    "SpectrumAccumulator": "gradviz.spectrum",
    "Taps": "gradviz.core.taps",
    "as_image_set": "gradviz.io.image_inputs",
    "as_objective": "gradviz.core.objectives",
    "as_pixel_model": "gradviz.core.models",
    "build_report": "gradviz.report",
    "channel": "gradviz.core.objectives",
    "checkerboard_metrics": "gradviz.spectrum",
    "class_logit": "gradviz.core.objectives",
    "deepdream": "gradviz.core.objectives",
    "eval_mode": "gradviz.core.models",
    "input_gradient": "gradviz.core.gradients",
    "input_gradients": "gradviz.core.gradients",
    "layer_map": "gradviz.core.layermap",
    "layer_mean": "gradviz.core.objectives",
    "load_images": "gradviz.io.images",
    "load_model": "gradviz.core.models",
    # drawing: importing these loads matplotlib (never pyplot, never a backend choice)
    "make_figures": "gradviz.report.render",
    "neuron": "gradviz.core.objectives",
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
