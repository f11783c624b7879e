"""Report, drawing half: a :class:`~gradviz.report.result.Report` turned into figures, a Markdown
page, and a folder written atomically (``report.json``, ``report.md``, PNG figures)."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

from matplotlib.figure import Figure

from gradviz.io import plotting as plots
from gradviz.io.outputs import atomic_dir, write_json
from gradviz.io.text import fmt
from gradviz.report.result import Report
from gradviz.report.table import markdown_table, settings_lines
from gradviz.spectrum import radial_profile
from gradviz.spectrum.lattice import HIGH_FREQUENCY_CUTOFF
from gradviz.spectrum.lines import BACKGROUND_HALF_WIDTH
from gradviz.spectrum.metrics import DEFAULT_NULL_DRAWS

__all__ = ["make_figures", "report_page", "write_report"]


def report_page(report: Report) -> str:
    """The report as a Markdown page: settings, what was measured, the table of readings, the figures."""
    d = report.to_dict()
    lines = [
        f"# Gradient-spectrum report: {report.model}",
        "",
        *[f"- {line}" for line in settings_lines(report, d["versions"])],
        "",
        "## What was measured",
        "",
        "For each layer, the gradient of its objective with respect to the RGB input pixels (in [0, 1]) was",
        "computed for every image, cropped at the top-left to a multiple of the layer's cumulative stride S,",
        "scaled to unit energy (every image counts the same), each channel's mean removed, and the 2D FFT",
        "(orthonormal) taken. Spectra and tiles are summed over images and channels.",
        "",
        "**Is there a grid?** A grid of period S puts power on the *lattice*: the bins (a/S, b/S).",
        "Gradients have sloped spectra, so each lattice bin is compared with its own neighbourhood:",
        "",
        "- *excess* = exp(mean over the lattice bins of log(P(bin) / geometric mean of P over the non-lattice",
        f"  bins within +-{BACKGROUND_HALF_WIDTH} bins)), after removing the boundary cross (Moisan's periodic-plus-smooth",
        "  decomposition); bins on an axis are compared with bins on that axis. 1 = no grid, whatever the slope;",
        "  per octave j, over the bins of period exactly 2^j px.",
        f"- *p* per octave: the share of {DEFAULT_NULL_DRAWS} copies of the same bins, translated in frequency onto non-lattice",
        "  positions, whose statistic is at least as large; the layer's p is the smallest Holm-adjusted p over",
        "  the octaves. Verdict \"grid\" when p < alpha, naming the octaves whose adjusted p < alpha.",
        "- *shared tile cv*: the energy pattern (sum_c g_c^2 at each phase y mod S, x mod S, on the interior,",
        "  slow trend removed) that different images share, as a U-statistic over pairs of images (0 in",
        f"  expectation without a shared pattern); its p from {DEFAULT_NULL_DRAWS} draws that roll each image's tile by a random",
        "  phase.",
        "",
        "**How much of the gradient is grid?** Energy shares, no test: lattice share = lattice energy / all",
        "non-DC energy, by octave; coherent = lattice share of the mean gradient; hf off-lattice = non-lattice",
        f"energy with max(|fy|, |fx|) >= {Fraction(HIGH_FREQUENCY_CUTOFF)} cycle/px. Tile max/min describes the pooled tile; it is mostly",
        "chance at large S and is not evidence.",
        "",
        f"## Results (alpha = {report.alpha})",
        "",
    ]
    lines += markdown_table(d["layers"])
    lines += [
        "",
        "Octave p-values are before the Holm adjustment; the verdict uses the adjusted ones. "
        f"Objective per layer: {', '.join(sorted({layer['objective'] for layer in d['layers']}))}.",
        "",
        "## Figures",
        "",
        "Metrics against depth:",
        "",
        "![metrics against depth](depth.png)",
        "",
        "Log power spectra per layer (top: mean of the spectra over images; bottom: spectrum of the mean",
        "gradient). Ticks mark the lattice frequencies k/S:",
        "",
        "![spectra](spectra.png)",
        "",
        "Gradient maps for the first image (channel sum, signed) and energy tiles:",
        "",
        "![gradients](gradients.png)",
        "",
        "![tiles](tiles.png)",
        "",
        "Radial profiles (for shape only: ring averages dilute lattice lines):",
        "",
        "![radial](radial.png)",
        "",
    ]
    return "\n".join(lines)


def make_figures(report: Report) -> dict[str, Figure]:
    """The report's figures as matplotlib figures, keyed by file name (``spectra.png``, ...)."""
    figures = {}

    layers = report.layers
    n = len(layers)
    fig, axes = plots.new_figure(2, n, figsize=(2.1 * n, 4.4), squeeze=False)
    for i, layer in enumerate(layers):
        plots.plot_log_spectrum(axes[0, i], layer.incoherent_power, f"{layer.name} (S={layer.stride})\nmean of spectra", layer.stride)
        plots.plot_log_spectrum(axes[1, i], layer.coherent_power, "spectrum of mean", layer.stride)
    fig.suptitle(f"{report.model} ({report.weights}): log10 power of input gradients", fontsize=8)
    figures["spectra.png"] = fig

    fig, axes = plots.new_figure(1, n, figsize=(2.1 * n, 2.3), squeeze=False)
    for i, layer in enumerate(layers):
        plots.plot_gradient_map(axes[0, i], layer.example_gradient, f"{layer.name} (S={layer.stride})")
    fig.suptitle(f"{report.model}: input gradient, first image", fontsize=8)
    figures["gradients.png"] = fig

    fig, axes = plots.new_figure(1, n, figsize=(2.1 * n, 2.3), squeeze=False)
    for i, layer in enumerate(layers):
        m = layer.metrics
        plots.plot_tile(axes[0, i], m.tile, f"{layer.name}\nshared cv {fmt(m.shared_tile_cv, 2)} (p {fmt(m.tile_p_value, 2)})")
    fig.suptitle(f"{report.model}: pooled energy tile (mean 1); shared cv and its p from the interior", fontsize=8, y=1.08)
    figures["tiles.png"] = fig

    fig, ax = plots.new_figure(figsize=(5, 3.2))
    for layer in layers:
        r, p = radial_profile(layer.incoherent_power)
        ax.semilogy(r.numpy(), p.numpy(), label=layer.name, lw=1)
    ax.set_xlabel("radius (cycles / pixel)")
    ax.set_ylabel("mean power")
    ax.legend(fontsize=6)
    figures["radial.png"] = fig

    figures["depth.png"] = plots.plot_depth([f"{layer.name}\nS={layer.stride}" for layer in layers], [layer.metrics for layer in layers])
    figures["depth.png"].suptitle(f"{report.model} ({report.weights}), {report.n_images} images", fontsize=8, y=1.04)
    return figures


def write_report(report: Report, out: str | Path, inputs: Sequence = (), extra_json: dict | None = None) -> Path:
    """Write ``report.json``, ``report.md`` and the PNG figures into ``out``, atomically.

    Args:
        report: what :func:`~gradviz.report.measure.build_report` returned.
        out: must be new, empty, or a folder gradviz wrote (see :func:`gradviz.io.outputs.check_out_dir`).
        inputs: paths ``out`` may not be or contain (the report's images and weights).
        extra_json: further file names mapped to JSON-ready data, written into the same folder.

    Returns:
        ``out`` as a path.

    Example:
        >>> import tempfile, torch
        >>> from gradviz.core.models import load_model
        >>> from gradviz.io.images import ImageSet
        >>> from gradviz.report.measure import build_report
        >>> model = load_model("vgg11", "random", seed=0, device="cpu")
        >>> images = ImageSet(torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)), ["a", "b"], "noise")
        >>> report = build_report(model, images, layers=["features.2"], progress=False)
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     sorted(p.name for p in write_report(report, Path(folder) / "r").iterdir())
        ['.gradviz.json', 'depth.png', 'gradients.png', 'radial.png', 'report.json', 'report.md', 'spectra.png', 'tiles.png']
    """
    with atomic_dir(out, inputs, command="report") as tmp:
        write_json(tmp / "report.json", report.to_dict())
        for name, data in (extra_json or {}).items():
            write_json(tmp / name, data)
        (tmp / "report.md").write_text(report_page(report))
        for name, fig in make_figures(report).items():
            plots.save_figure(fig, tmp / name)
    return Path(out)
