"""Report, drawing half: a :class:`~gradviz.report.result.Report` turned into figures, a Markdown
page, and a folder written atomically (``report.json``, ``report.md``, PNG figures)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure

from gradviz.io import plotting as plots
from gradviz.io.outputs import atomic_dir, write_json
from gradviz.io.text import fmt
from gradviz.report.page import report_page_html, report_view
from gradviz.report.result import Report
from gradviz.report.table import settings_lines
from gradviz.spectrum import radial_profile
from gradviz.spectrum.readings import definitions, markdown_table

__all__ = ["make_figures", "report_page", "write_report"]


def report_page(report: Report, figures: Sequence[str] = ()) -> str:
    """The report as a Markdown page: settings, what was measured, the table of readings, the figures.

    Args:
        report: the report.
        figures: the file names of the figures beside the page (linked in the order of :data:`gradviz.report.page.FIGURE_CAPTIONS`).
    """
    d = report.to_dict()
    lines = [
        f"# Gradient-spectrum report: {report.model}",
        "",
        *[f"- {line}" for line in settings_lines(report, d["versions"])],
        "",
        "## What was measured",
        "",
        *[f"- **{term}**: {text}" for term, text in definitions()],
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
    ]
    for figure in report_view(d, figures).figures:
        lines += [f"{figure.caption or figure.name}", "", f"![{figure.name}]({figure.src})", ""]
    return "\n".join(lines)


def make_figures(report: Report) -> dict[str, Figure]:
    """The report's figures as matplotlib figures, keyed by file name.

    ``headline.png`` (line excess per layer and octave against chance and the detection threshold; energy
    shares), ``spectra.png`` (log power on one colour scale, lattice frequencies marked), ``gradients.png``
    (the first image's gradient and a crop of it pixel for pixel), ``tiles.png`` (energy tiles on one colour
    scale) and ``radial.png`` (radial profiles).

    Example:
        >>> from gradviz.report.result import _example_report
        >>> figures = make_figures(_example_report())
        >>> list(figures), figures["headline.png"].axes[0].get_ylabel()
        (['headline.png', 'spectra.png', 'gradients.png', 'tiles.png', 'radial.png'], 'line excess (1 = no grid)')
    """
    layers, n = report.layers, len(report.layers)
    names = [f"{layer.name} (S={layer.stride})" for layer in layers]
    who = f"{report.model}, weights {report.weights}"
    figures = {"headline.png": plots.headline_figure(
        [f"{layer.name}\nS = {layer.stride}" for layer in layers], [layer.metrics for layer in layers],
        f"{who}; {report.n_images} images ({report.images}) at {report.image_size} px")}

    powers = [p for layer in layers for p in (layer.incoherent_power, layer.coherent_power)]
    limits = plots.log_power_limits(powers)
    fig, axes = plots.new_figure(2, n, figsize=(2.2 * n + 1.6, 5.4), squeeze=False, layout="constrained")
    for i, layer in enumerate(layers):
        image = plots.plot_log_spectrum(axes[0, i], layer.incoherent_power, names[i], layer.stride, limits)
        plots.plot_log_spectrum(axes[1, i], layer.coherent_power, "", layer.stride, limits)
        axes[1, i].set_xlabel("fx (cycles/px)", fontsize=plots.SMALL_TEXT_SIZE)
    for ax in axes[:, 1:].flat:
        ax.tick_params(labelleft=False)
    for ax in axes[0]:
        ax.tick_params(labelbottom=False)
    axes[0, 0].set_ylabel("mean of the images' spectra\nfy (cycles/px)", fontsize=plots.SMALL_TEXT_SIZE)
    axes[1, 0].set_ylabel("spectrum of the mean gradient\nfy (cycles/px)", fontsize=plots.SMALL_TEXT_SIZE)
    plots.add_colourbar(fig, image, axes, "log10(bin power / total power of its spectrum)")
    fig.suptitle(f"{who}: power spectra of the input gradients (cyan marks: the lattice k/S)",
                 fontsize=plots.TEXT_SIZE + 1, wrap=True)
    figures["spectra.png"] = fig

    fig, axes = plots.new_figure(2, n, figsize=(2.2 * n + 1.6, 5.2), squeeze=False, layout="constrained")
    for i, layer in enumerate(layers):
        y, x = plots.crop_origin(layer.example_gradient)
        crop = (y, x, plots.CROP_SIZE)
        image = plots.plot_gradient_map(axes[0, i], layer.example_gradient, names[i], crop=crop)
        plots.plot_gradient_map(axes[1, i], layer.example_gradient, f"crop at y={y}, x={x}", crop=crop, zoom=True)
    plots.add_colourbar(fig, image, axes, f"gradient / its {plots.GRADIENT_PERCENTILE:g}th percentile of |g|")
    fig.suptitle(f"{who}: input gradient of the first image (channel sum). Bottom: the boxed "
                 f"{plots.CROP_SIZE}x{plots.CROP_SIZE} px crop with the most energy, one square per pixel",
                 fontsize=plots.TEXT_SIZE + 1, wrap=True)
    figures["gradients.png"] = fig

    limits = plots.tile_limits([layer.metrics.tile for layer in layers])
    fig, axes = plots.new_figure(1, n, figsize=(2.2 * n + 1.6, 2.9), squeeze=False, layout="constrained")
    for i, layer in enumerate(layers):
        m = layer.metrics
        tested = m.tile_p_value == m.tile_p_value  # NaN when not tested (why: tile_note in report.json)
        shared = f"shared cv {fmt(m.shared_tile_cv, 2)} (p {fmt(m.tile_p_value, 2)})" if tested else "tile not tested"
        image = plots.plot_tile(axes[0, i], m.tile, f"{names[i]}\n{shared}", limits)
    plots.add_colourbar(fig, image, axes, "energy / mean (log scale)")
    fig.suptitle(f"{who}: pooled energy tile (energy at each phase y mod S, x mod S); shared cv and its p "
                 "from the interior", fontsize=plots.TEXT_SIZE + 1, wrap=True)
    figures["tiles.png"] = fig

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
    figures["radial.png"] = fig
    return figures


def write_report(report: Report, out: str | Path, inputs: Sequence = (), extra_json: dict | None = None) -> Path:
    """Write ``report.html`` (the page to open), ``report.json``, ``report.md`` and the PNG figures into ``out``,
    atomically.

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
        ['.gradviz.json', 'gradients.png', 'headline.png', 'radial.png', 'report.html', 'report.json', 'report.md', 'spectra.png', 'tiles.png']
    """
    with atomic_dir(out, inputs, command="report") as tmp:
        write_json(tmp / "report.json", report.to_dict())
        for name, data in (extra_json or {}).items():
            write_json(tmp / name, data)
        figures = make_figures(report)
        for name, fig in figures.items():
            plots.save_figure(fig, tmp / name)
        (tmp / "report.md").write_text(report_page(report, list(figures)))
        (tmp / "report.html").write_text(report_page_html(report_view(report.to_dict(), list(figures))))
    return Path(out)
