"""The meter's readings as text: a verdict card per layer, the table's cells, and the definitions.

Everything here works on the plain data of a measured layer: ``CheckerboardMetrics.to_dict()`` with the
layer's ``name`` and ``stride`` added (``LayerResult.to_dict()``, a layer of ``report.json``, a stage of
``comparison.json``). The Markdown pages, the notebook view and the HTML pages all read their cells,
cards and definitions from here, so they say the same thing.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

from gradviz.io.text import fmt
from gradviz.spectrum.lattice import HIGH_FREQUENCY_CUTOFF
from gradviz.spectrum.lines import BACKGROUND_HALF_WIDTH
from gradviz.spectrum.metrics import DEFAULT_NULL_DRAWS

__all__ = ["COLUMNS", "Card", "OctaveLine", "definitions", "html_table", "layer_card", "layer_cells", "markdown_table"]

# The table's columns, in order (the Markdown page explains each).
COLUMNS = (
    "layer", "S", "verdict", "excess by octave (p)", "lattice excess", "shared tile cv (p)", "lattice share",
    "share by octave", "coherent share", "tile max/min", "hf off-lattice",
)


def definitions() -> list[tuple[str, str]]:
    """What the report's words and numbers mean, as ``(term, definition)`` pairs in reading order.

    The one text behind the Markdown page's "What was measured" and the HTML page's "How to read this".

    Example:
        >>> [term for term, _ in definitions()][:3]
        ['input gradient', 'lattice', 'excess']
    """
    return [
        ("input gradient", "for each layer, the gradient of its objective with respect to the RGB input pixels (in "
         "[0, 1]), for every image; cropped at the top-left to a multiple of the layer's cumulative stride S, scaled "
         "to unit energy (every image counts the same), each channel's mean removed, then the 2D FFT (orthonormal). "
         "Spectra and tiles are summed over images and channels."),
        ("lattice", "a pattern that repeats every S pixels puts its power on the lattice: the frequency bins "
         "(a/S, b/S) cycles/px. Octave j is the lattice bins of period exactly 2^j px (period 2 is the finest "
         "checkerboard)."),
        ("excess", "how far the lattice lines stand above their surroundings: exp(mean over the lattice bins of "
         "log(P(bin) / geometric mean of P over the non-lattice bins within "
         f"+-{BACKGROUND_HALF_WIDTH} bins)), after removing the boundary cross (Moisan's periodic-plus-smooth "
         "decomposition); bins on an axis are compared with bins on that axis. 1 means no grid, whatever the slope "
         "of the spectrum; 5x means the lines carry five times the power of their neighbours. Given per octave."),
        ("p-value and verdict", f"per octave, the share of {DEFAULT_NULL_DRAWS} copies of the same bins, translated "
         "in frequency onto non-lattice positions, whose excess is at least as large: a null that holds for sloped "
         "spectra. The p-values are Holm-adjusted over the octaves; the layer's p is the smallest adjusted one. The "
         "verdict is \"grid\" when p < alpha, naming the octaves whose adjusted p < alpha, else \"no detectable "
         "grid\" (which is not proof of no grid: a weaker one may be missed)."),
        ("null band and detection threshold", "the null band is the middle 90% (5% to 95%) of the translated copies' "
         "excess: what chance gives at this spectrum's slope. Above the detection threshold an octave's own p-value "
         "is below alpha / G (G octaves tested), so it is detected whatever the other octaves show."),
        ("shared tile cv", "the energy pattern (sum over channels of g² at each phase y mod S, x mod S, on the "
         "interior, slow trend removed) that different images share, as a U-statistic over pairs of images (0 in "
         f"expectation without a shared pattern); its p from {DEFAULT_NULL_DRAWS} draws that roll each image's tile "
         "by a random phase. It can show a grid of energy that the line test does not see."),
        ("energy shares", "how much of the gradient is grid, with no test: lattice share = lattice energy / all "
         "non-DC energy (by octave: share by octave; a white spectrum would put (S² - 1) / (H·W - 1) there); "
         "coherent share = the lattice share of the mean gradient over images; hf off-lattice = the non-lattice "
         f"energy with max(|fy|, |fx|) >= {Fraction(HIGH_FREQUENCY_CUTOFF)} cycle/px, the disorganised "
         "high-frequency noise that max pooling adds."),
        ("tile max/min", "the pooled tile's largest over smallest phase energy. A description, mostly chance at large "
         "S; not evidence."),
    ]


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


@dataclass(frozen=True)
class OctaveLine:
    """One octave of a verdict card (``None`` where the report has no number)."""

    period: int
    excess: float | None
    band: tuple[float, float] | None
    threshold: float | None
    p_adjusted: float | None
    detected: bool

    @property
    def text(self) -> str:
        """``"period 2 px: 5.1x (chance 0.9-1.1, detected above 1.3), p = 0.005"``."""
        parts = [f"period {self.period} px: {fmt(self.excess, 3)}x"]
        extra = []
        if self.band is not None:
            extra.append(f"chance {fmt(self.band[0], 2)}-{fmt(self.band[1], 2)}")
        if self.threshold is not None and math.isfinite(self.threshold):
            extra.append(f"detected above {fmt(self.threshold, 3)}")
        if extra:
            parts.append(f" ({', '.join(extra)})")
        if self.p_adjusted is not None:
            parts.append(f", p = {fmt(self.p_adjusted, 2)}")
        return "".join(parts)


@dataclass(frozen=True)
class Card:
    """A layer's verdict card: ``status`` is ``"grid"``, ``"clear"`` (no detectable grid) or ``"untested"``."""

    name: str
    stride: int
    status: str
    badge: str
    verdict: str
    octaves: list[OctaveLine]
    tile: str


def _number(x) -> float | None:
    """``x`` as a float; None for None and NaN (JSON has null where the report had NaN or inf)."""
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def layer_card(layer: Mapping) -> Card:
    """The verdict card of one layer.

    Args:
        layer: ``LayerResult.to_dict()`` (or a layer of ``report.json``).

    Example:
        >>> card = layer_card({"name": "features.4", "stride": 2, "verdict": "grid: period 2 (5.1x) (p = 0.01)",
        ...     "grid_detected": True, "p_value": 0.01, "zero_gradient": False, "n_null": 200, "alpha": 0.05,
        ...     "octave_excess": [5.1], "octave_null_band": [[0.9, 1.1]], "octave_threshold": [1.3],
        ...     "octave_p_adjusted": [0.01], "shared_tile_cv": 0.2, "tile_p_value": 0.01, "tile_note": ""})
        >>> card.status, card.badge, card.octaves[0].text
        ('grid', 'grid', 'period 2 px: 5.1x (chance 0.9-1.1, detected above 1.3), p = 0.01')
    """
    alpha = layer.get("alpha", 0.05)
    bands = layer.get("octave_null_band") or []
    thresholds = layer.get("octave_threshold") or []
    octaves = []
    for j, excess in enumerate(layer.get("octave_excess") or []):
        band = bands[j] if j < len(bands) else None
        band = (float(band[0]), float(band[1])) if band and None not in band else None
        p_adj = _number((layer.get("octave_p_adjusted") or [None] * (j + 1))[j])
        threshold = thresholds[j] if j < len(thresholds) else None
        # JSON writes an unreachable threshold (inf) as null, like NaN: both mean "no threshold to show"
        octaves.append(OctaveLine(2 ** (j + 1), _number(excess), band, _number(threshold), p_adj,
                                  p_adj is not None and p_adj < alpha))
    untested = layer.get("zero_gradient") or not layer.get("n_null") or _number(layer.get("p_value")) is None
    status = "untested" if untested else "grid" if layer.get("grid_detected") else "clear"
    badge = {"untested": "not tested", "grid": "grid", "clear": "no detectable grid"}[status]
    tile_p = _number(layer.get("tile_p_value"))
    if tile_p is None:
        tile = f"shared tile: not tested ({layer.get('tile_note') or 'no null draws'})"
    else:
        shared = "shared by the images" if tile_p < alpha else "not shared detectably"
        tile = f"energy tile {shared}: cv {fmt(_number(layer.get('shared_tile_cv')), 3)}, p = {fmt(tile_p, 2)}"
    return Card(str(layer["name"]), int(layer["stride"]), status, badge, str(layer.get("verdict", "")), octaves, tile)


def _example_row() -> dict:
    """One layer's row as ``LayerResult.to_dict()`` gives it (the fields the table reads), for the examples."""
    return {"name": "layer1", "stride": 4, "verdict": "no detectable grid (p = 0.5)", "octave_excess": [1.01, 0.98],
            "octave_p_values": [0.4, 0.7], "lattice_excess": 0.995, "shared_tile_cv": 0.01, "tile_p_value": 0.3,
            "tile_note": "", "lattice_fraction": 0.0625, "octave_fractions": [0.05, 0.0125],
            "coherent_lattice_fraction": 0.07, "tile_contrast": 1.2, "hf_offlattice_fraction": 0.2}
