"""The figure style every rendering module shares: new figures, atomic PNG saving, and the panels
several studies draw (log spectra, gradient maps and pixel-for-pixel crops, energy tiles), and the one way
figures name a layer's line-test result (:func:`line_label`). Panels compared side by side take colour
``limits`` computed over all of them (:func:`log_power_limits`, :func:`tile_limits`), so a figure has one
scale and one colourbar (:func:`add_colourbar`).

Figures are :class:`matplotlib.figure.Figure` objects made without pyplot, so drawing never selects a
backend or touches pyplot's global figure list (show one with ``display(fig)``, save it with
:func:`save_figure`). This module and the studies' drawing modules are the only ones importing matplotlib.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

import matplotlib
import matplotlib.colors
import matplotlib.patches
import matplotlib.ticker
import numpy as np
import torch
from matplotlib.figure import Figure

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
# Colour limit of a crop: this percentile of |g| in the crop itself (a crop chosen for its pattern would
# otherwise saturate on the whole map's scale, or be pale).
CROP_PERCENTILE = 99.0
# Tiles up to this side print their values in the cells (beyond, the numbers do not fit).
TILE_NUMBERS_MAX = 4
# Colour range of energy tiles: at least 1/1.02 .. 1.02 (flat tiles stay pale), at most 1/100 .. 100.
TILE_MIN_RATIO, TILE_MAX_RATIO = 1.02, 100.0
# Frequency labels of spectra (cycles per pixel), as short fractions.
FREQUENCY_LABELS = {-0.5: "\u2212\u00bd", -0.25: "\u2212\u00bc", 0.0: "0", 0.25: "\u00bc", 0.5: "\u00bd"}
# Colour of the marks at the lattice frequencies k/S on spectra.
LATTICE_COLOUR = "tab:cyan"

__all__ = ["CROP_PERCENTILE", "CROP_SIZE", "FIGURE_DPI", "GRADIENT_PERCENTILE", "SMALL_TEXT_SIZE", "TEXT_SIZE",
           "add_colourbar", "crop_origin", "line_label", "log_power", "log_power_limits", "new_figure",
           "nice_log_ticks", "octave_colour", "plot_gradient_map", "plot_image", "plot_log_spectrum", "plot_tile",
           "png_metadata", "save_figure", "strongest_line", "tile_limits"]


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
    frequencies k/S of ``stride`` marked around it; ``limits``: the colour range (:func:`log_power_limits`
    over every panel of the figure; this spectrum's own by default). Pixel centres are at k/W, the Nyquist
    row and column (the period-2 lattice at +-1/2) lie whole inside the axes, and no frame is drawn over
    them. Returns the image artist.
    """
    h, w = _np(power).shape
    vmin, vmax = limits or log_power_limits([power])
    fy, fx = (h // 2) / h, (w // 2) / w
    cmap = matplotlib.colormaps["magma"].with_extremes(bad="0.6")
    image = ax.imshow(log_power(power), cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest",
                      extent=(-fx - 0.5 / w, fx + 0.5 / w, fy + 0.5 / h, -fy - 0.5 / h))
    ax.set_frame_on(False)  # a frame would hide the border row and column, where the period-2 lines are
    _frequency_ticks(ax, stride, h, w)
    _finish(ax, title)
    return image


def _channel_sum(grad) -> np.ndarray:
    g = _np(grad)
    return g.sum(0) if g.ndim == 3 else g


def _lattice_energy(window: np.ndarray, period: int) -> float:
    """How far the lattice bins of ``window``'s power spectrum (Hann-tapered; frequencies k/``period``, DC
    excluded) stand above their neighbours: per bin its power less the larger of the means of its two
    neighbours along each axis (an edge's spectrum is a line through the bin, a smooth spectrum is smooth:
    both give ~0; a checkerboard gives 3/4 of its power), the positive parts summed. The non-DC energy
    when ``period < 2``."""
    v = window - window.mean()
    if period < 2:
        return float((v ** 2).sum())
    taper = [0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n) for n in v.shape]  # Hann: no leakage ripples
    power = np.abs(np.fft.fft2(v * np.outer(*taper))) ** 2
    step = v.shape[0] // period
    ky, kx = np.meshgrid(np.arange(0, v.shape[0], step), np.arange(0, v.shape[1], step), indexing="ij")
    ky, kx = ky.ravel()[1:], kx.ravel()[1:]  # without DC
    n, m = v.shape
    along_y = (power[(ky - 1) % n, kx] + power[(ky + 1) % n, kx]) / 2
    along_x = (power[ky, (kx - 1) % m] + power[ky, (kx + 1) % m]) / 2
    return float(np.clip(power[ky, kx] - np.maximum(along_y, along_x), 0, None).sum())


def crop_origin(grad, period: int, size: int = CROP_SIZE) -> tuple[int, int]:
    """``(y, x)`` of the ``size`` x ``size`` window of the gradient's channel sum (origins on a half-window
    grid) where the lattice of ``period`` (at most ``size // 2``) stands highest above its local background
    in the window's spectrum (see :func:`_lattice_energy`): so the crop shows where the grid is strongest,
    not the image's strongest edge; the first such window when several tie. ``period`` 1: the most energy.

    Example:
        >>> g = torch.zeros(64, 64); g[:, 47:] = 10.0  # a strong edge
        >>> g[36:60, 4:28] += torch.tensor([[1.0, -1.0], [-1.0, 1.0]]).repeat(12, 12)  # a faint checkerboard
        >>> crop_origin(g, 2)
        (32, 0)
    """
    g = _channel_sum(grad)
    (h, w), n = g.shape, min(size, *g.shape)
    p, step = min(period, n // 2), max(n // 2, 1)
    n = n // p * p if p >= 2 else n  # a whole number of periods
    starts = [sorted({*range(0, side - n + 1, step), side - n}) for side in (h, w)]
    _, y, x = max((_lattice_energy(g[y:y + n, x:x + n], p), -y, -x) for y in starts[0] for x in starts[1])
    return -y, -x


def plot_gradient_map(ax, grad, title: str = "", crop: tuple[int, int, int] | None = None, zoom: bool = False):
    """A signed gradient, (3, H, W) shown as the channel sum or (H, W), divided by its ``GRADIENT_PERCENTILE``-th
    percentile of ``|g|`` (colour range -1..1). ``crop`` ``(y, x, size)``: its box is drawn, or with ``zoom``
    only the crop is shown, pixel for pixel (one square per pixel, nearest-neighbour), divided by the
    ``CROP_PERCENTILE``-th percentile of ``|g|`` in the crop (a crop has its own scale: it is chosen for its
    pattern, and would saturate or fade on the whole map's).

    Returns:
        The image artist (for :func:`add_colourbar`); with ``zoom`` its array is the crop itself, scaled.
    """
    g = _channel_sum(grad)
    y, x, size = crop or (0, 0, max(g.shape))
    shown = g[y:y + size, x:x + size] if zoom else g
    scale = float(np.percentile(np.abs(shown), CROP_PERCENTILE if zoom else GRADIENT_PERCENTILE)) or 1.0
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


def _field(m, name: str, default=None):
    """A field of metrics given as :class:`~gradviz.spectrum.CheckerboardMetrics` or as its ``to_dict()``."""
    return m.get(name, default) if isinstance(m, Mapping) else getattr(m, name, default)


def strongest_line(m) -> tuple[int, float, float, bool] | None:
    """``(period, excess, Holm-adjusted p, detected)`` of one tested period of a layer's line test: of the
    detected periods (adjusted p < alpha) the one with the largest excess; when none is detected, the one
    with the smallest adjusted p (the layer's p-value). None when nothing was tested.

    ``m``: :class:`~gradviz.spectrum.CheckerboardMetrics` or its ``to_dict()``; its periods (``period_excess``,
    ``period_p_adjusted``), or its octaves where those are missing. The lattice excess of all periods
    together has no test of its own and is never returned here.

    Example:
        >>> m = {"period_excess": {"2": 3.1, "4": 1.6, "8": 1.0}, "period_p_adjusted": {"2": 0.003, "4": 0.01,
        ...      "8": 1.0}, "p_value": 0.003, "alpha": 0.05, "n_null": 999}
        >>> strongest_line(m), strongest_line({**m, "period_p_adjusted": {"2": 0.4, "4": 0.2, "8": 1.0}})
        ((2, 3.1, 0.003, True), (4, 1.6, 0.2, False))
        >>> strongest_line({"octave_excess": [1.2, 2.5], "octave_p_adjusted": [0.02, 0.01], "p_value": 0.01})
        (4, 2.5, 0.01, True)
    """
    p_value = _field(m, "p_value", math.nan)
    if _field(m, "zero_gradient", False) or _field(m, "n_null", 1) == 0 or p_value is None or math.isnan(p_value):
        return None
    alpha, excess, adjusted = _field(m, "alpha", 0.05), _field(m, "period_excess"), _field(m, "period_p_adjusted")
    if not adjusted:  # the octaves (older results keep only these): period 2**(j+1)
        excess = {2 ** (j + 1): e for j, e in enumerate(_field(m, "octave_excess", None) or [])}
        adjusted = {2 ** (j + 1): q for j, q in enumerate(_field(m, "octave_p_adjusted", None) or [])}
    lines = [(int(k), float(excess[k]), float(q)) for k, q in adjusted.items()
             if q is not None and excess.get(k) is not None and math.isfinite(q)]
    detected = [line for line in lines if line[2] < alpha]
    if detected:
        period, e, q = max(detected, key=lambda line: (line[1], -line[0]))
    elif lines:
        period, e, q = min(lines, key=lambda line: (line[2], -line[1], line[0]))
    else:
        return None
    return period, e, q, bool(detected)


def line_label(m) -> str:
    """A layer's line test in a few words: ``"period 2: 3.1x (Holm p 0.003)"``, the strongest detected
    period (:func:`strongest_line`) with its own excess and adjusted p; ``"not detected (p = 0.36)"`` with
    the layer's p-value; or ``"not tested"``. Never the all-lattice excess beside a p-value: it has no test.

    Example:
        >>> m = {"period_excess": {"2": 3.1}, "period_p_adjusted": {"2": 0.003}, "p_value": 0.003}
        >>> line_label(m), line_label({**m, "period_p_adjusted": {"2": 0.36}, "p_value": 0.36})
        ('period 2: 3.1x (Holm p 0.003)', 'not detected (p = 0.36)')
    """
    line = strongest_line(m)
    if line is None:
        return "not tested"
    period, excess, q, detected = line
    return f"period {period}: {excess:.3g}x (Holm p {q:.2g})" if detected else \
        f"not detected (p = {_field(m, 'p_value'):.2g})"


def octave_colour(j: int) -> str:
    """The colour of octave ``j`` (0-based: period ``2**(j+1)`` px) in every per-octave panel."""
    return f"C{j % 10}"


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


