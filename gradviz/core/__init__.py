"""The foundation: models, taps, the layer map, objectives and input gradients.

Pipeline: :mod:`~gradviz.core.models` (a frozen model on [0, 1] pixels) ->
:mod:`~gradviz.core.taps` (hooks on any layer) -> :mod:`~gradviz.core.layermap` (shapes and
cumulative strides, made once per model and size) -> :mod:`~gradviz.core.objectives` (one value per image) ->
:mod:`~gradviz.core.gradients` (d objective / d pixels). :mod:`~gradviz.core.budget` estimates
memory before anything large is allocated. Nothing here imports a study or matplotlib.
"""
