"""Upsampling, drawing half: the figures of the overlap, generator, discriminator and GAN studies.

Every ``*_figure`` function takes results that the compute modules (:mod:`~gradviz.upsampling.overlap`,
:mod:`~gradviz.upsampling.generators`, :mod:`~gradviz.upsampling.discriminators`,
:mod:`~gradviz.upsampling.gan`) or ``study.json`` hold, computes nothing of its own, and returns a
:class:`matplotlib.figure.Figure` made with :func:`gradviz.io.plotting.new_figure`;
:func:`save_png` writes it, and each ``plot_*`` function draws and writes one figure of the commands.
"""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Mapping, Sequence

import matplotlib
import matplotlib.ticker
import torch
from matplotlib.figure import Figure

from gradviz.io.plotting import SMALL_TEXT_SIZE, line_label, new_figure, nice_log_ticks, png_metadata
from gradviz.upsampling.discriminators import DiscriminatorResult
from gradviz.upsampling.gan import GanResult
from gradviz.upsampling.generators import GeneratorResult
from gradviz.upsampling.overlap import OverlapPrefix

__all__ = [
    "FIGURE_DPI",
    "OVERLAP_DPI",
    "excess_figure",
    "gan_final_figure",
    "gradients_figure",
    "overlap_figure",
    "plot_gradients",
    "plot_overlap",
    "plot_samples",
    "plot_training",
    "samples_figure",
    "save_png",
    "training_figure",
]

# Resolution of the overlap figure, and of every other figure.
OVERLAP_DPI = 100
FIGURE_DPI = 90
# Level at which a dot of :func:`gan_final_figure` is filled.
ALPHA = 0.05


def save_png(fig: Figure, path: str | os.PathLike, dpi: int = FIGURE_DPI, marked: bool = False) -> None:
    """Write ``fig`` to ``path`` as PNG, the whole figure at ``dpi`` (no tight crop).

    Unlike :func:`gradviz.io.plotting.save_figure`, this neither crops the figure to its contents nor
    writes atomically: the upsampling figures have always been written this way (inside an atomic
    folder or file set up by the caller), and keep their size and bytes.

    Args:
        fig: the figure.
        path: the file (any suffix: the format is PNG).
        dpi: the resolution.
        marked: add gradviz's PNG text chunk (:func:`gradviz.io.plotting.png_metadata`), which a
            single file needs so that a later run may replace it.

    Example:
        >>> import io
        >>> fig, ax = new_figure(figsize=(1, 1))
        >>> buf = io.BytesIO(); save_png(fig, buf, dpi=20, marked=True)
        >>> buf.getvalue()[:4], b"gradviz" in buf.getvalue()
        (b'\\x89PNG', True)
    """
    if marked:
        fig.savefig(path, dpi=dpi, format="png", metadata=png_metadata())
    else:
        fig.savefig(path, dpi=dpi, format="png")


def overlap_figure(prefixes: Sequence[OverlapPrefix]) -> Figure:
    """Distill-style figure, one row per prefix of the stack: the 1D output of a constant input
    (bars; the shade is the count), the 2D output, and the spectrum of the interior pattern.

    Args:
        prefixes: from :func:`gradviz.upsampling.overlap.overlap_prefixes`.

    Returns:
        the figure (11 inches wide, one row per prefix).

    Example:
        >>> from gradviz.upsampling.overlap import overlap_prefixes, stack
        >>> len(overlap_figure(overlap_prefixes(stack(3, 2, layers=2))).axes)
        6
    """
    n = len(prefixes)
    fig, axes = new_figure(n, 3, figsize=(11, 2.4 * n + 0.4), squeeze=False,
                           gridspec_kw={"width_ratios": [2.2, 1, 1.2]})
    blues = matplotlib.colormaps["Blues"]
    for i, p in enumerate(prefixes):
        rep, y1, y2 = p.report, p.output_1d, p.output_2d
        ax = axes[i, 0]
        shade = blues(0.25 + 0.75 * (y1 / y1.max()).numpy())
        ax.bar(range(y1.numel()), y1.numpy(), width=1.0, color=shade, edgecolor="white", linewidth=0.5)
        ratio = "inf" if not math.isfinite(rep.ratio_1d) else f"{rep.ratio_1d:.3g}"
        ax.set_title(f"{p.label}: constant input of {p.n_inputs}, interior max/min {ratio}", fontsize=9)
        ax.set_xlabel("output position", fontsize=8)
        ax = axes[i, 1]
        ax.imshow(y2.numpy(), cmap="Blues", interpolation="nearest")
        ratio2 = "inf" if not math.isfinite(rep.ratio_2d) else f"{rep.ratio_2d:.3g}"
        ax.set_title(f"2D, interior max/min {ratio2}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        ax = axes[i, 2]
        q = torch.arange(rep.period)
        ax.stem((q / rep.period).numpy(), rep.line_ratios_1d, basefmt=" ")
        ax.set_ylim(0, 1.08)
        ax.set_xlabel("frequency (cycles / pixel)", fontsize=8)
        ax.set_title("lines |C[q]| / C[0] (1D pattern)", fontsize=9)
    fig.tight_layout()
    return fig


def samples_figure(results: Sequence[tuple[GeneratorResult, torch.Tensor]], n_show: int = 6,
                   title: str = "generator samples at initialisation") -> Figure:
    """A row of samples per design, each image stretched to its own min..max (outputs at init are faint).

    Args:
        results: ``(result, images)`` pairs, as :func:`gradviz.upsampling.generators.measure_generators`
            gives them; the row is labelled with ``result.design``, its line test
            (:func:`gradviz.io.plotting.line_label`: the strongest detected period with its own excess and
            Holm-adjusted p, or "not detected" with the p-value) and its lattice energy share.
        n_show: images per row (repeated when there are fewer).
        title: the figure's title.

    Shape:
        images ``(N, 3, H, W)``.

    Example:
        >>> from gradviz.upsampling.generators import measure_generator
        >>> pair = measure_generator("nearest", samples=2, blocks=1, width=2)
        >>> len(samples_figure([pair], n_show=2).axes)
        2
    """
    rows = len(results)
    fig, axes = new_figure(rows, n_show, figsize=(1.6 * n_show, 1.75 * rows + 0.3), squeeze=False)
    for r, (res, images) in enumerate(results):
        for i in range(n_show):
            ax = axes[r, i]
            img = images[i % len(images)].float()
            img = (img - img.min()) / (img.max() - img.min() + 1e-12)
            ax.imshow(img.permute(1, 2, 0).cpu().numpy(), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(res.design, fontsize=SMALL_TEXT_SIZE)
        axes[r, 0].set_title(" ", fontsize=SMALL_TEXT_SIZE)  # room for the row's label, written after the layout
    fig.suptitle(f"{title} (each image min-max stretched)", fontsize=10)
    fig.tight_layout()
    for r, (res, _) in enumerate(results):  # the label spans the row: the layout must not squeeze an image for it
        axes[r, 0].text(0, 1.04, f"lines: {line_label(res.metrics)}; lattice energy share "
                        f"{res.metrics.lattice_fraction:.3f} (a description)", transform=axes[r, 0].transAxes,
                        fontsize=SMALL_TEXT_SIZE, va="bottom")
    return fig


def gradients_figure(results: Sequence[DiscriminatorResult], n_show: int = 4) -> Figure:
    """One row per first layer: a few signed input gradients (channel sum, each scaled to its own
    max |g|) and the mean energy tile of sum_c g_c^2 over ``PERIOD`` x ``PERIOD`` phases.

    Args:
        results: from :func:`gradviz.upsampling.discriminators.measure_discriminator`, one per row.
        n_show: gradients per row (repeated when there are fewer).

    Example:
        >>> from gradviz.upsampling.discriminators import measure_discriminator
        >>> r = measure_discriminator("conv+pool", torch.zeros(2, 3, 16, 16), width=2)
        >>> len(gradients_figure([r], n_show=2).axes)
        3
    """
    rows = len(results)
    fig, axes = new_figure(rows, n_show + 1, figsize=(1.9 * (n_show + 1), 2.0 * rows + 0.3), squeeze=False)
    for r, res in enumerate(results):
        g = res.gradient
        for i in range(n_show):
            ax = axes[r, i]
            gi = g[i % len(g)].sum(0)
            lim = float(gi.abs().max()) or 1.0
            ax.imshow(gi.numpy(), cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_ylabel(res.first_layer, fontsize=9)
        m = res.metrics
        ax = axes[r, n_show]
        ax.imshow(m.tile, cmap="viridis", interpolation="nearest")
        ax.set_title(f"pooled tile max/min {m.tile_contrast:.2f}\n(description; lines: {'grid' if m.grid_detected else 'none'})", fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("discriminator input gradients at initialisation (signed, channel sum)", fontsize=10)
    fig.tight_layout()
    return fig


def training_figure(results: Mapping[str, Sequence[GanResult]]) -> Figure:
    """Against training step: the generator outputs' period-2 line excess and lattice excess over the
    local background, and the period-2 excess of the discriminator's gradient on them (1 = no grid);
    one colour per first layer, one line per seed.

    Args:
        results: ``{first layer: [result per seed]}`` from :func:`gradviz.upsampling.gan.train_gan`.

    Returns:
        the figure, three panels.
    """
    fig, axes = new_figure(1, 3, figsize=(13, 3.6))
    panels = [
        ("G outputs: period-2 line excess", lambda r: [m.octave_excess[0] for m in r.output_metrics]),
        ("G outputs: lattice excess (all periods)", lambda r: [m.lattice_excess for m in r.output_metrics]),
        ("D gradient on G outputs: period-2 line excess", lambda r: [m.octave_excess[0] for m in r.gradient_metrics]),
    ]
    colours = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (title, get) in zip(axes, panels):
        for c, (name, runs) in enumerate(results.items()):
            for j, run in enumerate(runs):
                ax.plot(run.steps, get(run), color=colours[c % len(colours)], alpha=0.6, lw=1,
                        label=f"D first layer {name}" if j == 0 else None)
        ax.axhline(1.0, color="grey", ls=":", label="no grid")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("training step")
        ax.set_yscale("log")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def _plain_log_axis(ax, which: str, values) -> None:
    """Make ``ax``'s ``which`` axis ("x" or "y") log over ``values`` and 1 (a 20% margin: dots stay whole),
    with plain-number ticks (:func:`gradviz.io.plotting.nice_log_ticks`: 0.2, 0.5, 1, 2, 5, ...), no minor labels."""
    v = [x for x in values if x is not None and math.isfinite(x) and x > 0] + [1.0]
    lo, hi = min(v) / 1.2, max(v) * 1.2
    getattr(ax, f"set_{which}scale")("log")
    getattr(ax, f"set_{which}lim")(lo, hi)
    axis = getattr(ax, f"{which}axis")
    axis.set_major_locator(matplotlib.ticker.FixedLocator(nice_log_ticks(lo, hi)))
    axis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x:g}"))
    axis.set_minor_locator(matplotlib.ticker.NullLocator())


def _period2_significant(run: Mapping) -> bool:
    m = run.get("metrics", run)
    return m["octave_p_adjusted"][0] < m.get("alpha", ALPHA)


def excess_figure(rows: Mapping[str, Mapping], title: str) -> Figure:
    """Lattice excess and period-2 excess per seed (dots) and their mean (bar), one row per name.

    Args:
        rows: ``{name: row}`` as ``study.json`` holds them (``generators.designs``): each row has
            ``runs`` (``GeneratorResult.to_dict()`` or ``CheckerboardMetrics.to_dict()`` per seed)
            and ``lattice_excess`` / ``period2_excess`` with ``values`` and ``mean``.
        title: the figure's title.

    Returns:
        the figure, two panels sharing the names.
    """
    names = list(rows)
    fig, axes = new_figure(1, 2, figsize=(12, 0.32 * len(names) + 1.6), sharey=True)
    panels = [(axes[0], "lattice_excess", "lattice excess, all periods (no test of its own)", None),
              (axes[1], "period2_excess", f"period-2 excess (filled: its Holm-adjusted p < {ALPHA:g})", _period2_significant)]
    for ax, key, label, significant in panels:
        for i, name in enumerate(names):
            vals = rows[name][key]["values"]
            for v, run in zip(vals, rows[name]["runs"]):
                filled = significant is None or significant(run)
                ax.plot(v, i, "o", ms=4, color="C0", mfc="C0" if filled else "white", alpha=0.8)
            ax.plot(rows[name][key]["mean"], i, "|", ms=12, color="k")
        ax.axvline(1.0, color="grey", ls=":")
        _plain_log_axis(ax, "x", [v for name in names for v in rows[name][key]["values"]])
        ax.set_xlabel(label + "; 1 = no grid, bar = mean", fontsize=8)
        ax.set_yticks(range(len(names)), names, fontsize=8)
        ax.invert_yaxis()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def gan_final_figure(summ: Mapping[str, Sequence[Mapping]], real: Mapping, steps: int) -> Figure:
    """Per arm (discriminator first layer), one dot per seed at the end of training, bar = geometric mean.

    Args:
        summ: ``{first layer: [per-run summary]}`` as ``study.json`` holds them (``gan.per_run``).
        real: the real patches' summary (``gan.data.real_reference``), drawn as a band of mean ± sd.
        steps: the number of training steps, for the titles.

    Returns:
        the figure, three panels.
    """
    panels = [("g_p2_end", f"G outputs: period-2 excess at step {steps}", "g_p2_end_p_adjusted"),
              ("g_p2_second_half_geomean", "G outputs: period-2 excess,\ngeometric mean over 2nd half (no test)", None),
              ("d_p2_end", f"D gradient on G outputs:\nperiod-2 excess at step {steps}", "d_p2_end_p_adjusted")]
    fig, axes = new_figure(1, 3, figsize=(11, 3.6))
    for ax, (key, title, p_key) in zip(axes, panels):
        for c, (first, runs) in enumerate(summ.items()):
            vals = [r[key] for r in runs]
            xs = [c + 0.08 * (i - 2) for i in range(len(vals))]
            for x, v, r in zip(xs, vals, runs):
                filled = p_key is not None and r[p_key] < ALPHA
                ax.plot([x], [v], "o", ms=6, color=f"C{c}", mfc=f"C{c}" if filled else "white", zorder=3)
            ax.plot([c - 0.25, c + 0.25], [math.exp(statistics.fmean(map(math.log, vals)))] * 2, color="k")
        band = []
        if key.startswith("g_"):
            m, s = real["period2_excess"]["mean"], real["period2_excess"]["sd"]
            band = [m - s, m + s]
            ax.axhspan(*band, color="green", alpha=0.15, label="real patches, mean ± sd")
            ax.legend(fontsize=7, loc="lower right")
        ax.axhline(1.0, color="grey", ls=":")
        ax.set_xticks(range(len(summ)), [f"D {f}" for f in summ])
        ax.set_xlim(-0.6, len(summ) - 0.4)
        _plain_log_axis(ax, "y", [r[key] for runs in summ.values() for r in runs] + band)
        ax.set_title(title, fontsize=9)
    fig.suptitle("GAN with a nearest resize-conv generator: one dot per seed (filled: the period-2 line's Holm-adjusted "
                 f"p < {ALPHA:g}), bar = geometric mean, dotted = no grid", fontsize=9)
    fig.tight_layout()
    return fig


def plot_overlap(prefixes: Sequence[OverlapPrefix], path: str | os.PathLike, dpi: int = OVERLAP_DPI) -> None:
    """Write :func:`overlap_figure` to ``path`` as a PNG marked as gradviz's (see :func:`save_png`).

    Args:
        prefixes: from :func:`gradviz.upsampling.overlap.overlap_prefixes`.
        path: the file.
        dpi: the resolution.

    Example:
        >>> import io
        >>> from gradviz.upsampling.overlap import overlap_prefixes, stack
        >>> buf = io.BytesIO(); plot_overlap(overlap_prefixes(stack(3, 2)), buf, dpi=20)
        >>> buf.getvalue()[:4]
        b'\x89PNG'
    """
    save_png(overlap_figure(prefixes), path, dpi=dpi, marked=True)


def plot_samples(results: Sequence[tuple[GeneratorResult, torch.Tensor]], path: str | os.PathLike, n_show: int = 6,
                 dpi: int = FIGURE_DPI, title: str = "generator samples at initialisation") -> None:
    """Write :func:`samples_figure` (``n_show`` images a row, ``title``) to ``path`` as PNG at ``dpi``."""
    save_png(samples_figure(results, n_show, title), path, dpi=dpi)


def plot_gradients(results: Sequence[DiscriminatorResult], path: str | os.PathLike, n_show: int = 4,
                   dpi: int = FIGURE_DPI) -> None:
    """Write :func:`gradients_figure` (``n_show`` gradients a row) to ``path`` as PNG at ``dpi``."""
    save_png(gradients_figure(results, n_show), path, dpi=dpi)


def plot_training(results: Mapping[str, Sequence[GanResult]], path: str | os.PathLike, dpi: int = FIGURE_DPI) -> None:
    """Write :func:`training_figure` to ``path`` as PNG at ``dpi``."""
    save_png(training_figure(results), path, dpi=dpi)
