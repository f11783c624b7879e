"""Feature visualisation: parameterisation -> transforms -> model -> objective -> step.

One module per stage, then the loop that runs them and what lies beside it:

- :mod:`~gradviz.optvis.parameterization`: what the optimiser changes (pixels, or a Fourier image
  with decorrelated colour; the ``PARAMETERIZATIONS`` registry) and the start images;
- :mod:`~gradviz.optvis.transforms`: jitter, pad, scale, rotate: small callables a pipeline
  composes, each with its random draw kept apart from its deterministic core;
- :mod:`~gradviz.optvis.optimizers`: the ascent steps (the ``OPTIMIZERS`` registry);
- :mod:`~gradviz.optvis.dream`: the octave loop, its settings and its per-step history;
- :mod:`~gradviz.optvis.reference`: the exact shift average that jitter approximates;
- :mod:`~gradviz.optvis.jitter_law`: what averaging over jittered steps keeps of a grid (numpy only);
- :mod:`~gradviz.optvis.render`: writing the images (Pillow) and the jitter figure (matplotlib, without pyplot).

The model, taps, objectives and gradients come from :mod:`gradviz.core`.
"""
