"""Pages of verdicts: one set of measured layers on a page, or several side by side.

A :class:`View` is what a page shows of one measurement: its plain data (``{"layers": [...], ...}`` as in
``report.json``; each layer a :func:`~gradviz.spectrum.readings.layer_card` input), a label, its figures
and its provenance. The report (``report.html``, ``gradviz html``), the downsampling comparison and the
generator study all build their pages from views, so a verdict looks the same everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from gradviz.io.html import render_page
from gradviz.spectrum.readings import COLUMNS, Card, layer_card, layer_cells

__all__ = ["Figure", "View", "comparison_rows", "ordered_figures", "side_by_side_page", "single_page"]


@dataclass(frozen=True)
class Figure:
    """A figure on a page: its file name, where the page finds it (a relative path or a ``data:`` URI), a caption."""

    name: str
    src: str
    caption: str = ""


@dataclass(frozen=True)
class View:
    """What a page shows of one measurement.

    Attributes:
        label: its title (a model, a variant, a design).
        data: ``{"layers": [...], "alpha": ...}``; each layer holds ``name``, ``stride`` and the metrics' fields.
        figures: shown in this order.
        provenance: ``(name, value)`` rows: what was measured, how, with which software.
        headline: the file name of the figure shown beside the verdicts (others go under "Figures").
    """

    label: str
    data: Mapping
    figures: Sequence[Figure] = ()
    provenance: Sequence[tuple[str, str]] = field(default_factory=list)
    headline: str = "headline.png"

    @property
    def cards(self) -> list[Card]:
        return [layer_card(layer) for layer in self.data["layers"]]

    @property
    def summary(self) -> str:
        """``"grid detected in 3 of 5 layers tested (alpha = 0.05)"``."""
        cards = self.cards
        grids = sum(card.status == "grid" for card in cards)
        tested = sum(card.status != "untested" for card in cards)
        untested = f"; {len(cards) - tested} not tested" if tested < len(cards) else ""
        return f"grid detected in {grids} of {tested} tested (alpha = {self.data.get('alpha', 0.05)}){untested}"

    @property
    def table(self) -> tuple[Sequence[str], list[list[str]]]:
        """The columns and one row of cells per layer (:func:`~gradviz.spectrum.readings.layer_cells`)."""
        return COLUMNS, [layer_cells(layer) for layer in self.data["layers"]]


def ordered_figures(names: Sequence[str], src: Callable[[str], str], captions: Mapping[str, str]) -> list[Figure]:
    """Figures in the order of ``captions``, then any others by name; ``src(name)`` says where each is.

    Example:
        >>> [f.name for f in ordered_figures(["b.png", "z.png", "a.png"], str, {"a.png": "A", "b.png": "B"})]
        ['a.png', 'b.png', 'z.png']
    """
    known = [n for n in captions if n in names]
    rest = sorted(n for n in names if n not in captions)
    return [Figure(n, src(n), captions.get(n, "")) for n in known + rest]


def comparison_rows(views: Sequence[View], unit: str = "layer") -> tuple[str, list[tuple[str, list[list[Card]]]]]:
    """Rows of a side-by-side page: one per layer name when every view has the same layers, else one per
    cumulative stride S (so VGG16's and ResNet50's stages line up); each cell holds that view's cards.

    Returns:
        The rows' header (``unit``, or "cumulative stride") and the rows as ``(key, cells)``.

    Example:
        >>> a = View("a", {"layers": [{"name": "x", "stride": 2}, {"name": "y", "stride": 4}]})
        >>> b = View("b", {"layers": [{"name": "u", "stride": 4}]})
        >>> header, rows = comparison_rows([a, b])
        >>> header, [(key, [[c.name for c in cell] for cell in cells]) for key, cells in rows]
        ('cumulative stride', [('S = 2', [['x'], []]), ('S = 4', [['y'], ['u']])])
    """
    names = [[layer["name"] for layer in v.data["layers"]] for v in views]
    cards = [v.cards for v in views]
    if not views:
        return unit, []
    if all(n == names[0] for n in names):
        return unit, [(name, [[c[i]] for c in cards]) for i, name in enumerate(names[0])]
    strides = sorted({card.stride for cs in cards for card in cs})
    return "cumulative stride", [(f"S = {s}", [[card for card in cs if card.stride == s] for cs in cards])
                                 for s in strides]


def single_page(view: View, *, title: str, definitions: Sequence[tuple[str, str]], unit: str = "layer",
                intro: Sequence[str] = ()) -> str:
    """One measurement: the summary, a verdict card per layer, the headline figure, the sortable table of
    every number, the other figures, "how to read this" (folded) and the provenance.

    Args:
        view: what to show.
        title: the page's title.
        definitions: ``(term, definition)`` pairs for "how to read this".
        unit: what a card is of ("layer", "design", ...).
        intro: paragraphs under the title.
    """
    columns, rows = view.table
    return render_page("single.html.j2", title=title, view=view, columns=columns, rows=rows, unit=unit,
                       intro=intro, definitions=definitions)


def side_by_side_page(views: Sequence[View], *, title: str, definitions: Sequence[tuple[str, str]],
                      intro: Sequence[str] = (), figures: Sequence[Figure] = (), unit: str = "layer",
                      summary: Sequence[str] | None = None) -> str:
    """Several measurements on one page: each one's summary and headline figure, the verdict cards row by
    row (:func:`comparison_rows`), the page's own ``figures``, then each view's table, figures and
    provenance (folded).

    Args:
        views: one column each.
        title: the page's title.
        definitions: ``(term, definition)`` pairs for "how to read this".
        intro: paragraphs under the title.
        figures: the page's own figures, after the rows.
        unit: what a row is ("layer", "design", ...).
        summary: the lines at the top (default: each view's :attr:`View.summary`).
    """
    summary = [f"{view.label}: {view.summary}" for view in views] if summary is None else summary
    row_header, rows = comparison_rows(views, unit)
    return render_page("side_by_side.html.j2", title=title, views=views, rows=rows, row_header=row_header,
                       intro=intro, figures=figures, definitions=definitions, unit=unit, summary=summary)
