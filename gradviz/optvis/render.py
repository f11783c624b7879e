"""Feature visualisation, drawing half: the optimised images written as PNG or JPEG, and the figure that
compares dreams without and with jitter.

Images: a batch side by side, marked as gradviz's (a PNG text chunk ``Software`` or a JPEG comment,
``gradviz <version>``), which is what lets a later run replace the file (see
:func:`gradviz.io.outputs.is_gradviz_file`); written with Pillow.

The jitter figure (:func:`jitter_figure`) draws a :class:`JitterFigureData`: for each condition the
dream image whole and as a centre crop enlarged pixel for pixel, the power spectrum of the update on one
colour scale shared by the conditions, and the line excess per octave of every seed beside its mean and
sd, with what chance gives and the detection threshold. Every number it draws is computed beforehand
(``scripts/jitter_study.py --part figure``); nothing here computes a statistic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib.patches
import matplotlib.ticker
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from PIL import Image, PngImagePlugin

from gradviz.errors import GradvizError
from gradviz.io import plotting as plots
from gradviz.io.manifest import software_mark
from gradviz.io.outputs import atomic_file

__all__ = ["JITTER_CROP", "JITTER_ZOOM", "OUTPUT_SUFFIXES", "JitterCondition", "JitterFigureData", "jitter_figure",
           "lattice_bins", "save_images", "to_uint8", "write_image"]

# The file types a dream image may be written as (PNG, or JPEG under either suffix). Not
# gradviz.io.images.IMAGE_SUFFIXES, which lists the types gradviz *reads*.
OUTPUT_SUFFIXES = (".png", ".jpg", ".jpeg")


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """A batch in [0, 1] as one uint8 strip, the images side by side.

    Args:
        images: the batch; values outside [0, 1] are clamped.

    Returns:
        ``round(255 * x)`` as uint8, height by width by channel.

    Shape:
        (B, 3, H, W) -> (H, B * W, 3).

    Example:
        >>> strip = to_uint8(torch.stack([torch.zeros(3, 2, 2), torch.ones(3, 2, 2)]))
        >>> strip.shape, strip[0, :, 0].tolist()
        ((2, 4, 3), [0, 0, 255, 255])
    """
    strip = torch.cat(list(images.detach().clamp(0, 1).cpu()), dim=-1)
    return (strip.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)


def write_image(images: torch.Tensor, path: str | Path) -> None:
    """Write the batch side by side (:func:`to_uint8`) as one image at ``path``, marked as gradviz's.

    Not atomic: :func:`save_images` (or :func:`gradviz.io.outputs.atomic_files`) gives the path of a
    temporary file to write with it.

    Args:
        images: (B, 3, H, W) in [0, 1].
        path: a ``.png`` path gets a PNG with a ``Software`` text chunk; any other a JPEG with a comment.

    Example:
        >>> import tempfile
        >>> from gradviz.io.outputs import is_gradviz_file
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     write_image(torch.zeros(2, 3, 4, 4), Path(folder) / "x.png")
        ...     with Image.open(Path(folder) / "x.png") as im:
        ...         im.size, is_gradviz_file(Path(folder) / "x.png")
        ((8, 4), True)
    """
    path = Path(path)
    mark = software_mark()
    image = Image.fromarray(to_uint8(images))
    if path.suffix.lower() == ".png":
        info = PngImagePlugin.PngInfo()
        info.add_text("Software", mark)
        image.save(path, format="PNG", pnginfo=info)
    else:
        image.save(path, format="JPEG", comment=mark.encode())


def save_images(images: torch.Tensor, path: str | Path, guard: bool = False) -> None:
    """Write the batch side by side as one PNG or JPEG, atomically (see :func:`write_image`).

    Args:
        images: (B, 3, H, W) in [0, 1].
        path: ends in one of :data:`OUTPUT_SUFFIXES` (else a GradvizError, and nothing is written).
        guard: replace an existing file only if gradviz wrote it (see :func:`gradviz.io.outputs.atomic_file`).

    Example:
        >>> save_images(torch.zeros(1, 3, 4, 4), "x.gif")
        Traceback (most recent call last):
        ...
        gradviz.errors.GradvizError: image output must end in .png, .jpg, .jpeg, got 'x.gif'
    """
    path = Path(path)
    if path.suffix.lower() not in OUTPUT_SUFFIXES:
        raise GradvizError(f"image output must end in {', '.join(OUTPUT_SUFFIXES)}, got {path.name!r}")
    with atomic_file(path, guard=guard) as tmp:
        write_image(images, tmp)


# --------------------------------------------------------------------------------------- jitter figure

# The centre crop of a dream image and its enlargement: 48 px shown 4 times larger (nearest neighbour), so that
# one pixel is a 4 x 4 block on a 120-dpi page and a period-2 pattern alternates every 4 screen pixels.
JITTER_CROP, JITTER_ZOOM = 48, 4
# Colour of the crop's box on the whole image (visible on the dreams' saturated colours).
CROP_BOX_COLOUR = "yellow"
# Horizontal room (x units) the seeds' dots of one condition spread over in the excess panel.
SEED_SPREAD = 0.36
# Lattice bins are drawn as spots on the spectra up to this stride (S = 8: 80 spots; S = 16 would need 288),
# each LATTICE_SPOT_AREA pt^2 (about 8 screen pixels across at 120 dpi).
MARKED_STRIDE, LATTICE_SPOT_AREA = 8, 24


@dataclass(frozen=True)
class JitterCondition:
    """What the jitter figure shows of one condition (every array already computed).

    Attributes:
        label: the condition, e.g. ``"no jitter"`` or ``"jitter d = 4"``.
        image: the shown seed's dream image, (3, H, W) in [0, 1].
        power: the power spectrum of the update ``x_final - x_start``, mean over the seeds, each update scaled
            to unit energy, (H', W') with DC at index (0, 0): what the line test reads.
        excess: the line excess per seed (rows) and octave (columns; octave j is period ``2**(j+1)`` px).
        detected: per seed and octave, whether its Holm-adjusted p-value is below alpha (bool, like ``excess``).
        mean: the mean over seeds per octave.
        sd: the sample standard deviation over seeds (ddof = 1) per octave.
        null_band: per octave, the 5% and 95% quantiles of what chance gives, mean over the seeds, (octaves, 2).
        threshold: per octave, the excess above which it is detected, mean over the seeds.
        n_detected: the number of seeds whose update has a detected grid (any octave).
    """

    label: str
    image: np.ndarray
    power: np.ndarray
    excess: np.ndarray
    detected: np.ndarray
    mean: np.ndarray
    sd: np.ndarray
    null_band: np.ndarray
    threshold: np.ndarray
    n_detected: int


@dataclass(frozen=True)
class JitterFigureData:
    """A jitter figure: one model and layer, two or more conditions measured on the same seeds.

    Attributes:
        title: the figure's title (model, weights, layer, settings).
        stride: the layer's cumulative stride S (the lattice k/S marked on the spectra).
        seeds: the seeds, in the order of the rows of each condition's ``excess``.
        shown_seed: the seed whose dream images are shown.
        conditions: the conditions, one row of images each.
        octave_notes: one text per octave, printed above its group in the excess panel (a paired comparison).
        footer: a line under the figure (the script that made it, what the p-values are).
        alpha: the level of ``detected``.
    """

    title: str
    stride: int
    seeds: list[int]
    shown_seed: int
    conditions: Sequence[JitterCondition]
    octave_notes: Sequence[str] = ()
    footer: str = ""
    alpha: float = 0.05


def _centre_crop(image: np.ndarray, crop: int) -> tuple[int, int, np.ndarray]:
    """``(y, x, pixels)``: the centre ``crop`` x ``crop`` window of a (3, H, W) image, as (crop, crop, 3)."""
    h, w = image.shape[-2:]
    crop = min(crop, h, w)
    y, x = (h - crop) // 2, (w - crop) // 2
    return y, x, np.clip(image[:, y:y + crop, x:x + crop], 0, 1).transpose(1, 2, 0)


def lattice_bins(power: np.ndarray, stride: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The lattice bins (a/S, b/S) in [-1/2, 1/2]^2 but DC of a power spectrum, and their values as drawn.

    Args:
        power: (H, W) with DC at index (0, 0), as given to :func:`gradviz.io.plotting.plot_log_spectrum`.
        stride: S.

    Returns:
        ``(fx, fy, values)``: the bins' frequencies (cycles per pixel) and their values in
        :func:`gradviz.io.plotting.log_power` of ``power`` (+1/2 and -1/2 are the same bin, drawn twice).

    Example:
        >>> p = np.ones((4, 4)); p[0, 2] = 9.0  # (fy, fx) = (0, 1/2): 9 of the total 24
        >>> fx, fy, v = lattice_bins(p, 2)
        >>> len(v), [round(float(x), 3) for x, f, g in zip(v, fx, fy) if f == 0.5 and g == 0]
        (8, [-0.426])
    """
    h, w = np.shape(power)
    ks = [k / stride for k in range(-(stride // 2), stride // 2 + 1)]
    points = [(fx, fy) for fy in ks for fx in ks if (fx, fy) != (0.0, 0.0)]
    centred = plots.log_power(power)  # frequency k/n at index n // 2 + k (+1/2 repeated at the end for even n)
    fx = np.array([pt[0] for pt in points])
    fy = np.array([pt[1] for pt in points])
    values = np.array([centred[h // 2 + round(y * h), w // 2 + round(x * w)] for x, y in points])
    return fx, fy, values


def _mark_lattice(ax, image, power: np.ndarray, stride: int) -> None:
    """Each lattice bin as a round spot of its own colour (the spectrum's scale) ringed in the lattice colour,
    up to S = ``MARKED_STRIDE``: one bin is about one screen pixel, too small to see its colour unmarked."""
    if stride > MARKED_STRIDE:
        return
    fx, fy, values = lattice_bins(power, stride)
    ax.scatter(fx, fy, c=values, cmap=image.cmap, norm=image.norm, s=LATTICE_SPOT_AREA, edgecolors=plots.LATTICE_COLOUR,
               linewidths=0.6, zorder=3, clip_on=False)  # the bins at +-1/2 sit on the frame: drawn whole


def _draw_images(axes, data: JitterFigureData, crop: int, zoom: int) -> None:
    """Per row (condition): the whole dream image with the crop's box, then the crop enlarged ``zoom`` times."""
    for row, (whole, zoomed) in enumerate(axes):
        cond = data.conditions[row]
        y, x, pixels = _centre_crop(cond.image, crop)
        whole.imshow(np.clip(cond.image, 0, 1).transpose(1, 2, 0), interpolation="nearest")
        whole.add_patch(matplotlib.patches.Rectangle((x - 0.5, y - 0.5), pixels.shape[1], pixels.shape[0],
                                                     fill=False, ec=CROP_BOX_COLOUR, lw=1.2))
        zoomed.imshow(pixels, interpolation="nearest")
        for ax in (whole, zoomed):
            ax.set(xticks=[], yticks=[])
        whole.set_ylabel(f"{cond.label}\ngrid in {cond.n_detected} of {len(data.seeds)} seeds",
                         fontsize=plots.TEXT_SIZE + 1)
        if row == 0:
            h, w = cond.image.shape[-2:]
            whole.set_title(f"dream image, seed {data.shown_seed}\n(all {h} x {w} px)", fontsize=plots.TEXT_SIZE)
            zoomed.set_title(f"its centre {pixels.shape[0]} px,\nenlarged {zoom}x", fontsize=plots.TEXT_SIZE)


def _draw_spectra(fig, axes, data: JitterFigureData) -> None:
    """Per row: the log power spectrum of the update, one colour scale for all rows, one colourbar."""
    limits = plots.log_power_limits([c.power for c in data.conditions])
    image = None
    for row, (ax, cond) in enumerate(zip(axes, data.conditions)):
        title = "" if row else f"update spectrum, mean of {len(data.seeds)} seeds\n(spots: lattice k/{data.stride})"
        image = plots.plot_log_spectrum(ax, cond.power, title, data.stride, limits)
        _mark_lattice(ax, image, cond.power, data.stride)
    plots.add_colourbar(fig, image, axes, "log10 share of the update's power")


def _draw_excess(ax, data: JitterFigureData) -> None:
    """Line excess per octave (groups) and condition: every seed a dot (filled: detected), the same seed joined
    across conditions, the mean with its sd, the chance band (pale bar) and the detection threshold (dash)."""
    conds, n_cond = data.conditions, len(data.conditions)
    n_oct = max((c.excess.shape[1] for c in conds), default=0)
    n_seeds = len(data.seeds)
    offsets = np.linspace(-SEED_SPREAD / 2, SEED_SPREAD / 2, n_seeds) if n_seeds > 1 else np.zeros(1)
    shown, ticks, labels = [1.0], [], []
    for j in range(n_oct):
        colour = plots.octave_colour(j)
        xs = [j * (n_cond + 1) + i for i in range(n_cond)]
        for i, (x, c) in enumerate(zip(xs, conds)):
            ys, det = c.excess[:, j], c.detected[:, j].astype(bool)
            lo, hi = c.null_band[j]
            tag = f"{i} {j}"  # condition, octave: the artists' gid, for reading the figure back
            ax.vlines([x], [lo], [hi], color=colour, alpha=0.28, lw=14, gid=f"chance {tag}")
            ax.plot([x], [c.threshold[j]], ls="none", marker="_", ms=20, mew=2, color=colour, gid=f"threshold {tag}")
            ax.plot(x + offsets[det], ys[det], "o", ls="none", ms=6, color=colour, gid=f"detected {tag}")
            ax.plot(x + offsets[~det], ys[~det], "o", ls="none", ms=6, mfc="white", mec=colour, mew=1.3,
                    gid=f"not detected {tag}")
            lower = min(c.sd[j], 0.9 * c.mean[j])  # a log axis cannot show mean - sd <= 0: the bar stops at mean / 10
            bars = ax.errorbar([x + SEED_SPREAD / 2 + 0.22], [c.mean[j]], yerr=[[lower], [c.sd[j]]], fmt="s",
                               color="k", ms=5, capsize=3, lw=1.2)
            bars.lines[0].set_gid(f"mean {tag}")
            ticks.append(x)
            labels.append(f"{c.label.replace(' ', chr(10), 1)}\n{int(det.sum())}/{n_seeds} det.")
            shown += [*ys, lo, hi, c.threshold[j], c.mean[j] + c.sd[j], c.mean[j] - lower]
        for s in range(n_seeds):  # the same seed (same start image) across the conditions
            ax.plot([x + offsets[s] for x in xs], [c.excess[s, j] for c in conds], "-", color="0.6", lw=0.6, zorder=0)
        note = data.octave_notes[j] if j < len(data.octave_notes) else ""
        ax.text(np.mean(xs), 1.01, f"period {2 ** (j + 1)} px\n{note}".strip(), transform=ax.get_xaxis_transform(),
                ha="center", va="bottom", fontsize=plots.SMALL_TEXT_SIZE, color=colour)
    ax.axhline(1.0, color="k", ls="--", lw=0.8)
    finite = np.array([v for v in shown if np.isfinite(v) and v > 0])
    lo, hi = finite.min() / 1.15, finite.max() * 1.15
    ax.set_yscale("log")
    ax.set_ylim(lo, hi)
    ax.yaxis.set_major_locator(matplotlib.ticker.FixedLocator(plots.nice_log_ticks(lo, hi)))
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xticks(ticks, labels, fontsize=plots.SMALL_TEXT_SIZE)
    ax.set_xlim(-0.7, (n_oct - 1) * (n_cond + 1) + n_cond - 0.3 if n_oct else 1)
    ax.tick_params(axis="y", labelsize=plots.SMALL_TEXT_SIZE)
    ax.set_ylabel("line excess of the update (1 = no grid)", fontsize=plots.TEXT_SIZE)
    grey = "0.35"
    handles = [Line2D([], [], color=grey, marker="o", ls="none", ms=6,
                      label=f"a seed, detected (Holm p < {data.alpha:g})"),
               Line2D([], [], color=grey, marker="o", ls="none", ms=6, mfc="white", label="a seed, not detected"),
               Line2D([], [], color="k", marker="s", ms=5, label="mean \u00b1 sd over seeds"),
               Line2D([], [], color=grey, alpha=0.28, lw=8, label="chance (5-95%)"),
               Line2D([], [], color=grey, marker="_", ls="none", ms=14, mew=2, label="detection threshold")]
    ax.legend(handles=handles, fontsize=plots.SMALL_TEXT_SIZE, loc="upper center", bbox_to_anchor=(0.5, -0.2),
              ncol=2, frameon=False)
    lines = 1 + max((len(n.splitlines()) for n in data.octave_notes), default=0)  # of the notes above the groups
    ax.set_title(f"line excess per octave, {n_seeds} seeds (grey lines: same seed)", fontsize=plots.TEXT_SIZE,
                 pad=4 + 1.3 * plots.SMALL_TEXT_SIZE * lines)


def jitter_figure(data: JitterFigureData, crop: int = JITTER_CROP, zoom: int = JITTER_ZOOM) -> Figure:
    """Dreams without and with jitter, one row per condition: the image whole and its centre enlarged, the
    update's spectrum (one colour scale), and on the right the line excess per octave over the seeds.

    Args:
        data: what to draw (see :class:`JitterFigureData`; the numbers are drawn as given).
        crop: side (px) of the centre crop of each dream image.
        zoom: how many times the crop is enlarged (``crop * zoom`` screen pixels at ``FIGURE_DPI``).

    Returns:
        The figure. Its axes, in order: per condition the whole image, the crop and the spectrum (row by row),
        then the colourbar and the excess panel.
    """
    n = len(data.conditions)
    n_oct = max((c.excess.shape[1] for c in data.conditions), default=1)
    side = crop * zoom / plots.FIGURE_DPI  # inches of one image panel
    excess_width = 0.8 + 0.3 * n_oct * (n + 1)  # in image-panel widths: room for every condition's tick label
    # room (inches) for the labels, titles, colourbar, legend and footer around the panels
    fig, axes = plots.new_figure(n, 4, figsize=((3.4 + excess_width) * side + 2.6, n * (side + 0.75) + 2.4),
                                 squeeze=False, layout="constrained",
                                 gridspec_kw={"width_ratios": (1, 1, 1.2, excess_width)})
    grid = axes[0, 3].get_subplotspec().get_gridspec()
    for ax in axes[:, 3]:
        ax.remove()
    _draw_images(axes[:, :2], data, crop, zoom)
    _draw_spectra(fig, axes[:, 2], data)
    _draw_excess(fig.add_subplot(grid[:, 3]), data)
    fig.suptitle(data.title, fontsize=plots.TEXT_SIZE + 1)
    if data.footer:
        fig.supxlabel(data.footer, fontsize=plots.SMALL_TEXT_SIZE)
    return fig
