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
from gradviz.io.html import png_data_uri
from gradviz.io.pages import View, ordered_figures, side_by_side_page, single_page
from gradviz.spectrum.readings import clean_layer, definitions

__all__ = ["FIGURE_CAPTIONS", "clean_report", "provenance", "read_report_view", "report_page_html", "report_view", "reports_page_html",
           "weights_label"]

# What each figure of a report shows, in the order a page shows them (unknown names come last, uncaptioned).
FIGURE_CAPTIONS = {
    "headline.png": "Line excess per layer and octave against chance (the null band) and the detection threshold; "
                    "filled markers are detected octaves. Below: the share of the gradient's energy on each octave, a "
                    "description (a clear grid can hold a tiny share of a sloped spectrum).",
    "spectra.png": "Log power spectra of the input gradients per layer, on one colour scale (top: the mean of the "
                   "images' periodic components, the spectrum the line test reads; bottom: the spectrum of the mean "
                   "gradient). Marks at the lattice frequencies k/S; period 2 sits on the border, at 1/2 cycle/px.",
    "gradients.png": "Input gradient of the first image (channel sum, signed), and a 32 px crop shown pixel for pixel "
                     "where the strongest line's lattice stands highest: a strong grid shows; a weak one, however "
                     "significant, cannot be seen by eye, which is why it is measured.",
    "tiles.png": "Pooled energy tile per layer (mean 1): the gradient's energy at each phase (y mod S, x mod S), on "
                 "one colour scale.",
    "radial.png": "Radial profiles of the spectra (for their shape only: ring averages dilute lattice lines).",
}
# The most figure bytes a side-by-side page embeds per report (a report's PNGs add up to a few MB).
MAX_EMBEDDED_FIGURE = 16 * 2**20
# The largest report.json read (a report of 100 layers is well under 1 MB).
MAX_REPORT_JSON = 64 * 2**20
# The first bytes of every PNG file.
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


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
            ("device", d.get("device")), ("precision", d.get("precision")), ("alpha", d.get("alpha"))]
    versions = d.get("versions") or {}
    if versions:
        rows.append(("versions", ", ".join(f"{k} {v}" for k, v in versions.items())))
    spread = d.get("distributed")
    if isinstance(spread, dict):
        rows.append(("processes", f"{spread.get('world_size')} (images per rank: {spread.get('images_per_rank')})"))
    rows += [("note", note) for note in d.get("notes") or []]
    return [(k, str(v)) for k, v in rows if v not in (None, "")]


def weights_label(data: Mapping) -> str:
    """The weights in a few words: ``"random init"``, ``"ImageNet weights"`` or the checkpoint's file name.

    Example:
        >>> weights_label({"weights": "random (seed 0)"}), weights_label({"weights": "/w/vgg16.pth (features only; x)"})
        ('random init (seed 0)', 'vgg16.pth (features only)')
    """
    weights = str(data.get("weights") or "")
    if weights.startswith("random"):
        return "random init" + weights[len("random"):].split(";")[0]
    if weights.startswith("imagenet"):
        return "ImageNet weights"
    name = Path(weights.split(" (")[0]).name
    return name + (" (features only)" if "features only" in weights else "")


def report_view(data: Mapping, figure_names: Sequence[str] = (), src=str, label: str | None = None,
                extra_files: Sequence[str] = ()) -> View:
    """A report's data (``report.json``) as a page view; ``src(name)`` says where the page finds a figure.

    Args:
        data: the report's data.
        figure_names: the figures beside the page.
        src: where the page finds a figure, from its name.
        label: the view's title (default: the model and its weights).
        extra_files: further files in the report's folder, listed in the provenance.
    """
    rows = provenance(data) + [("also in this folder", name) for name in extra_files]
    return View(label or f"{data.get('model', 'report')}, {weights_label(data)}", data,
                ordered_figures(figure_names, src, FIGURE_CAPTIONS), rows)


def _subtitle(data: Mapping) -> str:
    return " · ".join(str(data[k]) for k in ("weights", "images", "source") if data.get(k))


def report_page_html(view: View) -> str:
    """``report.html`` of one report (:func:`gradviz.io.pages.single_page`).

    Example:
        >>> from gradviz.report.result import _example_report
        >>> page = report_page_html(report_view(_example_report().to_dict()))
        >>> "<h1>Gradient-spectrum report: vgg11 (random init (seed 0))</h1>" in page, page.count('<div class="card ')
        (True, 1)
        >>> "How to read this" in page
        True
    """
    return single_page(view, title=f"Gradient-spectrum report: {view.data.get('model')} ({weights_label(view.data)})",
                       definitions=definitions(), intro=[_subtitle(view.data)])


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


def _read_regular(path: Path, limit: int, what: str) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes (never a FIFO, a device or a link out of reach)."""
    valid = "valid: a folder written by gradviz report"
    try:
        if not path.is_file():
            reason = "not found" if not path.exists() and not path.is_symlink() else "not a regular file"
            raise GradvizError(f"{path}: {reason}; {valid}")
        if path.stat().st_size > limit:
            raise GradvizError(f"{path} is over {limit >> 20} MB, too large for {what}; {valid}")
        return path.read_bytes()
    except PermissionError:
        raise GradvizError(f"{path}: permission denied; {valid}") from None
    except OSError as exc:
        raise GradvizError(f"{path}: {exc.strerror or exc}; {valid}") from None


def clean_report(data, path: Path) -> dict:
    """A report's JSON checked for what the pages read (:func:`~gradviz.spectrum.readings.clean_layer` per layer).

    Raises:
        GradvizError: one line naming the file and the field.
    """
    valid = "valid: a folder written by gradviz report"
    if not isinstance(data, dict) or not isinstance(data.get("layers"), list):
        raise GradvizError(f"{path} is not a gradviz report (no list of layers); {valid}")
    clean = {key: data.get(key) for key in ("model", "weights", "normalize", "images", "n_images", "image_size",
                                            "source", "seed", "device", "precision")}
    for key, value in clean.items():
        if isinstance(value, (dict, list)):
            raise GradvizError(f"{path}: {key} is {type(value).__name__}, not a text or number; {valid}")
    alpha = data.get("alpha", 0.05)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise GradvizError(f"{path}: alpha is {alpha!r}; valid: a number between 0 and 1")
    versions, notes = data.get("versions") or {}, data.get("notes") or []
    if not isinstance(versions, dict) or not isinstance(notes, list):
        raise GradvizError(f"{path}: versions must be an object and notes a list; {valid}")
    clean.update(alpha=alpha, versions={str(k): str(v) for k, v in versions.items()}, notes=[str(n) for n in notes])
    if isinstance(data.get("distributed"), dict):
        clean["distributed"] = {str(k): str(v) for k, v in data["distributed"].items()}
    try:
        clean["layers"] = [clean_layer(layer, f"layer {i}") for i, layer in enumerate(data["layers"])]
    except ValueError as exc:
        tail = "" if "valid:" in str(exc) else f"; {valid}"
        raise GradvizError(f"{path}: {exc}{tail}") from None
    return clean


def read_report_view(folder: str | os.PathLike, label: str | None = None) -> View:
    """A report folder (``report.json`` and its figures) as a view whose figures are embedded in the page.

    Args:
        folder: what ``gradviz report`` (or :func:`~gradviz.report.render.write_report`) wrote.
        label: the column title (default: the report's model and weights).

    Raises:
        GradvizError: the folder holds no readable ``report.json`` with layers of the right kinds, or a figure is
            not a PNG file of the folder, or is too large.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise GradvizError(f"{folder} is not a folder; valid: a folder written by gradviz report")
    path = folder / "report.json"
    try:
        data = json.loads(_read_regular(path, MAX_REPORT_JSON, "a report").decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise GradvizError(f"{path}: not readable JSON; valid: a folder written by gradviz report") from None
    data = clean_report(data, path)
    figures = {}
    for name in FIGURE_CAPTIONS:
        figure = folder / name
        if not figure.exists() and not figure.is_symlink():
            continue
        if figure.is_symlink():
            raise GradvizError(f"{figure} is a link; valid: the figures gradviz wrote into the folder")
        png = _read_regular(figure, MAX_EMBEDDED_FIGURE, "a figure")
        if not png.startswith(PNG_SIGNATURE):
            raise GradvizError(f"{figure} is not a PNG file; valid: the figures gradviz wrote into the folder")
        figures[name] = png
    if sum(len(png) for png in figures.values()) > MAX_EMBEDDED_FIGURE:
        raise GradvizError(f"the figures of {folder} add up to over {MAX_EMBEDDED_FIGURE >> 20} MB; "
                           "valid: the figures gradviz wrote")
    extra = sorted(p.name for p in folder.glob("*.json") if p.name != "report.json")
    return report_view(data, list(figures), lambda name: png_data_uri(figures[name]), label, extra)
