"""The downsampling comparison as a page: ``report.html`` beside ``comparison.json``.

Each variant is one column of verdict cards, layer by layer (:func:`gradviz.io.pages.side_by_side_page`),
so the original design and its replacements are read across a row; the summary and stage figures
follow, then each variant's table and how well it matches the original (activation cosines).
"""

from __future__ import annotations

from collections.abc import Sequence

from gradviz.downsampling.compare import Comparison
from gradviz.io.pages import Figure, View, side_by_side_page
from gradviz.io.text import fmt
from gradviz.spectrum.readings import definitions

__all__ = ["comparison_page_html", "figure_caption", "stage_figure_name", "variant_view"]


def variant_view(comp: Comparison, index: int) -> View:
    """One variant of a comparison as a page view: its layers' metrics, its description and fairness.

    Example:
        >>> from gradviz.downsampling.render import _example_comparison
        >>> view = variant_view(_example_comparison(), 0)
        >>> view.label, [card.name for card in view.cards], view.provenance[1]
        ('stride', ['layer1'], ('activation cosine at layer1', 'mean 1, min 1'))
    """
    variant = comp.variants[index]
    layers = [{"name": s.layer, "stride": s.stride, **s.metrics.to_dict()} for s in variant.layers]
    rows = [("variant", f"{variant.name}: {variant.description}")]
    rows += [(f"activation cosine at {s.layer}", f"mean {fmt(s.cosine_mean, 3)}, min {fmt(s.cosine_min, 3)}")
             for s in variant.layers]
    alpha = variant.layers[0].metrics.alpha if variant.layers else 0.05
    return View(variant.name, {"layers": layers, "alpha": alpha}, (), rows)


def comparison_page_html(comp: Comparison, figures: Sequence[str]) -> str:
    """``report.html`` of a comparison: the variants side by side, then the figures (beside the page).

    Args:
        comp: the comparison.
        figures: the figure file names beside the page, in order.

    Example:
        >>> from gradviz.downsampling.render import _example_comparison
        >>> page = comparison_page_html(_example_comparison(), ["summary.png"])
        >>> page.count('<div class="card '), '<img src="summary.png"' in page
        (1, True)
    """
    views = [variant_view(comp, i) for i in range(len(comp.variants))]
    intro = [f"{comp.arch}, weights {comp.weights}; {comp.images} ({len(comp.image_names)} images at {comp.size} px); "
             f"objective {comp.objective}; seed {comp.seed}. Every variant keeps the original's weights and changes "
             "only how it downsamples."]
    return side_by_side_page(views, title=f"Downsampling compared on the same weights: {comp.arch}",
                             definitions=definitions(), intro=intro,
                             figures=[Figure(name, name, figure_caption(comp, name)) for name in figures])


def stage_figure_name(layer: str) -> str:
    """The file name of a comparison layer's figure: ``stage-features_9.png`` for ``features.9``."""
    return f"stage-{layer.replace('.', '_')}.png"


def figure_caption(comp: Comparison, name: str) -> str:
    """What a comparison figure shows, from its file name.

    Example:
        >>> from gradviz.downsampling.render import _example_comparison
        >>> figure_caption(_example_comparison(), "stage-layer1.png")
        "At layer1: each variant's input gradient, its spectrum and its energy tile, on shared colour scales."
    """
    if name == "summary.png":
        return ("Every variant at each comparison layer: the line excess at the layer's own period, the energy "
                "shares, how close its activations stay to the original's, and the lines its strided kernels predict.")
    for s in comp.variants[0].layers if comp.variants else []:
        if name == stage_figure_name(s.layer):
            return f"At {s.layer}: each variant's input gradient, its spectrum and its energy tile, on shared colour scales."
    return ""
