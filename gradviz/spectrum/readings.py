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
from dataclasses import dataclass, replace
from fractions import Fraction

from gradviz.io.text import fmt
from gradviz.spectrum.lattice import HIGH_FREQUENCY_CUTOFF
from gradviz.spectrum.lines import BACKGROUND_HALF_WIDTH
from gradviz.spectrum.metrics import DEFAULT_NULL_DRAWS

__all__ = ["COLUMNS", "LAYER_FIELDS", "Card", "OctaveLine", "clean_layer", "definitions", "html_table", "layer_card",
           "layer_cells", "markdown_table"]

# The table's columns, in order (the Markdown page explains each).
COLUMNS = (
    "layer", "S", "verdict", "excess by octave (p)", "lattice excess", "shared tile cv (p)", "lattice share",
    "share by octave", "coherent share", "tile max/min", "hf off-lattice",
)


def definitions() -> list[tuple[str, str]]:
    """What the report's words and numbers mean, as ``(term, definition)`` pairs in reading order.

    The one text behind the Markdown page's "What was measured" and the HTML page's "How to read this".

    Example:
        >>> [term for term, _ in definitions()][:4]
        ['in short', 'input gradient', 'lattice', 'excess']
    """
    return [
        ("in short", "a red card says the gradient repeats a pattern every S pixels, where S is the layer's cumulative "
         "stride: the grid the Distill article predicts for strided layers whose kernel size is not divisible by their "
         "stride. A green card says no such pattern could be told apart from chance. The number on a red card (e.g. "
         "2.6x) is how much stronger the grid's frequencies are than the frequencies around them; 1x is none."),
        ("input gradient", "for each layer, the gradient of its objective (deepdream(L): the mean of layer L's squared "
         "activations; for the logits, the top class's logit) with respect to the RGB input pixels in [0, 1], for "
         "every image; cropped at the top-left to a multiple of S, scaled to unit energy (every image counts the "
         "same), each channel's mean removed, then the 2D FFT (orthonormal). Spectra and tiles are summed over "
         "images and channels."),
        ("lattice", "a pattern that repeats every S pixels puts its power on the lattice: the frequency bins "
         "(a/S, b/S) cycles/px. Octave j is the lattice bins of period exactly 2^j px (period 2 is the finest "
         "checkerboard, at 1/2 cycle/px)."),
        ("excess", "per octave: the power of its lattice bins over the geometric mean of the non-lattice bins within "
         f"+-{BACKGROUND_HALF_WIDTH} bins of each, averaged in log over the octave's bins (exp of the mean log ratio). "
         "1 means no grid, whatever the slope of the spectrum; 5x means five times the power of the neighbours; below "
         "1, the lattice is weaker than its neighbours (a kernel with zeros there, such as a blur). First the "
         "boundary cross is removed: a map that does not wrap around puts energy on the frequency axes, which "
         "Moisan's periodic-plus-smooth decomposition takes away. Bins on an axis are compared with bins on that "
         "axis."),
        ("lattice excess", "the same over all lattice bins of every period at once: a summary, not tested. A strong "
         "period-2 line can hide in it when a layer has many weak bins of longer periods; read the octaves."),
        ("p-value and verdict", f"per octave, the share of {DEFAULT_NULL_DRAWS} copies of the same bins, translated "
         "in frequency onto non-lattice positions, whose excess is at least as large: a null that holds for sloped "
         "spectra. The p-values are Holm-adjusted over the G octaves tested; the layer's p is the smallest adjusted "
         "one. The verdict is \"grid\" when p < alpha, naming the octaves whose adjusted p < alpha, else \"no "
         "detectable grid\" (not proof of no grid: a weaker one may be missed). With N copies no p-value is below "
         "1/(N+1), and Holm multiplies the smallest by G: a card saying \"p <= 0.005 (the smallest possible)\" "
         "is at that floor, so a deeper layer's larger floor is more octaves, not weaker evidence."),
        ("null band and detection threshold", "the null band is the middle 90% (5% to 95%) of the translated copies' "
         "excess: what chance gives at this spectrum's slope. Above the detection threshold an octave's own p-value "
         "is below alpha / G, so it is detected whatever the other octaves show."),
        ("shared tile cv", "the energy per phase (sum over channels of g² at each position y mod S, x mod S, on the "
         "interior, slow trend removed) that different images share: its coefficient of variation (std / mean), "
         "estimated without bias over pairs of images, 0 when they share nothing (negative estimates are shown as "
         f"0); its p from {DEFAULT_NULL_DRAWS} draws that shift each image's tile by a random phase. It can find a "
         "grid of energy that the line test does not see."),
        ("energy shares", "how much of the gradient's energy is grid, with no test: lattice share = lattice energy / "
         "all non-DC energy, and by octave; coherent share = the lattice share of the mean gradient over images; hf "
         f"off-lattice = the share of non-lattice energy at max(|fy|, |fx|) >= {Fraction(HIGH_FREQUENCY_CUTOFF)} "
         "cycle/px, the less organised high-frequency noise the Distill article ascribes to max pooling. Gradients "
         "have sloped spectra, so a grid can be clear (a large excess) and still hold a tiny share of the energy."),
        ("tile max/min", "the pooled tile's largest over smallest phase energy. A description, mostly chance at large "
         "S; not evidence."),
    ]


# What a layer of a report's JSON may hold, field by kind, for :func:`clean_layer` (a missing field is None).
LAYER_FIELDS = {
    "number": ("lattice_excess", "p_value", "shared_tile_cv", "tile_p_value", "lattice_fraction",
               "coherent_lattice_fraction", "tile_contrast", "hf_offlattice_fraction", "alpha"),
    "numbers": ("octave_excess", "octave_p_values", "octave_p_adjusted", "octave_fractions", "octave_threshold"),
    "text": ("verdict", "tile_note", "objective"),
    "flag": ("grid_detected", "zero_gradient"),
}


def _as_number(value, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where} is {type(value).__name__}, not a number")
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"{where} is too large a number") from None


def _as_numbers(value, where: str) -> list | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise ValueError(f"{where} is {type(value).__name__}, not a list of numbers")
    return [_as_number(v, f"{where}[{i}]") for i, v in enumerate(value)]


def clean_layer(raw, where: str = "layer") -> dict:
    """A layer of a report's JSON, checked field by field: every field the pages read, of the right kind.

    A missing field becomes None (a report from an earlier version shows "n/a" there); a field of the wrong
    kind is refused.

    Args:
        raw: one entry of ``report.json``'s ``layers``.
        where: how the error names it.

    Raises:
        ValueError: one line naming the field and what it should be.

    Example:
        >>> clean_layer({"name": "x", "stride": 2, "octave_excess": [1.5]})["octave_excess"]
        [1.5]
        >>> clean_layer({"name": "x", "stride": "two"})
        Traceback (most recent call last):
        ...
        ValueError: layer stride is 'two'; valid: a positive whole number
    """
    if not isinstance(raw, dict):
        raise ValueError(f"{where} is {type(raw).__name__}, not an object")
    name, stride = raw.get("name"), raw.get("stride")
    if isinstance(name, (dict, list)) or name is None:
        raise ValueError(f"{where} name is {name!r}; valid: a text")
    if isinstance(stride, bool) or not isinstance(stride, int) or not 1 <= stride <= 2**31:
        raise ValueError(f"{where} stride is {stride!r}; valid: a positive whole number")
    layer = {"name": str(name), "stride": stride}
    for field in LAYER_FIELDS["number"]:
        layer[field] = _as_number(raw.get(field), f"{where} {field}")
    for field in LAYER_FIELDS["numbers"]:
        layer[field] = _as_numbers(raw.get(field), f"{where} {field}")
    for field in LAYER_FIELDS["text"]:
        value = raw.get(field)
        if isinstance(value, (dict, list)):
            raise ValueError(f"{where} {field} is {type(value).__name__}, not a text")
        layer[field] = "" if value is None else str(value)
    for field in LAYER_FIELDS["flag"]:
        value = raw.get(field)
        if value is not None and not isinstance(value, bool):
            raise ValueError(f"{where} {field} is {value!r}; valid: true or false")
        layer[field] = bool(value)
    n_null = raw.get("n_null")
    if n_null is not None and (isinstance(n_null, bool) or not isinstance(n_null, int) or n_null < 0):
        raise ValueError(f"{where} n_null is {n_null!r}; valid: a whole number >= 0")
    layer["n_null"] = n_null
    bands = raw.get("octave_null_band")
    if bands is not None:
        if not isinstance(bands, list) or not all(isinstance(b, list) and len(b) == 2 for b in bands):
            raise ValueError(f"{where} octave_null_band is not a list of [low, high] pairs")
        bands = [[_as_number(v, f"{where} octave_null_band") for v in band] for band in bands]
    layer["octave_null_band"] = bands
    return layer


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
    octaves = ", ".join(f"{fmt(e, 3)} ({fmt(p, 2)})" for e, p in zip(layer["octave_excess"] or [],
                                                                       layer["octave_p_values"] or []))
    shares = ", ".join(fmt(v, 2) for v in layer["octave_fractions"] or [])
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
    p_floor: float | None = None  # the smallest adjusted p the null draws can give

    @property
    def text(self) -> str:
        """``"period 2 px: 5.1x (chance 0.905-1.1, detected above 1.3), p = 0.005"``; a p-value at the floor of
        the null draws reads ``"p <= 0.005 (the smallest possible)"``."""
        parts = [f"period {self.period} px: {fmt(self.excess, 3)}x"]
        extra = []
        if self.band is not None:
            extra.append(f"chance {fmt(self.band[0], 3)}-{fmt(self.band[1], 3)}")
        if self.threshold is not None and math.isfinite(self.threshold):
            extra.append(f"detected above {fmt(self.threshold, 3)}")
        if extra:
            parts.append(f" ({', '.join(extra)})")
        if self.p_adjusted is not None:
            at_floor = self.p_floor is not None and self.p_adjusted <= self.p_floor * (1 + 1e-9)
            parts.append(f", p <= {fmt(self.p_adjusted, 2)} (the smallest possible)" if at_floor
                         else f", p = {fmt(self.p_adjusted, 2)}")
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

    @property
    def strongest(self) -> OctaveLine | None:
        """The detected octave with the largest excess (None when none is detected)."""
        detected = [o for o in self.octaves if o.detected and o.excess is not None]
        return max(detected, key=lambda o: o.excess) if detected else None


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
        ('grid', 'grid: 5.1x at period 2', 'period 2 px: 5.1x (chance 0.9-1.1, detected above 1.3), p = 0.01')
    """
    alpha = layer.get("alpha", 0.05)
    tested = [q for q in layer.get("octave_p_values") or [] if q is not None and not math.isnan(q)]
    # Holm's adjustment cannot go below G / (1 + n_null) for G octaves tested, each p at least 1 / (1 + n_null)
    p_floor = len(tested) / (1 + layer["n_null"]) if tested and layer.get("n_null") else None
    bands = layer.get("octave_null_band") or []
    thresholds = layer.get("octave_threshold") or []
    octaves = []
    for j, excess in enumerate(layer.get("octave_excess") or []):
        band = bands[j] if j < len(bands) else None
        band = (float(band[0]), float(band[1])) if band and None not in band else None
        adjusted = layer.get("octave_p_adjusted") or []
        p_adj = _number(adjusted[j]) if j < len(adjusted) else None
        threshold = thresholds[j] if j < len(thresholds) else None
        # JSON writes an unreachable threshold (inf) as null, like NaN: both mean "no threshold to show"
        octaves.append(OctaveLine(2 ** (j + 1), _number(excess), band, _number(threshold), p_adj,
                                  p_adj is not None and p_adj < alpha, p_floor))
    untested = layer.get("zero_gradient") or not layer.get("n_null") or _number(layer.get("p_value")) is None
    status = "untested" if untested else "grid" if layer.get("grid_detected") else "clear"
    badge = {"untested": "not tested", "grid": "grid", "clear": "no detectable grid"}[status]
    tile_p = _number(layer.get("tile_p_value"))
    if tile_p is None:
        why = str(layer.get("tile_note") or "no null draws").split(":")[0]  # "the map is too small: ..." -> its gist
        tile = f"shared energy tile: not tested ({why})"
    else:
        shared = "shared by the images" if tile_p < alpha else "not shared detectably"
        tile = f"energy tile {shared}: cv {fmt(_number(layer.get('shared_tile_cv')), 3)}, p = {fmt(tile_p, 2)}"
    card = Card(str(layer["name"]), int(layer["stride"]), status, badge, str(layer.get("verdict", "")), octaves, tile)
    if card.strongest is not None:
        card = replace(card, badge=f"grid: {fmt(card.strongest.excess, 3)}x at period {card.strongest.period}")
    return card


def _example_row() -> dict:
    """One layer's row as ``LayerResult.to_dict()`` gives it (the fields the table reads), for the examples."""
    return {"name": "layer1", "stride": 4, "verdict": "no detectable grid (p = 0.5)", "octave_excess": [1.01, 0.98],
            "octave_p_values": [0.4, 0.7], "lattice_excess": 0.995, "shared_tile_cv": 0.01, "tile_p_value": 0.3,
            "tile_note": "", "lattice_fraction": 0.0625, "octave_fractions": [0.05, 0.0125],
            "coherent_lattice_fraction": 0.07, "tile_contrast": 1.2, "hf_offlattice_fraction": 0.2}
