"""Report stage: gradients of per-layer objectives over a set of images, accumulated into spectra
and checkerboard metrics, written as ``report.json``, ``report.md`` and PNG figures.

Data path: model -> taps -> gradients -> spectrum -> report. Spectra are accumulated per batch
(:class:`~gradviz.spectrum.SpectrumAccumulator`), so memory does not grow with the number of images.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

import gradviz
from gradviz import plots
from gradviz.errors import GradvizError
from gradviz.gradients import GRADIENT_SOURCES, attribution, input_gradients
from gradviz.images import ImageSet
from gradviz.budget import check_image_size, check_memory, report_bytes
from gradviz.models import check_finite_parameters, model_device
from gradviz.objectives import Objective, channel, class_logit, deepdream, layer_mean
from gradviz.outputs import atomic_dir, write_json
from gradviz.spectrum import CheckerboardMetrics, NonFiniteGradient, SpectrumAccumulator, radial_profile
from gradviz.taps import LOGITS, downsampling_stages, layer_table, resolve_layer, total_stride

# Objectives a report can put on each layer; the logits always use the top logit.
REPORT_OBJECTIVES = ("deepdream", "layer-mean", "channel")
# Layers assumed by the memory estimate when the default plan is used (5 stages and the logits, and slack).
DEFAULT_LAYER_COUNT = 8


@dataclass
class LayerSpec:
    """A layer to measure, the period S of its lattice, and the objective placed on it."""

    name: str
    stride: int
    objective: Objective


@dataclass
class LayerResult:
    """What a report keeps of one layer: the pooled metrics, the two averaged spectra and one example map."""

    name: str
    stride: int
    objective: str
    metrics: CheckerboardMetrics
    incoherent_power: torch.Tensor
    coherent_power: torch.Tensor
    example_gradient: torch.Tensor

    def to_dict(self) -> dict:
        d = {"name": self.name, "stride": self.stride, "objective": self.objective}
        d.update(self.metrics.to_dict())
        return d


@dataclass
class Report:
    """A gradient-spectrum report of one model on one set of images."""

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

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "weights": self.weights,
            "images": self.images,
            "n_images": self.n_images,
            "image_size": self.image_size,
            "seed": self.seed,
            "device": self.device,
            "source": self.source,
            "alpha": self.alpha,
            "versions": versions(),
            "notes": self.notes,
            "layers": [layer.to_dict() for layer in self.layers],
        }


def versions() -> dict[str, str]:
    import captum
    import torchvision

    return {
        "gradviz": gradviz.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "captum": captum.__version__,
    }


def make_layer_objective(kind: str, layer: str, index: int = 0) -> Objective:
    """The report's objective for ``layer``: ``deepdream``, ``layer-mean`` or ``channel`` (index)."""
    if layer == LOGITS:
        return class_logit("top")
    if kind == "deepdream":
        return deepdream(layer)
    if kind == "layer-mean":
        return layer_mean(layer)
    if kind == "channel":
        return channel(layer, index)
    raise GradvizError(f"unknown objective {kind!r}; valid: {', '.join(REPORT_OBJECTIVES)}")


def plan_layers(
    model: nn.Module,
    layers: list[str] | None,
    size: int,
    objective: str = "deepdream",
    channel_index: int = 0,
    include_logits: bool = True,
) -> list[LayerSpec]:
    """The layers a report measures: ``layers`` if given, else every downsampling stage's output
    (plus ``"logits"`` when ``include_logits``), each with its cumulative stride at ``size`` px."""
    if objective not in REPORT_OBJECTIVES:
        raise GradvizError(f"unknown objective {objective!r}; valid: {', '.join(REPORT_OBJECTIVES)}")
    stride_of = {row.name: row.stride for row in layer_table(model, size)}
    top = total_stride(model, size)
    if layers is None:
        names = [row.name for row in downsampling_stages(model, size)] + ([LOGITS] if include_logits else [])
    else:
        names = [resolve_layer(model, layer)[0] for layer in layers]
    specs = []
    for name in names:
        stride = top if name == LOGITS else stride_of.get(name)
        if stride is None:
            raise GradvizError(f"layer {name} does not output a 4D feature map; choose a convolutional layer")
        specs.append(LayerSpec(name, stride, make_layer_objective(objective, name, channel_index)))
    return specs


def measure(
    model: nn.Module,
    images: ImageSet | torch.Tensor,
    specs: list[LayerSpec],
    source: str = "gradient",
    batch_size: int = 8,
    seed: int = 0,
    progress: bool | None = None,
    alpha: float = 0.05,
) -> list[LayerResult]:
    """Gradients of every layer's objective for every image, accumulated into spectra and metrics.

    With ``source="gradient"`` all layers share one forward pass per batch; captum sources run
    per layer. ``images`` (a tensor or an :class:`ImageSet`, read batch by batch) stay on their
    device until their batch is moved to the model's. A gradient that is NaN or infinite is
    refused (the model's output is not finite); a layer whose gradient is zero for every image
    gets a note.
    """
    if source not in GRADIENT_SOURCES:
        raise GradvizError(f"unknown gradient source {source!r}; valid: {', '.join(GRADIENT_SOURCES)}")
    device = model_device(model)
    accs = {spec.name: SpectrumAccumulator(spec.stride) for spec in specs}
    examples: dict[str, torch.Tensor] = {}
    image_set = images if isinstance(images, ImageSet) else ImageSet(images, [""] * images.shape[0])
    start = 0
    bar = tqdm(total=len(image_set), desc="gradients", unit="img", disable=None if progress is None else not progress)
    with bar, closing(image_set.batches(batch_size)) as batches:  # closed here on an error, not at exit
        for batch in batches:
            batch = batch.to(device)
            if source == "gradient":
                grads = input_gradients(model, batch, {s.name: s.objective for s in specs})
            else:
                grads = {s.name: attribution(model, batch, s.objective, source, seed + start) for s in specs}
            for name, g in grads.items():
                try:
                    accs[name].add(g)
                except NonFiniteGradient as exc:
                    first = image_set.names[start + exc.bad[0]] or str(start + exc.bad[0])
                    raise GradvizError(f"the gradient at layer {name} is NaN or infinite for image {first} "
                                       f"({len(exc.bad)} of this batch): the model's output is not finite there") from None
                examples.setdefault(name, g[0].detach().cpu())
            start += batch.shape[0]
            bar.update(batch.shape[0])
    return [
        LayerResult(
            name=s.name,
            stride=s.stride,
            objective=s.objective.name,
            metrics=accs[s.name].metrics(seed=seed, alpha=alpha),
            incoherent_power=accs[s.name].incoherent_power().cpu(),
            coherent_power=accs[s.name].coherent_power().cpu(),
            example_gradient=examples[s.name],
        )
        for s in specs
    ]


def _fmt(x: float | None, digits: int = 4) -> str:
    return "n/a" if x is None else f"{x:.{digits}g}"


def _markdown(report: Report) -> str:
    d = report.to_dict()
    lines = [
        f"# Gradient-spectrum report: {report.model}",
        "",
        f"- weights: {report.weights}",
        f"- images: {report.images} ({report.n_images} images at {report.image_size} px)",
        f"- gradient source: {report.source}; seed {report.seed}; device {report.device}",
        f"- versions: " + ", ".join(f"{k} {v}" for k, v in d["versions"].items()),
        *[f"- note: {note}" for note in report.notes],
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
        "  bins within +-2 bins)), after removing the boundary cross (Moisan's periodic-plus-smooth",
        "  decomposition); bins on an axis are compared with bins on that axis. 1 = no grid, whatever the slope;",
        "  per octave j, over the bins of period exactly 2^j px.",
        "- *p* per octave: the share of 999 copies of the same bins, translated in frequency onto non-lattice",
        "  positions, whose statistic is at least as large; the layer's p is the smallest Holm-adjusted p over",
        "  the octaves. Verdict \"grid\" when p < alpha, naming the octaves whose adjusted p < alpha.",
        "- *shared tile cv*: the energy pattern (sum_c g_c^2 at each phase y mod S, x mod S, on the interior,",
        "  slow trend removed) that different images share, as a U-statistic over pairs of images (0 in",
        "  expectation without a shared pattern); its p from 999 draws that roll each image's tile by a random",
        "  phase.",
        "",
        "**How much of the gradient is grid?** Energy shares, no test: lattice share = lattice energy / all",
        "non-DC energy, by octave; coherent = lattice share of the mean gradient; hf off-lattice = non-lattice",
        "energy with max(|fy|, |fx|) >= 1/4 cycle/px. Tile max/min describes the pooled tile; it is mostly",
        "chance at large S and is not evidence.",
        "",
        f"## Results (alpha = {report.alpha})",
        "",
        "| layer | S | verdict | excess by octave (p) | lattice excess | shared tile cv (p) | lattice share | share by octave | coherent share | tile max/min | hf off-lattice |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for layer in d["layers"]:
        octaves = ", ".join(f"{_fmt(e, 3)} ({_fmt(p, 2)})" for e, p in zip(layer["octave_excess"], layer["octave_p_values"]))
        shares = ", ".join(_fmt(v, 2) for v in layer["octave_fractions"])
        tile = f"{_fmt(layer['shared_tile_cv'], 3)} ({_fmt(layer['tile_p_value'], 2)})" if layer["tile_p_value"] is not None \
            else f"n/a ({layer['tile_note']})"
        lines.append(
            f"| {layer['name']} | {layer['stride']} | {layer['verdict']} | {octaves} | {_fmt(layer['lattice_excess'], 3)} "
            f"| {tile} | {_fmt(layer['lattice_fraction'], 3)} | {shares} | {_fmt(layer['coherent_lattice_fraction'], 3)} "
            f"| {_fmt(layer['tile_contrast'], 3)} | {_fmt(layer['hf_offlattice_fraction'], 3)} |"
        )
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


def make_figures(report: Report) -> dict[str, "matplotlib.figure.Figure"]:
    """The report's figures as matplotlib figures, keyed by file name (``spectra.png``, ...)."""
    import matplotlib.pyplot as plt

    figures = {}

    layers = report.layers
    n = len(layers)
    fig, axes = plt.subplots(2, n, figsize=(2.1 * n, 4.4), squeeze=False)
    for i, layer in enumerate(layers):
        plots.plot_log_spectrum(axes[0, i], layer.incoherent_power, f"{layer.name} (S={layer.stride})\nmean of spectra", layer.stride)
        plots.plot_log_spectrum(axes[1, i], layer.coherent_power, "spectrum of mean", layer.stride)
    fig.suptitle(f"{report.model} ({report.weights}): log10 power of input gradients", fontsize=8)
    figures["spectra.png"] = fig

    fig, axes = plt.subplots(1, n, figsize=(2.1 * n, 2.3), squeeze=False)
    for i, layer in enumerate(layers):
        plots.plot_gradient_map(axes[0, i], layer.example_gradient, f"{layer.name} (S={layer.stride})")
    fig.suptitle(f"{report.model}: input gradient, first image", fontsize=8)
    figures["gradients.png"] = fig

    fig, axes = plt.subplots(1, n, figsize=(2.1 * n, 2.3), squeeze=False)
    for i, layer in enumerate(layers):
        m = layer.metrics
        plots.plot_tile(axes[0, i], m.tile, f"{layer.name}\nshared cv {_fmt(m.shared_tile_cv, 2)} (p {_fmt(m.tile_p_value, 2)})")
    fig.suptitle(f"{report.model}: pooled energy tile (mean 1); shared cv and its p from the interior", fontsize=8, y=1.08)
    figures["tiles.png"] = fig

    fig, ax = plt.subplots(figsize=(5, 3.2))
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

    ``out`` must be new, empty, or a folder gradviz wrote, and may not be or contain any of
    ``inputs`` (see :func:`gradviz.outputs.check_out_dir`). ``extra_json`` maps further file
    names to JSON-ready data written into the same folder.
    """
    with atomic_dir(out, inputs, command="report") as tmp:
        write_json(tmp / "report.json", report.to_dict())
        for name, data in (extra_json or {}).items():
            write_json(tmp / name, data)
        (tmp / "report.md").write_text(_markdown(report))
        for name, fig in make_figures(report).items():
            plots.save_figure(fig, tmp / name)
    return Path(out)


def check_report_fits(model: nn.Module, size: int, batch_size: int, n_layers: int = DEFAULT_LAYER_COUNT,
                      held_images: int = 0) -> None:
    """Refuse (one line) a report whose estimated memory exceeds what the model's device has free.

    ``held_images``: images held in memory at ``size`` px besides the batches (the built-in set).
    """
    device = model_device(model)
    check_image_size(size, device, batch=max(batch_size, held_images))
    need = report_bytes(model, size, batch_size, n_layers) + held_images * 3 * size * size * 4
    check_memory(need, device, f"a report at {size} px with batches of {batch_size}",
                 "choose a smaller --size or --batch-size")


def build_report(
    model: nn.Module,
    image_set: ImageSet,
    *,
    layers: list[str] | None = None,
    objective: str = "deepdream",
    channel_index: int = 0,
    source: str = "gradient",
    include_logits: bool | None = None,
    batch_size: int = 8,
    seed: int = 0,
    progress: bool | None = None,
    alpha: float = 0.05,
) -> Report:
    """Measure ``model`` on ``image_set`` and return a :class:`Report` (nothing is written).

    ``include_logits=None`` includes the logits unless the classifier alone is untrained
    (features-only weights); with random weights every layer is equally untrained.
    """
    if batch_size < 1:
        raise GradvizError(f"batch size must be >= 1, got {batch_size}")
    check_finite_parameters(model)
    size = image_set.size
    check_report_fits(model, size, min(batch_size, len(image_set)), len(layers) if layers else DEFAULT_LAYER_COUNT)
    top = total_stride(model, size)
    if size < top:
        raise GradvizError(f"images of {size} px are smaller than the network's stride {top}")
    trained = getattr(model, "classifier_trained", True)
    notes = []
    if include_logits is None:
        include_logits = trained or str(getattr(model, "weights", "")).startswith("random")
        if not include_logits and layers is None:
            notes.append("the classifier is untrained (features-only weights): logits left out (--logits adds them)")
    specs = plan_layers(model, layers, size, objective, channel_index, include_logits)
    results = measure(model, image_set, specs, source, batch_size, seed, progress, alpha)
    for r in results:
        if r.metrics.zero_gradient:
            notes.append(f"{r.name}: the gradient is zero for every image, so there is nothing to measure "
                         "(the objective does not depend on the input there, e.g. a channel that never fires)")
    return Report(
        model=getattr(model, "arch", type(model).__name__),
        weights=getattr(model, "weights", "custom"),
        images=image_set.source,
        n_images=len(image_set),
        image_size=size,
        seed=seed,
        device=str(model_device(model)),
        source=source,
        layers=results,
        notes=notes,
        alpha=alpha,
    )

