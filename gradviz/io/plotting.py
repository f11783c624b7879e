"""The figure style every rendering module shares: new figures, atomic PNG saving, and the panels
that several studies draw (log spectra, gradient maps, energy tiles, metrics against depth).

Figures are :class:`matplotlib.figure.Figure` objects made without pyplot, so drawing never
selects a backend or touches pyplot's global figure list: a notebook's inline plots keep
working, and a figure can be shown with ``display(fig)`` or saved with :func:`save_figure`.
This module and the ``render`` modules of the studies are the only ones that import matplotlib.
"""

from __future__ import annotations

import os

import matplotlib.ticker
import numpy as np
import torch
from matplotlib.figure import Figure

from gradviz.io.manifest import software_mark
from gradviz.io.outputs import atomic_file

# Power below this fraction of the maximum is clipped in log plots, so empty bins do not hide the scale.
LOG_FLOOR = 1e-8
# Lattice frequencies k/S are all ticked up to this S; beyond it only quarter frequencies are.
MAX_TICKED_STRIDE = 8


def _np(t) -> np.ndarray:
    return t.detach().double().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t, dtype=float)


def plot_log_spectrum(ax, power, title: str = "", stride: int | None = None) -> None:
    """``log10`` of a power spectrum (H, W), DC at the centre; lattice frequencies k/S ticked
    (every k/S up to S = 8; beyond, the quarter frequencies only, to stay legible)."""
    p = np.fft.fftshift(_np(power))
    p = np.log10(np.maximum(p, p.max() * LOG_FLOOR if p.max() > 0 else LOG_FLOOR))
    h, w = p.shape
    ax.imshow(p, cmap="magma", extent=(-0.5, 0.5, 0.5, -0.5), interpolation="nearest")
    if stride and stride > 1:
        step = 1 if stride <= MAX_TICKED_STRIDE else stride // 4
        ticks = [k / stride - 0.5 for k in range(0, stride + 1, step)]
        ax.set_xticks(ticks)
        ax.set_yticks(ticks)
        ax.tick_params(labelsize=5)
        ax.set_xticklabels([f"{t:g}" for t in ticks], rotation=90)
        ax.set_yticklabels([f"{t:g}" for t in ticks])
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    ax.set_title(title, fontsize=7)


def plot_gradient_map(ax, grad, title: str = "") -> None:
    """A signed gradient: (3, H, W) shown as the channel sum, or (H, W); symmetric diverging colours."""
    g = _np(grad)
    if g.ndim == 3:
        g = g.sum(0)
    lim = np.percentile(np.abs(g), 99.5) or 1.0
    ax.imshow(g, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=7)


def plot_tile(ax, tile, title: str = "") -> None:
    """The S x S energy tile (mean 1); values printed in cells when S <= 8."""
    t = _np(tile)
    ax.imshow(t, cmap="viridis", interpolation="nearest")
    if t.shape[0] <= 8:
        for (i, j), v in np.ndenumerate(t):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=5, color="w")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=7)


def plot_image(ax, image, title: str = "") -> None:
    """An image (3, H, W) in [0, 1]."""
    ax.imshow(np.clip(_np(image).transpose(1, 2, 0), 0, 1), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=7)


def new_figure(nrows: int = 1, ncols: int = 1, **kwargs):
    """``(figure, axes)`` like ``pyplot.subplots``, without pyplot (see the module docstring).

    ``kwargs`` go to :meth:`Figure.subplots` (``squeeze``, ``sharex``, ...) except ``figsize``,
    which goes to the figure.

    Example:
        >>> fig, axes = new_figure(1, 2, figsize=(4, 2))
        >>> len(axes), fig.get_size_inches().tolist()
        (2, [4.0, 2.0])
    """
    fig = Figure(figsize=kwargs.pop("figsize", None))
    return fig, fig.subplots(nrows, ncols, **kwargs)


def png_metadata() -> dict[str, str]:
    """PNG text chunks of every figure gradviz writes: its mark (see :func:`gradviz.io.outputs.is_gradviz_file`)."""
    return {"Software": software_mark()}


def save_figure(fig, path: str | os.PathLike, dpi: int = 110, guard: bool = False) -> None:
    """Save ``fig`` as PNG atomically, marked as gradviz's (``guard``: see :func:`gradviz.io.outputs.atomic_file`)."""
    with atomic_file(path, guard=guard) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png", metadata=png_metadata())


def plot_octave_excess(ax, labels: list[str], metrics: list, title: str = "line excess by octave") -> None:
    """Excess (power over the local background) per octave against ``labels``, log scale, 1 = no grid.

    Filled markers: the octave's Holm-adjusted p-value is below the metrics' alpha; open: it is not.
    """
    x = np.arange(len(labels))
    n_oct = max((len(m.octave_excess) for m in metrics), default=0)
    for j in range(n_oct):
        colour = f"C{j}"
        ys = [m.octave_excess[j] if j < len(m.octave_excess) else np.nan for m in metrics]
        sig = [j < len(m.octave_p_adjusted) and m.octave_p_adjusted[j] < m.alpha for m in metrics]
        ax.plot(x, ys, "-", color=colour, lw=1, label=f"period {2 ** (j + 1)}")
        for xi, y, s in zip(x, ys, sig):
            ax.plot([xi], [y], "o", color=colour, mfc=colour if s else "white", ms=4)
    ax.axhline(1.0, color="k", ls="--", lw=0.8)
    ax.set_yscale("log")
    ax.set_xticks(x)
    ax.set_xticklabels(labels, fontsize=6)
    ax.set_title(f"{title}\n(filled: Holm-adjusted p < alpha; 1 = no grid)", fontsize=7)
    # plain numbers (2, 5, 10) on major and, over small ranges, minor ticks
    ax.yaxis.set_major_formatter(matplotlib.ticker.LogFormatter(minor_thresholds=(2, 0.5)))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.LogFormatter(minor_thresholds=(2, 0.5)))
    if n_oct:
        ax.legend(fontsize=6)


def plot_depth(labels: list[str], metrics: list):
    """Three panels against depth: line excess by octave, energy share by octave, shared tile cv."""
    fig, axes = new_figure(1, 3, figsize=(12, 3.4))
    plot_octave_excess(axes[0], labels, metrics)
    x = np.arange(len(labels))
    for j in range(max((len(m.octave_fractions) for m in metrics), default=0)):
        vals = [m.octave_fractions[j] if j < len(m.octave_fractions) and m.octave_fractions[j] > 0 else np.nan
                for m in metrics]
        axes[1].plot(x, vals, "o-", ms=3, lw=1, color=f"C{j}", label=f"period {2 ** (j + 1)}")
    axes[1].set_yscale("log")
    axes[1].set_title("share of gradient energy on the lattice, by octave\n(a description, not a test)", fontsize=7)
    axes[1].legend(fontsize=6)
    cv = [m.shared_tile_cv for m in metrics]
    sig = [m.tile_detected for m in metrics]
    axes[2].plot(x, cv, "-", color="C0", lw=1)
    for xi, y, s in zip(x, cv, sig):
        axes[2].plot([xi], [y], "o", color="C0", mfc="C0" if s else "white", ms=4)
    axes[2].set_title("shared energy tile cv (interior)\n(filled: tile p < alpha; missing: map too small)", fontsize=7)
    axes[2].set_ylim(bottom=0)
    for ax in axes[1:]:
        ax.set_xticks(x)
        ax.set_xticklabels(labels, fontsize=6)
    fig.tight_layout()
    return fig
