"""Downsampling designs compared on the same weights.

:mod:`~gradviz.downsampling.variants` (max-pool, strided convolution, average and blur pools, as
registries of rewrites of one loaded network), :mod:`~gradviz.downsampling.kernels` (the lines a
strided kernel predicts), :mod:`~gradviz.downsampling.compare` (the measured comparison, no
drawing) and :mod:`~gradviz.downsampling.render` (figures, page and output folder; the only
module here that imports matplotlib, so it is not imported by this package).
"""

from gradviz.downsampling.compare import (
    ComparedLayer,
    Comparison,
    VariantResult,
    compare_variants,
    comparison_layers,
    resolve_layers,
)
from gradviz.downsampling.kernels import KernelPrediction, predict_layer, predict_lines, strided_layers
from gradviz.downsampling.variants import RESNET_VARIANTS, VGG_VARIANTS, build_variant, model_family, variants_for

__all__ = [
    "Comparison", "KernelPrediction", "RESNET_VARIANTS", "ComparedLayer", "VGG_VARIANTS", "VariantResult",
    "build_variant", "compare_variants", "comparison_layers", "model_family", "predict_layer", "predict_lines",
    "resolve_layers", "strided_layers", "variants_for",
]
