"""The generator study as a page: ``report.html`` beside ``metrics.json`` (``gradviz generators``).

One verdict card per upsampling design: does a generator built that way, at random initialisation, put a
grid in its images? The cards, the table of every number and the samples figure share the report's
layout (:func:`gradviz.io.pages.single_page`).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence

from gradviz.io.pages import Figure, View, side_by_side_page, single_page
from gradviz.spectrum.readings import definitions
from gradviz.upsampling.generators import GeneratorResult
from gradviz.upsampling.upsamplers import UPSAMPLERS

__all__ = ["SAMPLES_CAPTION", "generator_definitions", "generator_study_page_html", "generators_page_html",
           "generators_view"]

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


# The meter's definitions that apply to a generator's images (the tile and energy-share ones speak of gradients).
SHARED_TERMS = ("lattice", "excess", "lattice excess", "p-value and verdict", "null band and detection threshold")


def generator_definitions() -> list[tuple[str, str]]:
    """"How to read this" for the generator pages: what is measured, then the meter's shared definitions.

    Example:
        >>> [term for term, _ in generator_definitions()][:3]
        ['in short', 'generator output', 'lattice']
    """
    return [
        ("in short", "a red card says that a design's images, before any training, repeat a pattern every S pixels "
         "(the grid the Distill article shows transposed convolutions making); a green card says no such pattern "
         "could be told apart from chance. The number on a red card is how much stronger the grid's frequencies "
         "are than the frequencies around them; 1x is none."),
        ("generator output", "each design's images at random initialisation, from seeded latent vectors; each image "
         "scaled to unit energy, each channel's mean removed, then the 2D FFT. A generator of B stride-2 blocks "
         "repeats its pattern every S = 2^B pixels. Each block upsamples with: "
         + "; ".join(f"{name}: {UPSAMPLERS.describe(name)}" for name in UPSAMPLERS)
         + ". A suffix -lastN puts the transposed convolution in the last N blocks only (nearest resize-convolution "
         "before); +finalM adds a final stride-1 M x M convolution."),
        *[(term, text) for term, text in definitions() if term in SHARED_TERMS],
    ]


INTRO = ("Does a generator built this way put a grid in its images before any training? The Distill article shows "
         "transposed convolutions doing so at initialisation and resize-convolution not.")


def generators_page_html(results: Sequence[GeneratorResult], figures: Sequence[str] = ()) -> str:
    """``report.html`` of the generator study: one verdict card per design, the table, the figures.

    Example:
        >>> from gradviz.upsampling.generators import measure_generators
        >>> results = [r for r, _ in measure_generators(["deconv3"], samples=2, blocks=1, width=2)]
        >>> page = generators_page_html(results, ["samples.png"])
        >>> page.count('<div class="card '), '<img src="samples.png"' in page, "Verdict per design" in page
        (1, True, True)
    """
    return single_page(generators_view(results, figures), title="Generators at random initialisation",
                       definitions=generator_definitions(), unit="design", intro=[INTRO])


def generator_study_page_html(designs: Mapping[str, Mapping], figures: Sequence[tuple[str, str]] = (),
                              intro: Sequence[str] = ()) -> str:
    """The generator study over seeds on one page: a row per design, a column per seed, and per design how
    many seeds detect a grid and the period-2 excess as mean and sd over the seeds.

    Args:
        designs: ``{design: {"runs": [GeneratorResult.to_dict(), ...]}}`` (as the study's JSON holds them),
            every design over the same seeds.
        figures: ``(file name, caption)`` of the figures beside the page.
        intro: further paragraphs under the title (the settings).

    Example:
        >>> from gradviz.upsampling.generators import measure_generator
        >>> runs = {d: {"runs": [measure_generator(d, samples=2, seed=s, blocks=1, width=2)[0].to_dict() for s in (0, 1)]}
        ...         for d in ("deconv3", "nearest")}
        >>> page = generator_study_page_html(runs)
        >>> page.count('<div class="card '), '<th scope="row">nearest</th>' in page, "nearest: grid in 0 of 2 seeds" in page
        (4, True, True)
    """
    seeds = [run["seed"] for run in next(iter(designs.values()))["runs"]] if designs else []
    views = []
    for i, seed in enumerate(seeds):
        layers = [{"name": design, "stride": row["runs"][i]["metrics"]["stride"], **row["runs"][i]["metrics"]}
                  for design, row in designs.items()]
        first = next(iter(designs.values()))["runs"][i]
        rows = [("seed", f"{seed} (weights; latents use {seed + 1})"),
                ("samples", f"{first['samples']} outputs of {first['image_size']} x {first['image_size']} px per design")]
        views.append(View(f"seed {seed}", {"layers": layers, "alpha": layers[0].get("alpha", 0.05)}, (), rows))
    spread = []
    for design, row in designs.items():
        metrics = [run["metrics"] for run in row["runs"]]
        p2 = [m["octave_excess"][0] for m in metrics if m.get("octave_excess") and m["octave_excess"][0] is not None]
        grids = sum(bool(m.get("grid_detected")) for m in metrics)
        sd = f" ± {statistics.stdev(p2):.3g}" if len(p2) > 1 else ""
        excess = f"; period-2 excess {statistics.fmean(p2):.3g}{sd} (mean ± sd over seeds)" if p2 else ""
        spread.append(f"{design}: grid in {grids} of {len(metrics)} seeds{excess}")
    return side_by_side_page(views, title="Generators at random initialisation, over seeds",
                             definitions=generator_definitions(), intro=[INTRO, *intro], summary=spread,
                             figures=[Figure(name, name, caption) for name, caption in figures], unit="design")
