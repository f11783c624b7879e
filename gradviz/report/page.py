"""The report as a page people read: ``report.html``, and several reports side by side (``gradviz html``).

A page is built from the report's plain data (``report.json``, what :meth:`Report.to_dict` gives), so it
can be made again from a folder written earlier. Each layer becomes a verdict card (grid or no
detectable grid; per octave the excess, the band chance gives, the detection threshold and the
Holm-adjusted p-value); the table of every number, the figures, the definitions and the run's
provenance follow (:mod:`gradviz.io.pages`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from gradviz.errors import GradvizError
from gradviz.io.html import embed_png
from gradviz.io.pages import View, ordered_figures, side_by_side_page, single_page
from gradviz.spectrum.readings import definitions

__all__ = ["FIGURE_CAPTIONS", "provenance", "read_report_view", "report_page_html", "report_view", "reports_page_html"]

# What each figure of a report shows, in the order a page shows them (unknown names come last, uncaptioned).
FIGURE_CAPTIONS = {
    "headline.png": "Line excess per layer and octave against chance (the null band) and the detection threshold; "
                    "filled markers are detected octaves. Below: the share of the gradient's energy on each octave "
                    "beside what a white spectrum would put there.",
    "spectra.png": "Log power spectra of the input gradients per layer, on one colour scale (top: mean of the "
                   "images' spectra; bottom: spectrum of the mean gradient). Marks at the lattice frequencies k/S.",
    "gradients.png": "Input gradient of the first image (channel sum, signed), with a crop shown pixel for pixel so "
                     "that a period-2 pattern can be seen.",
    "tiles.png": "Pooled energy tile per layer (mean 1): the gradient's energy at each phase (y mod S, x mod S), on "
                 "one colour scale.",
    "radial.png": "Radial profiles of the spectra (for their shape only: ring averages dilute lattice lines).",
}
# The largest figure a side-by-side page embeds (a report's PNGs are well under 2 MB).
MAX_EMBEDDED_FIGURE = 32 * 2**20


def provenance(data: Mapping) -> list[tuple[str, str]]:
    """A report's settings as ``(name, value)`` rows: model, weights, images, seed, device, versions, notes.

    Example:
        >>> provenance({"model": "vgg16", "seed": 0, "versions": {"torch": "2.5"}, "notes": ["eval mode"]})
        [('model', 'vgg16'), ('seed', '0'), ('versions', 'torch 2.5'), ('note', 'eval mode')]
    """
    d = data
    images = f"{d['images']} ({d.get('n_images')} images at {d.get('image_size')} px)" if d.get("images") else None
    rows = [("model", d.get("model")), ("weights", d.get("weights")), ("input normalisation", d.get("normalize")),
            ("images", images), ("gradient source", d.get("source")), ("seed", d.get("seed")),
            ("device", d.get("device")), ("alpha", d.get("alpha"))]
    versions = d.get("versions") or {}
    if versions:
        rows.append(("versions", ", ".join(f"{k} {v}" for k, v in versions.items())))
    rows += [("note", note) for note in d.get("notes") or []]
    return [(k, str(v)) for k, v in rows if v not in (None, "")]


def report_view(data: Mapping, figure_names: Sequence[str] = (), src=str, label: str | None = None) -> View:
    """A report's data (``report.json``) as a page view; ``src(name)`` says where the page finds a figure."""
    return View(label or str(data.get("model", "report")), data,
                ordered_figures(figure_names, src, FIGURE_CAPTIONS), provenance(data))


def _subtitle(data: Mapping) -> str:
    return " · ".join(str(data[k]) for k in ("weights", "images", "source") if data.get(k))


def report_page_html(view: View) -> str:
    """``report.html`` of one report (:func:`gradviz.io.pages.single_page`).

    Example:
        >>> from gradviz.report.result import _example_report
        >>> page = report_page_html(report_view(_example_report().to_dict()))
        >>> "<h1>Gradient-spectrum report: vgg11</h1>" in page, page.count('<div class="card '), "How to read this" in page
        (True, 1, True)
    """
    return single_page(view, title=f"Gradient-spectrum report: {view.data.get('model')}", definitions=definitions(),
                       intro=[_subtitle(view.data)])


def reports_page_html(views: Sequence[View], title: str = "Gradient-spectrum reports side by side") -> str:
    """Several reports on one page, layer by layer (:func:`gradviz.io.pages.side_by_side_page`).

    Example:
        >>> from gradviz.report.result import _example_report
        >>> view = report_view(_example_report().to_dict())
        >>> page = reports_page_html([view, view])
        >>> page.count('<div class="card '), page.count('<table class="sortable')
        (2, 2)
    """
    intro = [f"{view.label}: {_subtitle(view.data)}" for view in views]
    return side_by_side_page(views, title=title, definitions=definitions(), intro=intro)


def read_report_view(folder: str | os.PathLike, label: str | None = None) -> View:
    """A report folder (``report.json`` and its figures) as a view whose figures are embedded in the page.

    Args:
        folder: what ``gradviz report`` (or :func:`~gradviz.report.render.write_report`) wrote.
        label: the column title (default: the report's model).

    Raises:
        GradvizError: the folder holds no readable ``report.json`` with layers, or a figure is too large.
    """
    folder = Path(folder)
    path = folder / "report.json"
    if not folder.is_dir():
        raise GradvizError(f"{folder} is not a folder; valid: a folder written by gradviz report")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        reason = "not found" if isinstance(exc, FileNotFoundError) else "not readable JSON"
        raise GradvizError(f"{path}: {reason}; valid: a folder written by gradviz report") from None
    if not isinstance(data, dict) or not isinstance(data.get("layers"), list) or not all(
            isinstance(layer, dict) and "name" in layer and "stride" in layer for layer in data["layers"]):
        raise GradvizError(f"{path} is not a gradviz report (no list of layers); valid: a folder written by gradviz report")
    names = [n for n in FIGURE_CAPTIONS if (folder / n).is_file()]
    for name in names:
        if (folder / name).stat().st_size > MAX_EMBEDDED_FIGURE:
            raise GradvizError(f"{folder / name} is over {MAX_EMBEDDED_FIGURE >> 20} MB; valid: the figures gradviz wrote")
    return report_view(data, names, lambda name: embed_png(folder / name), label)
