"""Report, drawing half: a :class:`~gradviz.report.result.Report` turned into figures, a Markdown
page, and a folder written atomically (``report.json``, ``report.md``, PNG figures)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure

from gradviz.io import plotting as plots
from gradviz.io.outputs import atomic_dir, write_json
from gradviz.report import figures as figs
from gradviz.report.page import report_page_html, report_view
from gradviz.report.result import Report
from gradviz.report.table import settings_lines
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
    """The report's figures as matplotlib figures, keyed by file name (drawn by :mod:`gradviz.report.figures`).

    ``headline.png`` (line excess per layer and octave against chance and the detection threshold; energy
    shares, a description), ``spectra.png`` (the spectrum the line test reads and that of the mean gradient,
    on one colour scale, lattice frequencies marked), ``gradients.png`` (the first image's gradient and the
    crop with the most lattice energy, pixel for pixel), ``tiles.png`` (energy tiles on one colour scale)
    and ``radial.png`` (radial profiles).

    Example:
        >>> from gradviz.report.result import _example_report
        >>> figures = make_figures(_example_report())
        >>> list(figures), figures["headline.png"].axes[0].get_ylabel()
        (['headline.png', 'spectra.png', 'gradients.png', 'tiles.png', 'radial.png'], 'line excess (1 = no grid)')
    """
    layers = report.layers
    names = [f"{layer.name} (S={layer.stride})" for layer in layers]
    who = f"{report.model}, weights {report.weights}"
    headline = figs.headline_figure([f"{layer.name}\nS = {layer.stride}" for layer in layers],
                                    [layer.metrics for layer in layers],
                                    f"{who}; {report.n_images} images ({report.images}) at {report.image_size} px")
    return {"headline.png": headline, "spectra.png": figs.spectra_figure(names, layers, who),
            "gradients.png": figs.gradients_figure(names, layers, who),
            "tiles.png": figs.tiles_figure(names, layers, who), "radial.png": figs.radial_figure(names, layers, who)}


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
        view = report_view(report.to_dict(), list(figures), extra_files=sorted(extra_json or {}))
        (tmp / "report.html").write_text(report_page_html(view))
    return Path(out)
