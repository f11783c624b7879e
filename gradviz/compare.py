"""Compare downsampling variants of one network: checkerboard metrics, fairness, kernel predictions.

For every variant (:mod:`gradviz.downsampling`) and every stage layer ``L`` with cumulative
stride ``S`` (:func:`gradviz.downsampling.stage_layers`, or the user's ``layers``):

- the input gradient of ``deepdream(L) = mean a_L**2`` is accumulated over the images with a
  :class:`~gradviz.spectrum.SpectrumAccumulator` of period ``S`` (memory constant in the
  number of images), giving the core checkerboard metrics;
- **fairness**: ``cos(a_L^variant, a_L^original)`` per image (activations flattened), mean and
  minimum over the images; near 1 means the variant still computes what the trained network
  computes, so a cleaner gradient is not a broken network;
- **lines**: at the stage of stride ``p`` the line excess at bins of period exactly ``p`` over their
  local background, with its p-value (:mod:`gradviz.stats`), beside what the kernels of the layers
  making lines of period ``p`` predict (:mod:`gradviz.kernels`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from gradviz.downsampling import build_variant, describe_variant, stage_layers
from gradviz.errors import GradvizError
from gradviz.gradients import input_gradients
from gradviz.images import ImageSet
from gradviz.kernels import KernelPrediction, predict_lines
from gradviz.models import model_device
from gradviz.objectives import deepdream
from gradviz.outputs import atomic_dir, json_ready, write_json
from gradviz.spectrum import CheckerboardMetrics, SpectrumAccumulator
from gradviz.taps import Taps, layer_table

# Images per forward/backward pass: bounds memory; the results do not depend on it.
BATCH_SIZE = 4
# Smallest image side: the deepest blur pool pads by 2 with reflection, which needs 3 pixels there.
MIN_SIZE = 64
# Every stage period must divide the image side so that all variants keep the original's shapes.
SIZE_MULTIPLE = 32
OBJECTIVE = "deepdream (mean squared activation of the stage)"


@dataclass
class StageResult:
    """One variant at one stage: checkerboard metrics of its input gradients and its fairness."""

    layer: str
    stride: int
    cosine_mean: float
    cosine_min: float
    metrics: CheckerboardMetrics

    def _own(self, values: list[float]) -> float:
        j = self.stride.bit_length() - 2  # octave index of period == stride
        return values[j] if 0 <= j < len(values) else math.nan

    @property
    def own_line_excess(self) -> float:
        """Line excess at period exactly ``stride`` (the newest line) over its local background."""
        return self._own(self.metrics.octave_excess)

    @property
    def own_line_p(self) -> float:
        """p-value of :attr:`own_line_excess` (before any adjustment)."""
        return self._own(self.metrics.octave_p_values)

    def to_dict(self) -> dict:
        return {
            "layer": self.layer,
            "stride": self.stride,
            "cosine_mean": self.cosine_mean,
            "cosine_min": self.cosine_min,
            "own_line_excess": json_ready(self.own_line_excess),
            "own_line_p": json_ready(self.own_line_p),
            "metrics": self.metrics.to_dict(),
        }


@dataclass
class VariantResult:
    """All stages of one variant, its kernel predictions, and the arrays its figures need."""

    name: str
    description: str
    stages: list[StageResult]
    predictions: list[KernelPrediction]
    example_gradients: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)  # first image
    spectra: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)  # mean power per stage

    def predicted_line(self, period: int) -> float | None:
        """Mean ``P(w_q) / P(0)`` over harmonics and over the layers whose lines have ``period``."""
        values = [
            v
            for p in self.predictions
            if p.line_period == period and p.harmonic_to_dc
            for v in p.harmonic_to_dc.values()
            if v is not None
        ]
        return sum(values) / len(values) if values else None

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            "stages": [s.to_dict() for s in self.stages],
            "predictions": [p.to_dict() for p in self.predictions],
            "lines": [
                {"period": s.stride, "measured_excess": json_ready(s.own_line_excess), "measured_p": json_ready(s.own_line_p),
                 "predicted_to_dc": self.predicted_line(s.stride)}
                for s in self.stages
            ],
        }


@dataclass
class Comparison:
    """A whole comparison: which model, weights and images, and one result per variant."""

    arch: str
    weights: str
    images: str
    image_names: list[str]
    size: int
    seed: int
    variants: list[VariantResult]
    objective: str = OBJECTIVE

    def to_dict(self) -> dict:
        return {
            "arch": self.arch,
            "weights": self.weights,
            "images": self.images,
            "image_names": self.image_names,
            "size": self.size,
            "seed": self.seed,
            "objective": self.objective,
            "variants": [v.to_dict() for v in self.variants],
        }


# Significant digits kept in comparison.json (keeps the file small; far below the run-to-run noise).
JSON_DIGITS = 6


def check_size(size: int) -> None:
    if size < MIN_SIZE or size % SIZE_MULTIPLE:
        raise GradvizError(f"--size must be a multiple of {SIZE_MULTIPLE} and at least {MIN_SIZE}, got {size}")


def resolve_stages(model: nn.Module, size: int, layers: list[str] | None = None) -> list[tuple[str, int]]:
    """``(layer, stride)`` to measure: the model's stages, or ``layers`` with their strides at ``size``."""
    if not layers:
        return stage_layers(model, size)
    table = {r.name: r for r in layer_table(model, size)}
    out = []
    for layer in layers:
        if layer not in table:
            raise GradvizError(f"unknown layer {layer!r}; valid: e.g. {', '.join(n for n, _ in stage_layers(model, size))}")
        s = table[layer].stride
        if s is None or s < 2 or s & (s - 1):
            raise GradvizError(f"layer {layer} has stride {s}; valid: layers at a stride of 2, 4, 8, ...")
        out.append((layer, s))
    return out


def _check_shapes(name: str, acts: dict[str, torch.Tensor], ref: dict[str, torch.Tensor]) -> None:
    for layer, a in acts.items():
        if a.shape != ref[layer].shape:
            raise GradvizError(
                f"variant {name!r} gives layer {layer} shape {tuple(a.shape[1:])}, the original "
                f"{tuple(ref[layer].shape[1:])}; valid: layers at the stage outputs (see --help)"
            )


def measure_variant(
    original: nn.Module,
    variant: nn.Module,
    name: str,
    images: ImageSet | torch.Tensor,
    stages: list[tuple[str, int]],
    batch_size: int = BATCH_SIZE,
    progress: tqdm | None = None,
    seed: int = 0,
) -> tuple[list[StageResult], dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Stage results of one variant, the first image's gradient per stage, and the mean power spectra.

    ``images``: a tensor or an :class:`ImageSet` (read batch by batch)."""
    device = model_device(variant)
    images = images if isinstance(images, ImageSet) else ImageSet(images, [""] * images.shape[0])
    layers = [layer for layer, _ in stages]
    accs = {layer: SpectrumAccumulator(stride) for layer, stride in stages}
    cos_sum = dict.fromkeys(layers, 0.0)
    cos_min = dict.fromkeys(layers, math.inf)
    objectives = {layer: deepdream(layer) for layer in layers}
    examples: dict[str, torch.Tensor] = {}
    with closing(images.batches(batch_size)) as batches:  # closed here on an error, not at exit
        for batch_index, x in enumerate(batches):
            x = x.to(device)
            with torch.no_grad(), Taps(original, layers, stop=True) as t_ref, Taps(variant, layers, stop=True) as t_var:
                ref, acts = t_ref.forward(x), t_var.forward(x)
            _check_shapes(name, acts, ref)
            for layer in layers:
                cos = F.cosine_similarity(acts[layer].flatten(1).double(), ref[layer].flatten(1).double(), dim=1)
                cos_sum[layer] += float(cos.sum())
                cos_min[layer] = min(cos_min[layer], float(cos.min()))
            grads = input_gradients(variant, x, objectives)
            for layer in layers:
                accs[layer].add(grads[layer])
                if batch_index == 0:
                    examples[layer] = grads[layer][0].detach().cpu()
            if progress is not None:
                progress.update(len(x))
    results = [
        StageResult(layer, stride, cos_sum[layer] / len(images), cos_min[layer], accs[layer].metrics(seed=seed))
        for layer, stride in stages
    ]
    spectra = {layer: acc.incoherent_power().cpu() for layer, acc in accs.items()}
    return results, examples, spectra


def compare_variants(
    model: nn.Module,
    names: list[str],
    images: ImageSet,
    seed: int = 0,
    layers: list[str] | None = None,
    batch_size: int = BATCH_SIZE,
) -> Comparison:
    """Measure every variant ``names`` of ``model`` on ``images`` (see the module docstring)."""
    size = images.size
    check_size(size)
    stages = resolve_stages(model, size, layers)
    results = []
    with tqdm(total=len(names) * len(images), desc=f"compare {getattr(model, 'arch', '')}", unit="img",
              disable=None) as bar:
        for name in names:
            variant = build_variant(model, name)
            stage_results, examples, spectra = measure_variant(model, variant, name, images, stages, batch_size, bar, seed)
            results.append(
                VariantResult(name, describe_variant(model, name), stage_results, predict_lines(variant, size), examples, spectra)
            )
    return Comparison(
        getattr(model, "arch", "custom"), getattr(model, "weights", "custom"), images.source, list(images.names),
        size, seed, results,
    )


# ---------------------------------------------------------------- report: JSON, Markdown, figures


def _fmt(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{digits}g}"


def markdown_report(comp: Comparison, figures: list[str]) -> str:
    """A readable page: settings, one table per stage quantity, the kernel predictions, the figures."""
    lines = [
        f"# Downsampling comparison: {comp.arch}",
        "",
        f"- weights: {comp.weights}",
        f"- images: {comp.images} ({len(comp.image_names)} images, {comp.size} px)",
        f"- objective: {comp.objective}; seed {comp.seed}",
        "",
        "## Variants",
        "",
        *[f"- `{v.name}`: {v.description}" for v in comp.variants],
        "",
        "## Per variant and stage",
        "",
        "cos = mean cosine similarity of the stage's activations to the original's (min over images in brackets); "
        "verdict = the line test at alpha 0.05 (Holm over the octaves); lattice excess = power of the lattice bins over "
        "their local background (1 = no grid), p in brackets; own line = the same at period = stride only; shared tile "
        "cv = the energy tile the images share (interior), p in brackets; tile max/min = the pooled tile, a description "
        "only; hf off = top-octave off-lattice share of the energy. Every image counts the same (unit energy).",
        "",
    ]
    stages = comp.variants[0].stages
    header = "| variant | " + " | ".join(f"{s.layer} (S={s.stride})" for s in stages) + " |"
    sep = "|---|" + "---|" * len(stages)
    for title, cell in [
        ("cos (min)", lambda s: f"{s.cosine_mean:.3f} ({s.cosine_min:.3f})"),
        ("verdict", lambda s: s.metrics.verdict),
        ("lattice excess (p)", lambda s: f"{_fmt(s.metrics.lattice_excess)} ({_fmt(s.metrics.p_value, 2)})"),
        ("own line excess (p)", lambda s: f"{_fmt(s.own_line_excess)} ({_fmt(s.own_line_p, 2)})"),
        ("shared tile cv (p)", lambda s: f"{_fmt(s.metrics.shared_tile_cv)} ({_fmt(s.metrics.tile_p_value, 2)})"),
        ("tile max/min (description)", lambda s: _fmt(s.metrics.tile_contrast)),
        ("hf off-lattice fraction", lambda s: f"{s.metrics.hf_offlattice_fraction:.3f}"),
    ]:
        lines += [f"### {title}", ""]
        lines += [header, sep]
        lines += [f"| {v.name} | " + " | ".join(cell(s) for s in v.stages) + " |" for v in comp.variants]
        lines.append("")
    lines += [
        "### Lattice energy per octave (fraction of non-DC energy, period 2, 4, ...)",
        "",
        "| variant | stage | " + " | ".join(f"p{2**j}" for j in range(1, 6)) + " |",
        "|---|---|" + "---|" * 5,
    ]
    for v in comp.variants:
        for s in v.stages:
            octs = [f"{x:.4f}" for x in s.metrics.octave_fractions] + [""] * (5 - len(s.metrics.octave_fractions))
            lines.append(f"| {v.name} | {s.layer} | " + " | ".join(octs) + " |")
    lines += [
        "",
        "## Where the lines come from",
        "",
        "Per strided layer: the period of its lines in pixels, what its kernel predicts for a constant upstream "
        "gradient (mean over harmonics of P(w_q)/P(0)) and for white-noise upstream (polyphase tile max/min; "
        "inf: a phase gets no gradient, as for a 1x1 stride-2 convolution), and the measured energy at that "
        "period: its excess over the local background (p) at the stage of that stride.",
        "",
        "| variant | layer | kind | period | predicted line/DC | predicted tile max/min | measured line excess (p) |",
        "|---|---|---|---|---|---|---|",
    ]
    for v in comp.variants:
        measured = {s.stride: f"{_fmt(s.own_line_excess)} ({_fmt(s.own_line_p, 2)})" for s in v.stages}
        for p in v.predictions:
            mean_h = None
            if p.harmonic_to_dc:
                vals = [x for x in p.harmonic_to_dc.values() if x is not None]
                mean_h = sum(vals) / len(vals) if vals else None
            tile = "data-dependent" if p.tile is None else ("inf" if p.tile_contrast is None else _fmt(p.tile_contrast))
            line = "data-dependent" if p.harmonic_to_dc is None else _fmt(mean_h)
            lines.append(
                f"| {v.name} | {p.layer} | {p.kind} | {p.line_period} | {line} | {tile} | {measured.get(p.line_period, 'n/a')} |"
            )
    lines += ["", "## Figures", ""] + [f"![{f}]({f})" for f in figures] + [""]
    return "\n".join(lines)


def plot_stage(comp: Comparison, layer: str, path: Path, dpi: int = 80) -> None:
    """Rows: variants; columns: first image's gradient, mean log power spectrum, energy tile."""
    import matplotlib.pyplot as plt

    from gradviz.plots import plot_gradient_map, plot_log_spectrum, plot_tile, save_figure

    n = len(comp.variants)
    fig, axes = plt.subplots(n, 3, figsize=(5.4, 1.8 * n), squeeze=False)
    for row, v in zip(axes, comp.variants):
        stage = next(s for s in v.stages if s.layer == layer)
        plot_gradient_map(row[0], v.example_gradients[layer], f"{v.name}: gradient ({comp.image_names[0]})")
        plot_log_spectrum(row[1], v.spectra[layer], f"log10 power, excess {_fmt(stage.metrics.lattice_excess)} (p {_fmt(stage.metrics.p_value, 2)})", stride=stage.stride)
        tile = torch.tensor(stage.metrics.tile)
        plot_tile(row[2], tile, f"shared cv {_fmt(stage.metrics.shared_tile_cv, 2)} (p {_fmt(stage.metrics.tile_p_value, 2)})")
    fig.suptitle(f"{comp.arch} ({comp.weights}), deepdream({layer}), stride {stage.stride}", fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=dpi)


def plot_summary(comp: Comparison, path: Path, dpi: int = 80) -> None:
    """Six panels against stage stride: lattice excess, own line excess, predicted line/DC, shared tile cv,
    hf off-lattice share, cos. Filled markers: significant at alpha (Holm-adjusted for the lattice, raw for
    the own line, tile p for the tile); open: not."""
    import matplotlib.pyplot as plt

    from gradviz.plots import save_figure

    fig, axes = plt.subplots(2, 3, figsize=(10, 5.6))
    panels = [
        ("lattice excess over local background (1 = none)", lambda v, s: s.metrics.lattice_excess, True,
         lambda s: s.metrics.grid_detected),
        ("line excess at period = stride", lambda v, s: s.own_line_excess, True, lambda s: s.own_line_p < s.metrics.alpha),
        ("kernel-predicted line / DC at that period", lambda v, s: v.predicted_line(s.stride), False, None),
        ("shared energy tile cv (interior)", lambda v, s: s.metrics.shared_tile_cv, False, lambda s: s.metrics.tile_detected),
        ("high-frequency off-lattice share", lambda v, s: s.metrics.hf_offlattice_fraction, False, None),
        ("cosine similarity to the original", lambda v, s: s.cosine_mean, False, None),
    ]
    for ax, (title, fn, log, significant) in zip(axes.flat, panels):
        for i, v in enumerate(comp.variants):
            xs = [s.stride for s in v.stages]
            ys = [fn(v, s) for s in v.stages]
            ys = [math.nan if y is None or not math.isfinite(y) else y for y in ys]
            ax.plot(xs, ys, "-", lw=1, color=f"C{i}", label=v.name)
            for x, y, s in zip(xs, ys, v.stages):
                filled = significant is None or significant(s)
                ax.plot([x], [y], "o", ms=3, color=f"C{i}", mfc=f"C{i}" if filled else "white")
        if log:
            ax.axhline(1.0, color="k", ls="--", lw=0.6)
        ax.set_xscale("log", base=2)
        if log:
            ax.set_yscale("log")
        ax.set_title(title, fontsize=8)
        ax.set_xlabel("stage stride (pixels)", fontsize=7)
        ax.tick_params(labelsize=6)
    axes.flat[0].legend(fontsize=6)
    fig.suptitle(f"{comp.arch} ({comp.weights}); {len(comp.image_names)} images at {comp.size} px", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, dpi=dpi)


def write_report(comp: Comparison, out: str | Path, stage_figures: list[str] | None = None, dpi: int = 80,
                 inputs: Sequence = ()) -> list[str]:
    """Write comparison.json, report.md, summary.png and stage-<layer>.png into ``out``, atomically.

    ``stage_figures``: the stage layers to draw (default: all). ``out`` must be new, empty or a
    folder gradviz wrote, and may not be or contain any of ``inputs``. Returns the file names written.
    """
    layers = [s.layer for s in comp.variants[0].stages]
    chosen = layers if stage_figures is None else [l for l in layers if l in stage_figures]
    with atomic_dir(out, inputs, command="compare") as tmp:
        figures = ["summary.png"]
        plot_summary(comp, tmp / "summary.png", dpi)
        for layer in chosen:
            name = f"stage-{layer.replace('.', '_')}.png"
            plot_stage(comp, layer, tmp / name, dpi)
            figures.append(name)
        write_json(tmp / "comparison.json", json_ready(comp.to_dict(), JSON_DIGITS))
        (tmp / "report.md").write_text(markdown_report(comp, figures))
    return ["comparison.json", "report.md", *figures]
