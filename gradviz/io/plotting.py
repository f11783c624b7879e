"""The figure style every rendering module shares: new figures, atomic PNG saving, and the panels
several studies draw (log spectra, gradient maps and pixel-for-pixel crops, energy tiles, line excess
and energy share per octave). Panels compared side by side take colour ``limits`` computed over all of
them (:func:`log_power_limits`, :func:`tile_limits`), so a figure has one scale and one colourbar
(:func:`add_colourbar`).

Figures are :class:`matplotlib.figure.Figure` objects made without pyplot, so drawing never selects a
backend or touches pyplot's global figure list (show one with ``display(fig)``, save it with
:func:`save_figure`). This module and the studies' ``render`` modules are the only ones importing matplotlib.
"""

from __future__ import annotations

import math
import os

import matplotlib
import matplotlib.colors
import matplotlib.patches
import matplotlib.ticker
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from gradviz.io.manifest import software_mark
from gradviz.io.outputs import atomic_file

# Resolution of saved figures: at 120 dpi the 8-pt tick labels are 13 px high.
FIGURE_DPI = 120
# Text sizes in points: panel titles and labels, tick labels and legends (nothing smaller is drawn).
TEXT_SIZE = 9
SMALL_TEXT_SIZE = 8
# Share (%) of bins under the bottom of a log-power colour scale, and its most decades below the top: the
# deepest holes (a blur kernel's zeros, 1e-15) would otherwise stretch the scale over decades no line uses.
LOG_POWER_LOW_PERCENTILE, LOG_POWER_DECADES = 1.0, 6.0
# Colour limit of gradient maps: this percentile of |g| (the rarest, brightest pixels saturate).
GRADIENT_PERCENTILE = 99.5
# Side (px) of the gradient crop shown pixel for pixel: 16 periods of a period-2 pattern.
CROP_SIZE = 32
# Tiles up to this side print their values in the cells (beyond, the numbers do not fit).
TILE_NUMBERS_MAX = 4
# Colour range of energy tiles: at least 1/1.02 .. 1.02 (flat tiles stay pale), at most 1/100 .. 100.
TILE_MIN_RATIO, TILE_MAX_RATIO = 1.02, 100.0
# Frequency labels of spectra (cycles per pixel), as short fractions.
FREQUENCY_LABELS = {-0.5: "\u2212\u00bd", -0.25: "\u2212\u00bc", 0.0: "0", 0.25: "\u00bc", 0.5: "\u00bd"}
# Colour of the marks at the lattice frequencies k/S on spectra.
LATTICE_COLOUR = "tab:cyan"
# Width (in layer spacings) the octaves of one layer spread over in the per-octave panels.
OCTAVE_SPREAD = 0.72

__all__ = ["CROP_SIZE", "FIGURE_DPI", "GRADIENT_PERCENTILE", "SMALL_TEXT_SIZE", "TEXT_SIZE", "add_colourbar",
           "crop_origin", "headline_figure", "log_power", "log_power_limits", "new_figure", "nice_log_ticks",
           "octave_colour", "plot_gradient_map", "plot_image", "plot_log_spectrum", "plot_octave_excess",
           "plot_octave_shares", "plot_tile", "png_metadata", "save_figure", "tile_limits"]


def _np(t) -> np.ndarray:
    return t.detach().double().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t, dtype=float)


def _finish(ax, title: str, bare: bool = False) -> None:
    """The panel title; readable tick labels, or no ticks at all (``bare``)."""
    ax.set_title(title, fontsize=TEXT_SIZE)
    ax.tick_params(labelsize=SMALL_TEXT_SIZE)
    if bare:
        ax.set(xticks=[], yticks=[])


def new_figure(nrows: int = 1, ncols: int = 1, **kwargs):
    """``(figure, axes)`` like ``pyplot.subplots``, without pyplot (see the module docstring).

    ``kwargs`` go to :meth:`Figure.subplots` (``squeeze``, ``sharex``, ...) except ``figsize`` and
    ``layout`` (``"constrained"`` makes room for colourbars and titles), which go to the figure.

    Example:
        >>> fig, axes = new_figure(1, 2, figsize=(4, 2))
        >>> len(axes), fig.get_size_inches().tolist()
        (2, [4.0, 2.0])
    """
    fig = Figure(figsize=kwargs.pop("figsize", None), layout=kwargs.pop("layout", None))
    return fig, fig.subplots(nrows, ncols, **kwargs)


def png_metadata() -> dict[str, str]:
    """PNG text chunks of every figure gradviz writes: its mark (see :func:`gradviz.io.outputs.is_gradviz_file`)."""
    return {"Software": software_mark()}


def save_figure(fig, path: str | os.PathLike, dpi: int = FIGURE_DPI, guard: bool = False) -> None:
    """Save ``fig`` as PNG atomically, marked as gradviz's (``guard``: see :func:`gradviz.io.outputs.atomic_file`)."""
    with atomic_file(path, guard=guard) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png", metadata=png_metadata())


def add_colourbar(fig, image, axes, label: str, **kwargs):
    """One colourbar for ``image``'s colour scale beside ``axes`` (a list or array of axes), labelled; a log
    scale gets plain-number ticks (:func:`nice_log_ticks`). ``kwargs`` go to ``Figure.colorbar`` (``location``)."""
    bar = fig.colorbar(image, ax=np.ravel(axes).tolist(), **{"shrink": 0.9, "pad": 0.02, **kwargs})
    bar.set_label(label, fontsize=TEXT_SIZE)
    if isinstance(image.norm, matplotlib.colors.LogNorm):
        bar.set_ticks(nice_log_ticks(image.norm.vmin, image.norm.vmax), labels=None)
        bar.ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        bar.ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        bar.minorticks_off()
    bar.ax.tick_params(labelsize=SMALL_TEXT_SIZE)
    return bar


def log_power(power) -> np.ndarray:
    """``log10`` of each bin's share of the spectrum's total power, DC at the centre (shown as NaN: the
    channel means are removed); for an even side the Nyquist row and column are repeated at +1/2 so that
    both axes run from -1/2 to 1/2 cycle per pixel.

    Example:
        >>> p = torch.ones(4, 4)
        >>> lp = log_power(p)
        >>> lp.shape, float(lp[0, 0]), bool(np.isnan(lp[2, 2]))
        ((5, 5), -1.2041199826559248, True)
    """
    p = _np(power)
    h, w = p.shape
    total = p.sum()
    p = np.fft.fftshift(p / total if total > 0 else p)
    p[h // 2, w // 2] = np.nan
    if h % 2 == 0:
        p = np.concatenate([p, p[:1]], 0)
    if w % 2 == 0:
        p = np.concatenate([p, p[:, :1]], 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log10(p)


def log_power_limits(powers) -> tuple[float, float]:
    """One colour range ``(vmin, vmax)`` of :func:`log_power` for all of ``powers``: the top is the largest
    non-DC bin, the bottom the ``LOG_POWER_LOW_PERCENTILE``-th percentile of the bins (at most
    ``LOG_POWER_DECADES`` lower)."""
    values = np.concatenate([v[np.isfinite(v)] for v in (log_power(p).ravel() for p in powers)] or [np.zeros(0)])
    if values.size == 0:
        return -1.0, 0.0
    hi = float(values.max())
    lo = max(float(np.percentile(values, LOG_POWER_LOW_PERCENTILE)), hi - LOG_POWER_DECADES)
    return (lo, hi) if hi > lo else (lo - 1.0, lo)


def _frequency_ticks(ax, stride: int | None, h: int, w: int) -> None:
    """Labels at -1/2, -1/4, 0, 1/4, 1/2 cycle/px; the lattice frequencies k/S as coloured marks on all sides."""
    for axis, n in ((ax.xaxis, w), (ax.yaxis, h)):
        half = (n // 2) / n
        axis.set_major_locator(matplotlib.ticker.FixedLocator([t for t in FREQUENCY_LABELS if abs(t) <= half]))
        axis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: FREQUENCY_LABELS.get(v, f"{v:g}")))
        if stride and stride > 1:
            axis.remove_overlapping_locs = False  # keep the lattice marks where a label is too
            axis.set_minor_locator(matplotlib.ticker.FixedLocator(
                [k / stride for k in range(-stride, stride + 1) if abs(k / stride) <= half]))
    ax.tick_params(which="major", length=0, labelsize=SMALL_TEXT_SIZE, pad=6)  # labels clear of the marks
    ax.tick_params(which="minor", length=4, width=1.2, color=LATTICE_COLOUR, top=True, right=True, direction="out")


def plot_log_spectrum(ax, power, title: str = "", stride: int | None = None, limits: tuple[float, float] | None = None):
    """A power spectrum (H, W; DC at index 0, 0) as :func:`log_power`, axes in cycles per pixel, the lattice
    frequencies k/S of ``stride`` marked on the frame; ``limits``: the colour range (:func:`log_power_limits`
    over every panel of the figure; this spectrum's own by default). Returns the image artist.
    """
    h, w = _np(power).shape
    vmin, vmax = limits or log_power_limits([power])
    fy, fx = (h // 2) / h, (w // 2) / w
    cmap = matplotlib.colormaps["magma"].with_extremes(bad="0.6")
    image = ax.imshow(log_power(power), cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest",
                      extent=(-fx - 0.5 / w, fx + 0.5 / w, fy + 0.5 / h, -fy - 0.5 / h))
    _frequency_ticks(ax, stride, h, w)
    _finish(ax, title)
    return image


def _channel_sum(grad) -> np.ndarray:
    g = _np(grad)
    return g.sum(0) if g.ndim == 3 else g


def crop_origin(grad, size: int = CROP_SIZE) -> tuple[int, int]:
    """``(y, x)`` of the ``size`` x ``size`` window (origins on a half-window grid) holding the most energy
    of the gradient's channel sum; the first such window when several tie.

    Example:
        >>> g = torch.zeros(64, 64); g[40:44, 50:54] = 1
        >>> crop_origin(g)
        (16, 32)
    """
    e = _channel_sum(grad) ** 2
    (h, w), step = e.shape, max(size // 2, 1)
    starts = [sorted({*range(0, n - min(size, n) + 1, step), n - min(size, n)}) for n in (h, w)]
    _, y, x = max((e[y:y + size, x:x + size].sum(), -y, -x) for y in starts[0] for x in starts[1])
    return -y, -x


def plot_gradient_map(ax, grad, title: str = "", crop: tuple[int, int, int] | None = None, zoom: bool = False):
    """A signed gradient, (3, H, W) shown as the channel sum or (H, W), divided by its ``GRADIENT_PERCENTILE``-th
    percentile of ``|g|`` (colour range -1..1, the same for every map). ``crop`` ``(y, x, size)``: its box is
    drawn, or with ``zoom`` only the crop is shown, pixel for pixel (one square per pixel, nearest-neighbour).

    Returns:
        The image artist (for :func:`add_colourbar`); with ``zoom`` its array is the crop itself.
    """
    g = _channel_sum(grad)
    scale = float(np.percentile(np.abs(g), GRADIENT_PERCENTILE)) or 1.0
    y, x, size = crop or (0, 0, max(g.shape))
    shown = g[y:y + size, x:x + size] if zoom else g
    image = ax.imshow(shown / scale, cmap="RdBu_r", vmin=-1.0, vmax=1.0, interpolation="nearest")
    if crop and not zoom:
        ax.add_patch(matplotlib.patches.Rectangle((x - 0.5, y - 0.5), size, size, fill=False, ec="k", lw=1.2))
    _finish(ax, title, bare=True)
    return image


def tile_limits(tiles) -> tuple[float, float]:
    """One colour range ``(1/r, r)`` for energy tiles (mean 1) on a log scale: ``r`` the largest ratio of a
    cell to the mean, or its inverse, over all ``tiles`` (kept within ``TILE_MIN_RATIO`` .. ``TILE_MAX_RATIO``).

    Example:
        >>> tile_limits([[[0.5, 1.5], [1.0, 1.0]], [[1.0, 1.0], [1.0, 1.0]]])
        (0.5, 2.0)
    """
    values = np.concatenate([_np(t).ravel() for t in tiles] or [np.ones(1)])
    values = values[np.isfinite(values) & (values > 0)]
    r = float(np.exp(np.abs(np.log(values)).max())) if values.size else TILE_MIN_RATIO
    r = min(max(r, TILE_MIN_RATIO), TILE_MAX_RATIO)
    return 1 / r, r


def plot_tile(ax, tile, title: str = "", limits: tuple[float, float] | None = None):
    """The S x S energy tile (mean 1) on a log colour scale centred at 1 (blue: below the mean, red: above);
    values printed in the cells when S <= ``TILE_NUMBERS_MAX``. ``limits``: :func:`tile_limits` over every tile.

    Returns the image artist (for :func:`add_colourbar`).
    """
    t = _np(tile)
    lo, hi = limits or tile_limits([t])
    image = ax.imshow(np.clip(t, lo, hi), cmap="RdBu_r", norm=matplotlib.colors.LogNorm(lo, hi),
                      interpolation="nearest")
    if t.shape[0] <= TILE_NUMBERS_MAX:
        for (i, j), v in np.ndenumerate(t):
            strong = v > 0 and abs(math.log(v)) > 0.6 * math.log(hi)  # dark cell: white text
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=SMALL_TEXT_SIZE, color="w" if strong else "k")
    _finish(ax, title, bare=True)
    return image


def plot_image(ax, image, title: str = "") -> None:
    """An image (3, H, W) in [0, 1]."""
    ax.imshow(np.clip(_np(image).transpose(1, 2, 0), 0, 1), interpolation="nearest")
    _finish(ax, title, bare=True)


def octave_colour(j: int) -> str:
    """The colour of octave ``j`` (0-based: period ``2**(j+1)`` px) in every per-octave panel."""
    return f"C{j % 10}"


def _octave_offsets(n: int) -> list[float]:
    return [(j - (n - 1) / 2) * OCTAVE_SPREAD / max(n, 1) for j in range(n)]


def _at(values, j: int) -> float:
    """``values[j]``, NaN when missing or not finite."""
    v = values[j] if j < len(values) and values[j] is not None else math.nan
    return v if math.isfinite(v) else math.nan


def nice_log_ticks(lo: float, hi: float) -> list[float]:
    """Plain-number ticks for a log axis from ``lo`` to ``hi``: 1, 2, 5, 10, ... over a wide range, denser
    (1.1, 1.2, 1.5, ...) over a narrow one; 1 is always among them when in range.

    Example:
        >>> nice_log_ticks(0.6, 107), nice_log_ticks(0.9, 1.4)
        ([1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0], [0.9, 1.0, 1.1, 1.2, 1.3, 1.4])
    """
    decades = math.log10(hi / lo)
    mantissas = ((1, 2, 5) if decades > 1.2 else (1, 1.5, 2, 3, 5, 7) if decades > 0.5 else
                 (1, 1.1, 1.2, 1.3, 1.4, 1.5, 1.7, 2, 2.5, 3, 4, 5, 6, 7, 8, 9))
    decade_range = range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1)
    ticks = sorted({round(m * 10.0 ** k, 12) for k in decade_range for m in mantissas})
    ticks = [t for t in ticks if lo <= t <= hi]
    while len(ticks) > 9:  # thin out, keeping 1
        keep = ticks.index(1.0) % 2 if 1.0 in ticks else 0
        ticks = ticks[keep::2]
    return ticks


def _log_ticks(ax, values) -> None:
    """Log y axis over ``values`` and 1, with :func:`nice_log_ticks`."""
    v = np.array([x for x in values if math.isfinite(x) and x > 0] + [1.0])
    lo, hi = v.min() / 1.08, v.max() * 1.08
    ax.set_yscale("log")
    ax.set_ylim(lo, hi)
    ax.yaxis.set_major_locator(matplotlib.ticker.FixedLocator(nice_log_ticks(lo, hi)))
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda y, _: f"{y:g}"))
    ax.yaxis.set_minor_locator(matplotlib.ticker.NullLocator())


def _layer_axis(ax, labels: list[str], ylabel: str, title: str, handles: list) -> None:
    """x: one layer per label; the y label, a title on the left, a legend of ``handles`` outside on the right."""
    ax.set_xticks(np.arange(len(labels)), labels, fontsize=SMALL_TEXT_SIZE)
    ax.set_xlim(-0.6, len(labels) - 0.4)
    ax.set_ylabel(ylabel, fontsize=TEXT_SIZE)
    ax.tick_params(axis="y", labelsize=SMALL_TEXT_SIZE)
    ax.legend(handles=handles, fontsize=SMALL_TEXT_SIZE, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_title(title, fontsize=TEXT_SIZE + 1, loc="left")


def _short_verdict(m) -> tuple[str, str]:
    """``(text, colour)`` of a layer's verdict for a tick label."""
    if m.zero_gradient or m.n_null == 0 or not math.isfinite(m.p_value):
        return "not tested", "0.4"
    return (f"GRID (p {m.p_value:.2g})", "firebrick") if m.grid_detected else (f"no grid (p {m.p_value:.2g})", "k")


def plot_octave_excess(ax, labels: list[str], metrics: list) -> None:
    """Line excess per layer (x) and octave (a colour per period 2, 4, 8, ... px), log y: the excess (filled where
    the octave's Holm-adjusted p < alpha), the 5-95% band of chance (translated copies of the bins) as a pale bar,
    the detection threshold as a dash (none where it is inf), a layer's verdict in its tick label. A layer whose
    S is not a power of two has no octaves: its lattice excess is a black diamond. The series' line (label
    ``period 2 px``, ...) holds the excess values."""
    x = np.arange(len(labels), dtype=float)
    n_oct = max((len(m.octave_excess) for m in metrics), default=0)
    shown = []
    for j, dx in enumerate(_octave_offsets(n_oct)):
        c, xs = octave_colour(j), x + dx
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
    other = [(xi, m) for xi, m in zip(x, metrics) if not m.octave_excess and math.isfinite(m.lattice_excess)]
    for xi, m in other:
        ax.plot([xi], [m.lattice_excess], "D", ms=7, color="k", mfc="k" if m.grid_detected else "white")
        shown.append(m.lattice_excess)
    ax.axhline(1.0, color="k", ls="--", lw=0.8)
    _log_ticks(ax, shown)
    verdicts = [_short_verdict(m) for m in metrics]
    grey, alpha = "0.35", metrics[0].alpha if metrics else 0.05
    handles = [Line2D([], [], color=octave_colour(j), marker="o", lw=1, label=f"period {2 ** (j + 1)} px")
               for j in range(n_oct)]
    handles += [Line2D([], [], color=grey, marker="o", ls="none", ms=7, label=f"detected (Holm p < {alpha:g})"),
                Line2D([], [], color=grey, marker="o", ls="none", ms=7, mfc="white", mew=1.5, label="not detected"),
                Line2D([], [], color=grey, alpha=0.28, lw=7, label="chance (5-95%)"),
                Line2D([], [], color=grey, marker="_", ls="none", ms=11, mew=2, label="detection threshold")]
    handles += [Line2D([], [], color="k", marker="D", ls="none", label="all lattice periods")] if other else []
    _layer_axis(ax, [f"{label}\n{text}" for label, (text, _) in zip(labels, verdicts)], "line excess (1 = no grid)",
                "Is there a grid? Line excess per octave: power on the lattice over its local background", handles)
    for tick, (_, colour) in zip(ax.get_xticklabels(), verdicts):
        tick.set_color(colour)


def plot_octave_shares(ax, labels: list[str], metrics: list) -> None:
    """Share of the gradient's non-DC energy at each octave's lattice bins (dots) beside the share a white
    spectrum would put there (black dashes), per layer; log y. A description: real spectra are sloped."""
    x = np.arange(len(labels), dtype=float)
    n_oct = max((len(m.octave_fractions) for m in metrics), default=0)
    for j, dx in enumerate(_octave_offsets(n_oct)):
        ys = [_at(m.octave_fractions, j) for m in metrics]
        ax.plot(x + dx, [y if y > 0 else math.nan for y in ys], "o-", color=octave_colour(j), ms=6, lw=1,
                label=f"period {2 ** (j + 1)} px")
        ax.plot(x + dx, [_at(m.octave_null_fractions, j) for m in metrics], ls="none", marker="_", ms=11, mew=2,
                color="k")
    ax.set_yscale("log")
    _layer_axis(ax, labels, "share of energy", "How much of the gradient is on the lattice? Energy share per octave "
                "(a description, not a test)",
                [Line2D([], [], color="k", marker="_", ls="none", ms=11, mew=2, label="white spectrum's share")])


def headline_figure(labels: list[str], metrics: list, title: str) -> Figure:
    """The headline: :func:`plot_octave_excess` above :func:`plot_octave_shares`, one column per layer.

    Args:
        labels: one x label per layer (name and S), shallowest first.
        metrics: the layers' :class:`~gradviz.spectrum.CheckerboardMetrics`, in the same order.
        title: the figure's title (model, weights, images).

    Returns:
        The figure; its first axes is the excess panel, its second the shares panel.
    """
    fig, (top, bottom) = new_figure(2, 1, figsize=(max(7.0, 1.3 * len(labels) + 3.0), 7.6), layout="constrained",
                                    height_ratios=(3, 2))
    plot_octave_excess(top, labels, metrics)
    plot_octave_shares(bottom, labels, metrics)
    fig.suptitle(title, fontsize=TEXT_SIZE + 2, wrap=True)
    return fig
