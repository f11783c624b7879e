"""The report's settings as text, and the notebook view of a report (``Report._repr_html_``).

The table's cells and the definitions are the meter's (:mod:`gradviz.spectrum.readings`), shared with the
Markdown page (:func:`gradviz.report.render.report_page`) and the HTML pages.
"""

from __future__ import annotations

import html
from collections.abc import Mapping

from gradviz.spectrum.readings import html_table

__all__ = ["report_html", "settings_lines"]


def settings_lines(report, versions: Mapping[str, str] | None = None) -> list[str]:
    """What was measured and how, then the report's notes, one item per line.

    Args:
        report: a :class:`~gradviz.report.result.Report` (read by attribute).
        versions: the software versions to list after the settings (None: not listed).
    """
    lines = [
        f"weights: {report.weights}" + (f"; input normalisation: {report.normalize}" if report.normalize else ""),
        f"images: {report.images} ({report.n_images} images at {report.image_size} px)",
        f"gradient source: {report.source}; seed {report.seed}; device {report.device}",
    ]
    if versions is not None:
        lines.append("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    return lines + [f"note: {note}" for note in report.notes]


def report_html(report) -> str:
    """The notebook view of a report: title, settings and notes, then the table (:func:`html_table`).

    Args:
        report: a :class:`~gradviz.report.result.Report`.

    Returns:
        One ``<div>`` of HTML (what ``Report._repr_html_`` returns).
    """
    items = "".join(f"<li>{html.escape(line)}</li>" for line in settings_lines(report))
    layers = [layer.to_dict() for layer in report.layers]
    return (f"<div><p><b>Gradient-spectrum report: {html.escape(str(report.model))}</b> (alpha = {report.alpha})</p>"
            f"<ul>{items}</ul>{html_table(layers)}</div>")
