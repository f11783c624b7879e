"""The generator study as a page: ``report.html`` beside ``metrics.json`` (``gradviz generators``).

One verdict card per upsampling design: does a generator built that way, at random initialisation, put a
grid in its images? The cards, the table of every number and the samples figure share the report's
layout (:func:`gradviz.io.pages.single_page`).
"""

from __future__ import annotations

from collections.abc import Sequence

from gradviz.io.pages import Figure, View, single_page
from gradviz.spectrum.readings import definitions
from gradviz.upsampling.generators import GeneratorResult

__all__ = ["SAMPLES_CAPTION", "generators_page_html", "generators_view"]

SAMPLES_CAPTION = "Outputs of each design at random initialisation (rows), and their mean power spectrum."


def generators_view(results: Sequence[GeneratorResult], figures: Sequence[str] = ()) -> View:
    """The designs' results as a page view: one card per design, period ``2**blocks``.

    Example:
        >>> from gradviz.upsampling.generators import measure_generators
        >>> results = [r for r, _ in measure_generators(["deconv3", "nearest"], samples=2, blocks=1, width=2)]
        >>> [(card.name, card.stride) for card in generators_view(results).cards]
        [('deconv3', 2), ('nearest', 2)]
    """
    layers = [{"name": r.design, "stride": r.metrics.stride, **r.metrics.to_dict()} for r in results]
    first = results[0] if results else None
    rows = [("designs", ", ".join(r.design for r in results))]
    if first is not None:
        rows += [("samples", f"{first.samples} outputs of {first.image_size} x {first.image_size} px per design"),
                 ("seed", f"{first.seed} (weights; latents use {first.seed + 1})")]
    alpha = first.metrics.alpha if first else 0.05
    return View("generators", {"layers": layers, "alpha": alpha},
                [Figure(name, name, SAMPLES_CAPTION if name == "samples.png" else "") for name in figures], rows)


def generators_page_html(results: Sequence[GeneratorResult], figures: Sequence[str] = ()) -> str:
    """``report.html`` of the generator study: one verdict card per design, the table, the figures.

    Example:
        >>> from gradviz.upsampling.generators import measure_generators
        >>> results = [r for r, _ in measure_generators(["deconv3"], samples=2, blocks=1, width=2)]
        >>> page = generators_page_html(results, ["samples.png"])
        >>> page.count('<div class="card '), '<img src="samples.png"' in page, "Verdict per design" in page
        (1, True, True)
    """
    outputs = ("generator output", "each design's images at random initialisation (no training), from seeded "
               "latent vectors; each image scaled to unit energy, each channel's mean removed, then the 2D FFT. A "
               "generator of B stride-2 blocks repeats its pattern every S = 2^B pixels.")
    intro = ["Does a generator built this way put a grid in its images before any training? The Distill article "
             "shows transposed convolutions doing so at initialisation and resize-convolution not."]
    return single_page(generators_view(results, figures), title="Generators at random initialisation",
                       definitions=[outputs, *definitions()[1:]], unit="design", intro=intro)
