"""The report's readings as text: the settings lines and the table, one row per layer.

Shared by the Markdown page (:func:`gradviz.report.render.report_page`) and the notebook view
(``Report._repr_html_``), so both show the same cells. Works on the plain data of a report
(``LayerResult.to_dict()``), draws nothing and imports no study module.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

from gradviz.io.text import fmt

__all__ = ["COLUMNS", "html_table", "layer_cells", "markdown_table", "report_html", "settings_lines"]

# The table's columns, in order (the Markdown page explains each).
COLUMNS = (
    "layer", "S", "verdict", "excess by octave (p)", "lattice excess", "shared tile cv (p)", "lattice share",
    "share by octave", "coherent share", "tile max/min", "hf off-lattice",
)


def layer_cells(layer: Mapping) -> list[str]:
    """The cells of one layer's row, one per :data:`COLUMNS` entry.

    Args:
        layer: ``LayerResult.to_dict()`` (name, stride, objective and the metrics' fields).

    Returns:
        The formatted cells, as plain text.

    Example:
        >>> cells = layer_cells(_example_row())
        >>> cells[:4], cells[5], len(cells) == len(COLUMNS)
        (['layer1', '4', 'no detectable grid (p = 0.5)', '1.01 (0.4), 0.98 (0.7)'], '0.01 (0.3)', True)
    """
    octaves = ", ".join(f"{fmt(e, 3)} ({fmt(p, 2)})" for e, p in zip(layer["octave_excess"], layer["octave_p_values"]))
    shares = ", ".join(fmt(v, 2) for v in layer["octave_fractions"])
    tested = layer["tile_p_value"] is not None and layer["tile_p_value"] == layer["tile_p_value"]
    tile = f"{fmt(layer['shared_tile_cv'], 3)} ({fmt(layer['tile_p_value'], 2)})" if tested else f"n/a ({layer['tile_note']})"
    return [
        str(layer["name"]), str(layer["stride"]), str(layer["verdict"]), octaves, fmt(layer["lattice_excess"], 3), tile,
        fmt(layer["lattice_fraction"], 3), shares, fmt(layer["coherent_lattice_fraction"], 3),
        fmt(layer["tile_contrast"], 3), fmt(layer["hf_offlattice_fraction"], 3),
    ]


def markdown_table(layers: Sequence[Mapping]) -> list[str]:
    """The table as Markdown lines: header, rule, one row per layer.

    Args:
        layers: ``LayerResult.to_dict()`` of each layer.

    Returns:
        The lines (``|`` inside a cell escaped).

    Example:
        >>> lines = markdown_table([_example_row()])
        >>> len(lines), lines[2][:46]
        (3, '| layer1 | 4 | no detectable grid (p = 0.5) | ')
    """
    return ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)] + [
        "| " + " | ".join(cell.replace("|", "\\|") for cell in layer_cells(layer)) + " |" for layer in layers
    ]


def html_table(layers: Sequence[Mapping]) -> str:
    """The same table as HTML: a ``<thead>`` row of :data:`COLUMNS`, one ``<tr>`` per layer in ``<tbody>``.

    Args:
        layers: ``LayerResult.to_dict()`` of each layer.

    Returns:
        The ``<table>``, text escaped.

    Example:
        >>> page = html_table([_example_row(), _example_row()])
        >>> page.count("<tr>"), page.split("<tbody>")[1][:33]
        (3, '<tr><td>layer1</td><td>4</td><td>')
    """
    head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in layer_cells(layer)) + "</tr>"
                   for layer in layers)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


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


def _example_row() -> dict:
    """One layer's row as ``LayerResult.to_dict()`` gives it (the fields the table reads), for the examples."""
    return {"name": "layer1", "stride": 4, "verdict": "no detectable grid (p = 0.5)", "octave_excess": [1.01, 0.98],
            "octave_p_values": [0.4, 0.7], "lattice_excess": 0.995, "shared_tile_cv": 0.01, "tile_p_value": 0.3,
            "tile_note": "", "lattice_fraction": 0.0625, "octave_fractions": [0.05, 0.0125],
            "coherent_lattice_fraction": 0.07, "tile_contrast": 1.2, "hf_offlattice_fraction": 0.2}
