"""Report, the figures: the headline (line excess per layer and octave against chance and the detection
threshold; energy shares), the spectra, the gradients with a crop pixel for pixel, the energy tiles and
the radial profiles of a report's layers, each a :class:`matplotlib.figure.Figure` made without pyplot
(:func:`gradviz.io.plotting.new_figure`). Layers wrap onto a new row after ``MAX_COLUMNS``, so the text
stays readable when a page shows the figure at about 1250 px wide.

Each function takes the report's layers (:class:`~gradviz.report.result.LayerResult`, read by field) or
their metrics, computes nothing but what it draws, and returns the figure.
"""

from __future__ import annotations

import math

import matplotlib.ticker
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from gradviz.io import plotting as plots
from gradviz.spectrum import radial_profile

__all__ = ["MAX_COLUMNS", "crop_period", "gradients_figure", "headline_figure", "log_ticks", "plot_octave_excess",
           "plot_octave_shares", "radial_figure", "spectra_figure", "tiles_figure"]

# Layers per row of the spectra, gradients and tiles figures: four panels of PANEL_WIDTH inches and a
# colourbar make a figure about 12 inches wide, whose 8-pt text is still about 11 px high at 1250 px.
MAX_COLUMNS, PANEL_WIDTH = 4, 2.6
# Width (in layer spacings) the octaves of one layer spread over in the per-octave panels.
OCTAVE_SPREAD = 0.72
# Room (factor) between the data and the edges of a log axis.
LOG_PAD = 1.08
# A top value further than this factor above the highest tick gets a tick of its own near it, the largest
# of FINE_MANTISSAS x 10**k below it: at most NEAR_TICK (their largest step) below it.
TICK_GAP = 1.15
FINE_MANTISSAS, NEAR_TICK = (1, 1.2, 1.5, 2, 2.5, 3, 3.5, 4, 5, 6, 7, 8, 9), 1.25


def _layer_grid(n: int, rows_per_layer: int, panel_height: float) -> tuple[Figure, list, list[list]]:
    """A figure with ``rows_per_layer`` panels per layer, at most ``MAX_COLUMNS`` layers a row.

    Returns:
        ``(figure, the layers' axes in one list, per layer the list of its axes top to bottom)``; the
        grid's spare cells are removed.
    """
    cols = max(min(n, MAX_COLUMNS), 1)
    groups = math.ceil(n / cols)
    fig, axes = plots.new_figure(groups * rows_per_layer, cols, squeeze=False, layout="constrained",
                                 figsize=(PANEL_WIDTH * cols + 1.6, panel_height * rows_per_layer * groups + 0.7))
    per_layer = [[axes[(i // cols) * rows_per_layer + r, i % cols] for r in range(rows_per_layer)] for i in range(n)]
    for i in range(n, groups * cols):
        for r in range(rows_per_layer):
            axes[(i // cols) * rows_per_layer + r, i % cols].remove()
    return fig, [ax for layer in per_layer for ax in layer], per_layer


def spectra_figure(names: list[str], layers: list, who: str) -> Figure:
    """Top row per layer: the spectrum the line test reads (``periodic_power``: the mean over images of the
    periodic components' spectra, boundary cross removed), or the mean of the images' spectra when a layer
    does not keep it; bottom: the spectrum of the mean gradient. One colour scale, lattice k/S marked.

    Args:
        names: a title per layer.
        layers: the report's layers (``periodic_power``, ``incoherent_power``, ``coherent_power``, ``stride``).
        who: the model and weights, for the title.
    """
    periodic = all(layer.periodic_power is not None for layer in layers)
    tops = [layer.incoherent_power if layer.periodic_power is None else layer.periodic_power for layer in layers]
    limits = plots.log_power_limits([*tops, *(layer.coherent_power for layer in layers)])
    fig, axes, per_layer = _layer_grid(len(layers), 2, 2.55)
    top_label = ("periodic part: mean over images\n(what the line test reads)" if periodic
                 else "mean of the images' spectra")
    for i, (layer, (top, bottom)) in enumerate(zip(layers, per_layer)):
        image = plots.plot_log_spectrum(top, tops[i], names[i], layer.stride, limits)
        plots.plot_log_spectrum(bottom, layer.coherent_power, "", layer.stride, limits)
        top.tick_params(labelbottom=False)
        bottom.set_xlabel("fx (cycles/px)", fontsize=plots.SMALL_TEXT_SIZE)
        if i % MAX_COLUMNS:
            top.tick_params(labelleft=False)
            bottom.tick_params(labelleft=False)
        else:
            top.set_ylabel(f"{top_label}\nfy (cycles/px)", fontsize=plots.SMALL_TEXT_SIZE)
            bottom.set_ylabel("spectrum of the mean gradient\nfy (cycles/px)", fontsize=plots.SMALL_TEXT_SIZE)
    plots.add_colourbar(fig, image, axes, "log10(bin power / total power of its spectrum)")
    what = ("top: the images' periodic components (boundary cross removed), as the line test reads them"
            if periodic else "top: the mean of the images' spectra")
    fig.suptitle(f"{who}: power spectra of the input gradients; {what}; bottom: the spectrum of the mean "
                 "gradient. Cyan marks: the lattice k/S", fontsize=plots.TEXT_SIZE + 1, wrap=True)
    return fig


def crop_period(layer) -> int:
    """The period a layer's crop looks for: its strongest line's (:func:`gradviz.io.plotting.strongest_line`:
    the detected one with the largest excess, else the one with the smallest p), else its stride."""
    line = plots.strongest_line(layer.metrics)
    return layer.stride if line is None else line[0]


def gradients_figure(names: list[str], layers: list, who: str) -> Figure:
    """Per layer: the first image's gradient (channel sum) with a box, and the box pixel for pixel: the
    ``CROP_SIZE`` window where the lattice of :func:`crop_period` is strongest
    (:func:`gradviz.io.plotting.crop_origin`), on its own robust colour scale.

    Args:
        names: a title per layer.
        layers: the report's layers (``example_gradient``, ``stride``).
        who: the model and weights, for the title.
    """
    fig, axes, per_layer = _layer_grid(len(layers), 2, 2.45)
    size = plots.CROP_SIZE
    for i, (layer, (whole, zoomed)) in enumerate(zip(layers, per_layer)):
        y, x = plots.crop_origin(layer.example_gradient, crop_period(layer))
        image = plots.plot_gradient_map(whole, layer.example_gradient, names[i], crop=(y, x, size))
        plots.plot_gradient_map(zoomed, layer.example_gradient, f"crop at y={y}, x={x}", crop=(y, x, size), zoom=True)
    plots.add_colourbar(fig, image, axes, f"maps: g / {plots.GRADIENT_PERCENTILE:g}th percentile of |g| in the "
                        f"map; crops: g / {plots.CROP_PERCENTILE:g}th percentile of |g| in the crop")
    fig.suptitle(f"{who}: input gradient of the first image (channel sum). Below each: the boxed {size}x{size} px "
                 "crop where the layer's strongest line (its period's lattice) stands highest above its neighbours "
                 "in the crop's spectrum, one square per pixel", fontsize=plots.TEXT_SIZE + 1, wrap=True)
    return fig


def tiles_figure(names: list[str], layers: list, who: str) -> Figure:
    """The pooled energy tile of each layer on one colour scale, titled with the shared tile cv and its p.

    Args:
        names: a title per layer.
        layers: the report's layers (``metrics``).
        who: the model and weights, for the title.
    """
    limits = plots.tile_limits([layer.metrics.tile for layer in layers])
    fig, axes, per_layer = _layer_grid(len(layers), 1, 2.5)
    for name, layer, (ax,) in zip(names, layers, per_layer):
        m = layer.metrics
        tested = m.tile_p_value == m.tile_p_value  # NaN when not tested (why: tile_note in report.json)
        shared = f"shared cv {m.shared_tile_cv:.2g} (p {m.tile_p_value:.2g})" if tested else "tile not tested"
        image = plots.plot_tile(ax, m.tile, f"{name}\n{shared}", limits)
    plots.add_colourbar(fig, image, axes, "energy / mean (log scale)")
    fig.suptitle(f"{who}: pooled energy tile (energy at each phase y mod S, x mod S); shared cv and its p "
                 "from the interior", fontsize=plots.TEXT_SIZE + 1, wrap=True)
    return fig


def radial_figure(names: list[str], layers: list, who: str) -> Figure:
    """The radial profile of each layer's mean spectrum (``incoherent_power``), log power: a shape only."""
    fig, ax = plots.new_figure(figsize=(6, 3.6), layout="constrained")
    for name, layer in zip(names, layers):
        r, p = radial_profile(layer.incoherent_power)
        ax.semilogy(r.numpy(), p.numpy(), label=name, lw=1.2)
    ax.set_xlabel("radius (cycles / pixel)", fontsize=plots.TEXT_SIZE)
    ax.set_ylabel("mean power", fontsize=plots.TEXT_SIZE)
    ax.tick_params(labelsize=plots.SMALL_TEXT_SIZE)
    ax.legend(fontsize=plots.SMALL_TEXT_SIZE, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_title(f"{who}: radial profiles (shape only: ring averages dilute lattice lines)",
                 fontsize=plots.TEXT_SIZE, wrap=True)
    return fig


def _octave_offsets(n: int) -> list[float]:
    return [(j - (n - 1) / 2) * OCTAVE_SPREAD / max(n, 1) for j in range(n)]


def _at(values, j: int) -> float:
    """``values[j]``, NaN when missing or not finite."""
    v = values[j] if j < len(values) and values[j] is not None else math.nan
    return v if math.isfinite(v) else math.nan


def log_ticks(lo: float, hi: float) -> list[float]:
    """:func:`gradviz.io.plotting.nice_log_ticks` for an axis from ``lo`` to ``hi`` (the data with
    ``LOG_PAD`` of room), and one more near the top when the top value would float far above the last.

    Example:
        >>> log_ticks(0.7 / 1.08, 2.59 * 1.08)
        [0.7, 1.0, 1.5, 2.0, 2.5]
    """
    ticks = plots.nice_log_ticks(lo, hi)
    top = hi / LOG_PAD
    if not ticks or top > ticks[-1] * TICK_GAP:
        decade = 10.0 ** math.floor(math.log10(top))
        near = max(round(m * decade, 12) for m in FINE_MANTISSAS if m * decade <= top * 1.0001)
        ticks += [near] if not ticks or near > ticks[-1] else []
    return ticks


def _log_axis(ax, values, with_one: bool = True) -> None:
    """Log y axis over ``values`` (and 1 when ``with_one``), with :func:`log_ticks`."""
    v = np.array([x for x in values if math.isfinite(x) and x > 0] + ([1.0] if with_one else []) or [1.0])
    lo, hi = v.min() / LOG_PAD, v.max() * LOG_PAD
    ax.set_yscale("log")
    ax.set_ylim(lo, hi)
    ax.yaxis.set_major_locator(matplotlib.ticker.FixedLocator(log_ticks(lo, hi)))
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda y, _: f"{y:g}"))
    ax.yaxis.set_minor_locator(matplotlib.ticker.NullLocator())


def _layer_axis(ax, labels: list[str], ylabel: str, title: str, handles: list) -> None:
    """x: one layer per label; the y label, a title on the left, a legend of ``handles`` (if any) outside right."""
    ax.set_xticks(np.arange(len(labels)), labels, fontsize=plots.SMALL_TEXT_SIZE)
    ax.set_xlim(-0.6, len(labels) - 0.4)
    ax.set_ylabel(ylabel, fontsize=plots.TEXT_SIZE)
    ax.tick_params(axis="y", labelsize=plots.SMALL_TEXT_SIZE)
    if handles:
        ax.legend(handles=handles, fontsize=plots.SMALL_TEXT_SIZE, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                  frameon=False)
    ax.set_title(title, fontsize=plots.TEXT_SIZE + 1, loc="left")


def _short_verdict(m) -> tuple[str, str]:
    """``(text, colour)`` of a layer's verdict for a tick label: not detected is not proof of no grid."""
    if m.zero_gradient or m.n_null == 0 or not math.isfinite(m.p_value):
        return "not tested", "0.4"
    return (f"GRID (p {m.p_value:.2g})", "firebrick") if m.grid_detected else (f"not detected (p {m.p_value:.2g})", "k")


def plot_octave_excess(ax, labels: list[str], metrics: list) -> None:
    """Line excess per layer (x) and octave (a colour per period 2, 4, 8, ... px), log y: the excess (filled where
    the octave's Holm-adjusted p < alpha), the 5-95% band of chance (translated copies of the bins) as a pale bar,
    the detection threshold as a dash (none where it is inf), a layer's verdict in its tick label. A layer whose
    S is not a power of two has no octaves: its lattice excess is a black diamond, one style whatever the
    verdict (it has no test of its own). The series' line (label ``period 2 px``, ...) holds the excess values."""
    x = np.arange(len(labels), dtype=float)
    n_oct = max((len(m.octave_excess) for m in metrics), default=0)
    shown = []
    for j, dx in enumerate(_octave_offsets(n_oct)):
        c, xs = plots.octave_colour(j), x + dx
        ys = np.array([_at(m.octave_excess, j) for m in metrics])
        band = [m.octave_null_band[j] if j < len(m.octave_null_band) else (math.nan, math.nan) for m in metrics]
        lo, hi = np.array([_at(b, 0) for b in band]), np.array([_at(b, 1) for b in band])
        thr = np.array([_at(m.octave_threshold, j) for m in metrics])
        det = np.array([_at(m.octave_p_adjusted, j) < m.alpha for m in metrics])
        ok = np.isfinite(lo) & np.isfinite(hi)
        ax.vlines(xs[ok], lo[ok], hi[ok], color=c, alpha=0.28, lw=7)
        ax.plot(xs, thr, ls="none", marker="_", ms=11, mew=2, color=c)
        ax.plot(xs, ys, "-", color=c, lw=1, alpha=0.6, label=f"period {2 ** (j + 1)} px")
        ax.plot(xs[det], ys[det], "o", ls="none", ms=7, color=c)
        hollow = ~det & np.isfinite(ys)
        ax.plot(xs[hollow], ys[hollow], "o", ls="none", ms=7, mfc="white", mec=c, mew=1.5)
        shown += [*ys, *lo, *hi, *thr]
    other = [(xi, m.lattice_excess) for xi, m in zip(x, metrics)
             if not m.octave_excess and math.isfinite(m.lattice_excess)]
    if other:
        ax.plot(*zip(*other), "D", ls="none", ms=7, color="k", mfc="0.6")
        shown += [y for _, y in other]
    ax.axhline(1.0, color="k", ls="--", lw=0.8)
    _log_axis(ax, shown)
    verdicts = [_short_verdict(m) for m in metrics]
    grey, alpha = "0.35", metrics[0].alpha if metrics else 0.05
    handles = [Line2D([], [], color=plots.octave_colour(j), marker="o", lw=1, label=f"period {2 ** (j + 1)} px")
               for j in range(n_oct)]
    handles += [Line2D([], [], color=grey, marker="o", ls="none", ms=7, label=f"detected (Holm p < {alpha:g})"),
                Line2D([], [], color=grey, marker="o", ls="none", ms=7, mfc="white", mew=1.5, label="not detected"),
                Line2D([], [], color=grey, alpha=0.28, lw=7, label="chance (5-95%)"),
                Line2D([], [], color=grey, marker="_", ls="none", ms=11, mew=2, label="detection threshold")]
    handles += [Line2D([], [], color="k", marker="D", mfc="0.6", ls="none",
                       label="all lattice periods\n(no test of its own)")] if other else []
    _layer_axis(ax, [f"{label}\n{text}" for label, (text, _) in zip(labels, verdicts)], "line excess (1 = no grid)",
                "Is there a grid? Line excess per octave: power on the lattice over its local background", handles)
    for tick, (_, colour) in zip(ax.get_xticklabels(), verdicts):
        tick.set_color(colour)


def plot_octave_shares(ax, labels: list[str], metrics: list) -> None:
    """Share of the gradient's non-DC energy at each octave's lattice bins, per layer; log y. A description,
    not a test: whether a line stands out is the excess panel's question (on a sloped spectrum a detected
    period-2 line can hold less energy than a flat spectrum would put there)."""
    x = np.arange(len(labels), dtype=float)
    n_oct = max((len(m.octave_fractions) for m in metrics), default=0)
    shown = []
    for j, dx in enumerate(_octave_offsets(n_oct)):
        ys = [_at(m.octave_fractions, j) for m in metrics]
        ys = [y if y > 0 else math.nan for y in ys]
        ax.plot(x + dx, ys, "o-", color=plots.octave_colour(j), ms=6, lw=1, label=f"period {2 ** (j + 1)} px")
        shown += ys
    _log_axis(ax, shown, with_one=False)
    _layer_axis(ax, labels, "share of energy", "Share of the gradient's energy on each octave: a description, "
                "not a test", [])


def headline_figure(labels: list[str], metrics: list, title: str) -> Figure:
    """The headline: :func:`plot_octave_excess` above :func:`plot_octave_shares`, one column per layer.

    Args:
        labels: one x label per layer (name and S), shallowest first.
        metrics: the layers' :class:`~gradviz.spectrum.CheckerboardMetrics`, in the same order.
        title: the figure's title (model, weights, images).

    Returns:
        The figure; its first axes is the excess panel, its second the shares panel.
    """
    fig, (top, bottom) = plots.new_figure(2, 1, figsize=(max(7.0, 1.3 * len(labels) + 3.0), 7.6),
                                          layout="constrained", height_ratios=(3, 2))
    plot_octave_excess(top, labels, metrics)
    plot_octave_shares(bottom, labels, metrics)
    fig.suptitle(title, fontsize=plots.TEXT_SIZE + 2, wrap=True)
    return fig
