"""What a report holds: :class:`LayerResult` per layer and the :class:`Report`, with the views a
notebook uses (short ``repr``, ``_repr_html_``, :meth:`Report.to_pandas`, :meth:`Report.plot`).

Measuring (:mod:`gradviz.report.measure`) makes these objects and never imports matplotlib. The
figures are drawn by :func:`gradviz.report.render.make_figures`; :meth:`Report.plot` reaches it
through the package's lazy export table (``gradviz.make_figures``), so matplotlib is loaded only
when a figure is asked for, and no gradviz module is imported inside a function.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field

import torch

import gradviz
from gradviz.errors import GradvizError
from gradviz.report.table import report_html
from gradviz.spectrum import CheckerboardMetrics, checkerboard_metrics

__all__ = ["LayerResult", "Report", "short", "versions"]

# The longest a text field is shown in a repr (longer ones are cut with "...").
REPR_FIELD = 60
# Layers a Report's repr names; further ones are counted.
REPR_LAYERS = 4


def short(text: object, limit: int = REPR_FIELD) -> str:
    """``str(text)`` cut to ``limit`` characters (ending in ``...`` when cut).

    Example:
        >>> short("abc"), short("x" * 10, 6)
        ('abc', 'xxx...')
    """
    s = str(text)
    return s if len(s) <= limit else s[: limit - 3] + "..."


@dataclass(repr=False)
class LayerResult:
    """What a report keeps of one layer: the pooled metrics, the two averaged spectra and one example map.

    Attributes:
        name: the layer's dotted name (``"logits"`` for the output).
        stride: its cumulative stride: the period S the metrics use.
        objective: the name of the objective whose gradient was measured.
        metrics: the pooled :class:`~gradviz.spectrum.CheckerboardMetrics`.
        incoherent_power: the mean of the images' power spectra, (H', W').
        coherent_power: the power spectrum of the mean gradient, (H', W').
        example_gradient: the first image's gradient, (3, H, W).
        periodic_power: the mean of the images' spectra of their periodic components (the boundary cross
            removed): what the line test reads, (H', W'); None when not kept.
    """

    name: str
    stride: int
    objective: str
    metrics: CheckerboardMetrics
    incoherent_power: torch.Tensor
    coherent_power: torch.Tensor
    example_gradient: torch.Tensor
    periodic_power: torch.Tensor | None = None

    def to_dict(self) -> dict:
        """``name``, ``stride``, ``objective`` and the metrics' fields (JSON-ready)."""
        d = {"name": self.name, "stride": self.stride, "objective": self.objective}
        d.update(self.metrics.to_dict())
        return d

    def __repr__(self) -> str:
        m = self.metrics
        return (f"LayerResult({short(self.name, 40)!r}, S={self.stride}, objective={short(self.objective, 40)!r}, "
                f"verdict={short(m.verdict, 100)!r}, lattice_share={m.lattice_fraction:.3g})")


@dataclass(repr=False)
class Report:
    """A gradient-spectrum report of one model on one set of images.

    In a notebook, the report shows as its table (``_repr_html_``); :meth:`to_pandas` gives one
    row per layer and :meth:`plot` the figures. ``report.layers[i].metrics`` holds every number.

    Attributes:
        model, weights: how the model is named; normalize: the normalisation inside it.
        images: where the images came from; n_images, image_size: how many, at what size.
        seed, device, source, alpha: the settings the numbers were computed with.
        layers: one :class:`LayerResult` per measured layer, shallowest first.
        notes: what the reader should know (a layer left out, the model switched to eval mode, ...).
        distributed: ``{"world_size": N, "images_per_rank": [...]}`` for a run over several processes, else None.
        precision: the arithmetic of the network's passes (:data:`~gradviz.core.precision.PRECISIONS`).
    """

    model: str
    weights: str
    images: str
    n_images: int
    image_size: int
    seed: int
    device: str
    source: str
    layers: list[LayerResult]
    notes: list[str] = field(default_factory=list)
    alpha: float = 0.05
    normalize: str = ""
    distributed: dict | None = None
    precision: str = "float32"

    def to_dict(self) -> dict:
        """The report as JSON-ready data (what ``report.json`` holds; ``distributed`` only for a distributed run)."""
        extra = {} if self.distributed is None else {"distributed": self.distributed}
        return {
            "model": self.model,
            "weights": self.weights,
            "normalize": self.normalize,
            "images": self.images,
            "n_images": self.n_images,
            "image_size": self.image_size,
            "seed": self.seed,
            "device": self.device,
            "source": self.source,
            "alpha": self.alpha,
            "precision": self.precision,
            "versions": versions(),
            "notes": self.notes,
            "layers": [layer.to_dict() for layer in self.layers],
            **extra,
        }

    def __repr__(self) -> str:
        grids = sum(layer.metrics.grid_detected for layer in self.layers)
        names = ", ".join(f"{short(layer.name, 24)} S={layer.stride}" for layer in self.layers[:REPR_LAYERS])
        more = f", +{len(self.layers) - REPR_LAYERS} more" if len(self.layers) > REPR_LAYERS else ""
        notes = f", {len(self.notes)} note{'s' * (len(self.notes) != 1)}" if self.notes else ""
        return (f"Report({short(self.model, 30)!r}, {short(self.weights, 30)!r}, {self.n_images} images at "
                f"{self.image_size} px, grid in {grids} of {len(self.layers)} layers [{names}{more}]{notes})")

    def _repr_html_(self) -> str:
        """The settings, notes and table of readings of the Markdown page, as HTML (Jupyter's view)."""
        return report_html(self)

    def to_pandas(self):
        """One row per layer with the columns of ``LayerResult.to_dict()`` (None or NaN where the JSON has null).

        Returns:
            A ``pandas.DataFrame`` (pandas is optional: a one-line error when it is not installed).

        Example (with pandas installed)::

            df = report.to_pandas()
            df[["name", "stride", "verdict", "lattice_excess"]]
        """
        try:
            import pandas
        except ImportError:
            raise GradvizError("Report.to_pandas needs pandas, which is not installed; valid: pip install pandas, "
                               "or use [layer.to_dict() for layer in report.layers]") from None
        return pandas.DataFrame([layer.to_dict() for layer in self.layers])

    def plot(self) -> dict:
        """The report's figures, keyed by file name (``headline.png``, ``spectra.png``, ``gradients.png``,
        ``tiles.png``, ``radial.png``): :func:`gradviz.report.render.make_figures`.

        The figures are ``matplotlib.figure.Figure`` objects made without pyplot: the global backend
        and pyplot's figure list are untouched (show one with ``display(figures["spectra.png"])``).

        Returns:
            ``{file name: Figure}``.

        Example:
            >>> figures = _example_report().plot()
            >>> sorted(figures), type(figures["spectra.png"]).__name__
            (['gradients.png', 'headline.png', 'radial.png', 'spectra.png', 'tiles.png'], 'Figure')
        """
        return gradviz.make_figures(self)


def versions() -> dict[str, str]:
    """The versions a report records: gradviz, Python, torch, torchvision, captum."""
    import captum
    import torchvision

    return {
        "gradviz": gradviz.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "captum": captum.__version__,
    }


def _example_report() -> Report:
    """A one-layer report made from two noise gradients of 32 px (no model), for the examples."""
    g = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) - 0.5
    m = checkerboard_metrics(g, 2, n_null=200)
    layer = LayerResult("features.2", 2, "deepdream(features.2)", m, g[0].square().sum(0), g[0].square().sum(0), g[0])
    return Report("vgg11", "random (seed 0)", "noise", 2, 32, 0, "cpu", "gradient", [layer])
