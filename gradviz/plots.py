"""Figures shared by every report: log spectra, gradient maps, energy tiles, metrics against depth."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from gradviz.outputs import atomic_file  # noqa: E402

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


def save_figure(fig, path: str | os.PathLike, dpi: int = 110) -> None:
    """Save ``fig`` as PNG atomically and close it."""
    with atomic_file(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
    plt.close(fig)
