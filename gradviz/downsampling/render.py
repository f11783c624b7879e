"""Downsampling comparison, drawing half: a :class:`~gradviz.downsampling.compare.Comparison`
turned into figures, a Markdown page, and a folder written atomically (``comparison.json``,
``report.md``, ``summary.png``, ``stage-<layer>.png``).

Figures are :class:`matplotlib.figure.Figure` objects made without pyplot
(:func:`gradviz.io.plotting.new_figure`): show one with ``display(fig)`` or save it with
:func:`gradviz.io.plotting.save_figure`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib.ticker
import torch
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from gradviz.downsampling.compare import ComparedLayer, Comparison, VariantResult
from gradviz.downsampling.page import comparison_page_html, stage_figure_name
from gradviz.io import plotting as plots
from gradviz.io.outputs import atomic_dir, json_ready, write_json
from gradviz.io.text import fmt
from gradviz.spectrum import checkerboard_metrics

__all__ = ["FIGURE_DPI", "JSON_DIGITS", "PREDICTED_FLOOR", "comparison_page", "stage_figure", "summary_figure",
           "write_comparison"]

# Significant digits kept in comparison.json (keeps the file small; far below the run-to-run noise).
JSON_DIGITS = 6
# Resolution of the PNG figures.
FIGURE_DPI = plots.FIGURE_DPI
# Bottom of the kernel-predicted line/DC axis: a blur kernel's zero at the line frequency comes out as
# 0 or a rounding error (1e-14); anything below this is drawn on the floor as "zero" (a down-triangle).
PREDICTED_FLOOR = 1e-4


def _fmt(x: float | None, digits: int = 3) -> str:
    """:func:`~gradviz.io.text.fmt` with 3 digits, and ``"n/a"`` for NaN and infinities too."""
    return fmt(None if isinstance(x, float) and not math.isfinite(x) else x, digits)


def comparison_page(comp: Comparison, figures: list[str]) -> str:
    """A readable page: settings, one table per stage quantity, the kernel predictions, the figures.

    Args:
        comp: the comparison.
        figures: the figure file names to embed, in order.

    Returns:
        The page (``report.md``).

    Example:
        >>> page = comparison_page(_example_comparison(), ["summary.png"])
        >>> page.splitlines()[0], "| stride | 1.000 (1.000) |" in page, page.splitlines()[-1]
        ('# Downsampling comparison: toy', True, '![summary.png](summary.png)')
    """
    lines = [
        f"# Downsampling comparison: {comp.arch}",
        "",
        f"- weights: {comp.weights}",
        f"- images: {comp.images} ({len(comp.image_names)} images, {comp.size} px)",
        f"- objective: {comp.objective}; seed {comp.seed}",
        "",
        "## Variants",
        "",
        *[f"- `{v.name}`: {v.description}" for v in comp.variants],
        "",
        "## Per variant and stage",
        "",
        "cos = mean cosine similarity of the stage's activations to the original's (min over images in brackets); "
        "verdict = the line test at alpha 0.05 (Holm over the octaves); lattice excess = power of all the lattice bins "
        "over their local background (1 = no grid), a summary with no test of its own (read the verdict); own line = the same at period = stride only; shared tile "
        "cv = the energy tile the images share (interior), p in brackets; tile max/min = the pooled tile, a description "
        "only; hf off = top-octave off-lattice share of the energy. Every image counts the same (unit energy).",
        "",
    ]
    stages = comp.variants[0].layers
    header = "| variant | " + " | ".join(f"{s.layer} (S={s.stride})" for s in stages) + " |"
    sep = "|---|" + "---|" * len(stages)
    for title, cell in [
        ("cos (min)", lambda s: f"{s.cosine_mean:.3f} ({s.cosine_min:.3f})"),
        ("verdict", lambda s: s.metrics.verdict),
        ("lattice excess (all octaves, a summary, not tested)", lambda s: _fmt(s.metrics.lattice_excess)),
        ("own line excess (p)", lambda s: f"{_fmt(s.own_line_excess)} ({_fmt(s.own_line_p, 2)})"),
        ("shared tile cv (p)", lambda s: f"{_fmt(s.metrics.shared_tile_cv)} ({_fmt(s.metrics.tile_p_value, 2)})"),
        ("tile max/min (description)", lambda s: _fmt(s.metrics.tile_contrast)),
        ("hf off-lattice fraction", lambda s: f"{s.metrics.hf_offlattice_fraction:.3f}"),
    ]:
        lines += [f"### {title}", ""]
        lines += [header, sep]
        lines += [f"| {v.name} | " + " | ".join(cell(s) for s in v.layers) + " |" for v in comp.variants]
        lines.append("")
    lines += [
        "### Lattice energy per octave (fraction of non-DC energy, period 2, 4, ...)",
        "",
        "| variant | stage | " + " | ".join(f"p{2**j}" for j in range(1, 6)) + " |",
        "|---|---|" + "---|" * 5,
    ]
    for v in comp.variants:
        for s in v.layers:
            octs = [f"{x:.4f}" for x in s.metrics.octave_fractions] + [""] * (5 - len(s.metrics.octave_fractions))
            lines.append(f"| {v.name} | {s.layer} | " + " | ".join(octs) + " |")
    lines += [
        "",
        "## Where the lines come from",
        "",
        "Per strided layer: the period of its lines in pixels, what its kernel predicts for a constant upstream "
        "gradient (mean over harmonics of P(w_q)/P(0)) and for white-noise upstream (polyphase tile max/min; "
        "inf: a phase gets no gradient, as for a 1x1 stride-2 convolution), and the measured energy at that "
        "period: its excess over the local background (p) at the stage of that stride.",
        "",
        "| variant | layer | kind | period | predicted line/DC | predicted tile max/min | measured line excess (p) |",
        "|---|---|---|---|---|---|---|",
    ]
    for v in comp.variants:
        measured = {s.stride: f"{_fmt(s.own_line_excess)} ({_fmt(s.own_line_p, 2)})" for s in v.layers}
        for p in v.predictions:
            mean_h = None
            if p.harmonic_to_dc:
                vals = [x for x in p.harmonic_to_dc.values() if x is not None]
                mean_h = sum(vals) / len(vals) if vals else None
            tile = "data-dependent" if p.tile is None else ("inf" if p.tile_contrast is None else _fmt(p.tile_contrast))
            line = "data-dependent" if p.harmonic_to_dc is None else _fmt(mean_h)
            lines.append(
                f"| {v.name} | {p.layer} | {p.kind} | {p.line_period} | {line} | {tile} | {measured.get(p.line_period, 'n/a')} |"
            )
    lines += ["", "## Figures", ""] + [f"![{f}]({f})" for f in figures] + [""]
    return "\n".join(lines)


def stage_figure(comp: Comparison, layer: str) -> Figure:
    """One comparison layer: a row per variant; columns: the first image's gradient, the mean log
    power spectrum titled with the line test (:func:`gradviz.io.plotting.line_label`: the strongest
    detected period, its excess and Holm-adjusted p, or "not detected" with the layer's p), the energy
    tile (spectra on one colour scale, tiles on another, each with a colourbar).

    Args:
        comp: the comparison (with its ``example_gradients`` and ``spectra``).
        layer: one of its layers.

    Returns:
        The figure (``stage-<layer>.png``).

    Example:
        >>> fig = stage_figure(_example_comparison(), "layer1")
        >>> len(fig.axes), fig.axes[0].get_title(), fig.axes[1].get_title()
        (5, 'stride: gradient', 'lines: not detected (p = 1)')
    """
    n = len(comp.variants)
    stages = [next(s for s in v.layers if s.layer == layer) for v in comp.variants]
    spectrum_limits = plots.log_power_limits([v.spectra[layer] for v in comp.variants])
    tile_limits = plots.tile_limits([s.metrics.tile for s in stages])
    fig, axes = plots.new_figure(n, 3, figsize=(8.4, 2.6 * n + 0.6), squeeze=False, layout="constrained")
    for row, v, stage in zip(axes, comp.variants, stages):
        m = stage.metrics
        plots.plot_gradient_map(row[0], v.example_gradients[layer], f"{v.name}: gradient")
        spectrum = plots.plot_log_spectrum(row[1], v.spectra[layer], f"lines: {plots.line_label(m)}", stage.stride,
                                           spectrum_limits)
        tile = plots.plot_tile(row[2], torch.tensor(m.tile), f"shared cv {_fmt(m.shared_tile_cv, 2)} "
                               f"(p {_fmt(m.tile_p_value, 2)})", tile_limits)
    plots.add_colourbar(fig, spectrum, axes[-1, 1], "log10(power / total)", location="bottom", shrink=1.0)
    plots.add_colourbar(fig, tile, axes[-1, 2], "energy / mean", location="bottom", shrink=1.0)
    fig.suptitle(f"{comp.arch} ({comp.weights}), deepdream({layer}), stride {stages[0].stride}: gradient of "
                 f"{comp.image_names[0]}, mean power spectrum (cycles/px; cyan marks: the lattice k/S), energy tile",
                 fontsize=plots.TEXT_SIZE + 1, wrap=True)
    return fig


def _strongest_excess(s: ComparedLayer) -> float:
    """The excess of the stage's strongest line (:func:`gradviz.io.plotting.strongest_line`), NaN if untested."""
    line = plots.strongest_line(s.metrics)
    return math.nan if line is None else line[1]


def _strongest_detected(s: ComparedLayer) -> bool:
    line = plots.strongest_line(s.metrics)
    return line is not None and line[3]


# summary_figure's panels: (title, value of a variant's stage, log y, significant(stage) or None: no test).
SUMMARY_PANELS = [
    ("strongest line: the detected period with the largest\nexcess (none detected: the period with the smallest p)",
     lambda v, s: _strongest_excess(s), True, _strongest_detected),
    ("line excess at period = stride", lambda v, s: s.own_line_excess, True, lambda s: s.own_line_p < s.metrics.alpha),
    ("kernel-predicted line / DC at that period", lambda v, s: v.predicted_line(s.stride), True, None),
    ("shared energy tile cv (interior)", lambda v, s: s.metrics.shared_tile_cv, False,
     lambda s: s.metrics.tile_detected),
    ("high-frequency off-lattice share (no test)", lambda v, s: s.metrics.hf_offlattice_fraction, False, None),
    ("cosine similarity to the original (no test)", lambda v, s: s.cosine_mean, False, None),
]


def summary_figure(comp: Comparison) -> Figure:
    """Six panels against stage stride: the strongest line's excess (its period beside it when not 2 px), the line
    excess at period = stride, the predicted line/DC, the shared tile cv, the hf off-lattice share, cos.
    Circles are tested quantities, filled where that very quantity is significant at alpha (the strongest
    line: its Holm-adjusted p; the own line: its raw p; the tile: its p), open where not; squares are
    quantities without a test. Predicted values below ``PREDICTED_FLOOR`` (a kernel's zero) are drawn on
    the floor as down-triangles.

    Args:
        comp: the comparison.

    Returns:
        The figure (``summary.png``).

    Example:
        >>> fig = summary_figure(_example_comparison())
        >>> len(fig.axes), fig.axes[5].get_title()
        (6, 'cosine similarity to the original (no test)')
    """
    fig, axes = plots.new_figure(2, 3, figsize=(12, 7.2), layout="constrained")
    strides = sorted({s.stride for v in comp.variants for s in v.layers})
    series = []  # one line per variant, for the legend
    for k, (ax, (title, fn, log, significant)) in enumerate(zip(axes.flat, SUMMARY_PANELS)):
        periods: dict[int, list[tuple[int, str]]] = {}  # stride -> (detected period, colour) when not 2 px
        for i, v in enumerate(comp.variants):
            xs = [s.stride for s in v.layers]
            ys = [fn(v, s) for s in v.layers]
            ys = [math.nan if y is None or not math.isfinite(y) else y for y in ys]
            floored = [k == 2 and y < PREDICTED_FLOOR for y in ys]
            ys = [PREDICTED_FLOOR if f else y for y, f in zip(ys, floored)]
            (line,) = ax.plot(xs, ys, "-", lw=1.2, color=f"C{i}", label=v.name)
            series += [line] if k == 0 else []
            for x, y, s, f in zip(xs, ys, v.layers, floored):
                filled = significant is not None and significant(s)
                marker = "v" if f else "o" if significant is not None else "s"
                face = f"C{i}" if filled or significant is None else "white"
                ax.plot([x], [y], marker, ms=5, color=f"C{i}", mfc=face)
                line_of = plots.strongest_line(s.metrics) if k == 0 else None
                if line_of is not None and line_of[3] and line_of[0] != 2:  # a detected period other than 2 px
                    periods.setdefault(x, []).append((line_of[0], f"C{i}"))
        for x, found in periods.items():  # stacked at the top of the panel, in the variants' colours
            for row, (period, colour) in enumerate(found):
                ax.annotate(f"{period}", (x, 0.95 - 0.08 * row), xycoords=("data", "axes fraction"), ha="center",
                            va="top", color=colour, fontsize=plots.SMALL_TEXT_SIZE, fontweight="bold")
        if log:
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda y, _: f"{y:g}"))
        if log and k < 2:  # an excess of 1: no lines
            ax.axhline(1.0, color="k", ls="--", lw=0.8)
        if periods:  # room for the numbers above the data (a log axis: a factor)
            lo, hi = ax.get_ylim()
            ax.set_ylim(lo, hi * (hi / lo) ** 0.25)
        if log:
            ax.yaxis.set_major_locator(matplotlib.ticker.FixedLocator(plots.nice_log_ticks(*ax.get_ylim())))
            ax.yaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        if k == 2:
            ax.set_ylim(bottom=PREDICTED_FLOOR / 2)
            title += f"\n(no test; \u25bc: below {PREDICTED_FLOOR:g}, a zero of the kernel)"
        ax.set_xscale("log", base=2)
        ax.set_xticks(strides, [str(x) for x in strides])
        ax.minorticks_off()
        ax.set_title(title, fontsize=plots.TEXT_SIZE + 1)
        ax.set_xlabel("stage stride (pixels)", fontsize=plots.TEXT_SIZE)
        ax.tick_params(labelsize=plots.SMALL_TEXT_SIZE)
    grey = "0.35"
    markers = [Line2D([], [], color=grey, marker="o", ls="none", label="tested: significant at alpha"),
               Line2D([], [], color=grey, marker="o", ls="none", mfc="white", label="tested: not significant"),
               Line2D([], [], color=grey, marker="s", ls="none", label="no test")]
    fig.legend(handles=series + markers, loc="outside lower center", ncol=len(series) + len(markers),
               fontsize=plots.TEXT_SIZE, frameon=False)
    fig.suptitle(f"{comp.arch} ({comp.weights}); {len(comp.image_names)} images at {comp.size} px. Top left: the "
                 "strongest line is at period 2 px unless a number at the top of the panel gives its period (px)",
                 fontsize=plots.TEXT_SIZE + 2, wrap=True)
    return fig


def write_comparison(comp: Comparison, out: str | Path, stage_figures: list[str] | None = None,
                     dpi: int = FIGURE_DPI, inputs: Sequence = ()) -> list[str]:
    """Write comparison.json, report.html (the page to open), report.md, summary.png and stage-<layer>.png
    into ``out``, atomically.

    Args:
        comp: the comparison.
        out: the folder: new, empty or one gradviz wrote (see :func:`gradviz.io.outputs.check_out_dir`).
        stage_figures: the layers to draw a stage figure for (default: all).
        dpi: resolution of the PNGs.
        inputs: paths ``out`` may not be or contain.

    Returns:
        The file names written, in the order above.

    Example:
        >>> import json, tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     files = write_comparison(_example_comparison(), f"{tmp}/out", stage_figures=[])
        ...     data = json.loads(Path(tmp, "out", "comparison.json").read_text())
        >>> files, data["variants"][0]["stages"][0]["stride"]
        (['comparison.json', 'report.html', 'report.md', 'summary.png'], 4)
    """
    layers = [s.layer for s in comp.variants[0].layers]
    chosen = layers if stage_figures is None else [l for l in layers if l in stage_figures]
    with atomic_dir(out, inputs, command="compare") as tmp:
        figures = ["summary.png"]
        plots.save_figure(summary_figure(comp), tmp / "summary.png", dpi=dpi)
        for layer in chosen:
            name = stage_figure_name(layer)
            plots.save_figure(stage_figure(comp, layer), tmp / name, dpi=dpi)
            figures.append(name)
        write_json(tmp / "comparison.json", json_ready(comp.to_dict(), JSON_DIGITS))
        (tmp / "report.md").write_text(comparison_page(comp, figures))
        (tmp / "report.html").write_text(comparison_page_html(comp, figures))
    return ["comparison.json", "report.html", "report.md", *figures]


def _example_comparison() -> Comparison:
    """A one-variant, one-layer comparison of seeded noise, for the examples above."""
    g = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    stage = ComparedLayer("layer1", 4, 1.0, 1.0, checkerboard_metrics(g, 4))
    variant = VariantResult("stride", "as built", [stage], [], {"layer1": g[0]}, {"layer1": g[0].square().sum(0)})
    return Comparison("toy", "random", "noise", ["noise:0"], 64, 0, [variant])
