"""Jitter and octaves against gradient checkerboards: a seeded study and a test of the jitter law.

Part 1, **dream** (``--part dream``). For each model (VGG16 with real ImageNet conv weights;
ResNet50 at random init, its init changing with the seed) and its layer, the DeepDream objective
(mean squared activation) is maximised from a seeded noise start image under several conditions:
no jitter, roll jitter ranges d in JITTERS, octaves without jitter and octaves with jitter.
For each condition and each seed (the seed sets the start image, the jitter draws and, for
ResNet50, the weights) the accumulated update ``x_final - x_start`` is measured with the calibrated
``checkerboard_metrics`` at the layer's stride. Per condition: mean ± sd over seeds of the octave
excess (1 = no grid) and the fraction of seeds with a detected grid. References at the start image:
the plain gradient and the exact shift average (``gradviz.optvis.reference.shift_averaged_gradient``).

Part 2, **law** (``--part law``). At a fixed image (no update) and a fixed layer, the input gradient
is computed at every roll ``δ`` in ``[-dmax, dmax]^2`` and unrolled, ``g_δ = roll(∇f(roll(x, δ)), -δ)``.
With ``H`` the exact shift average (mean of ``g_δ`` over ``δ`` in ``Z_S^2``), the residual grid energy
of a mean of ``N`` jittered gradients at the lattice bins of period p is

    R = Σ_{bins of period p, channels} |mean_N g_δ - H|^2  /  Σ_{same} |g_0 - H|^2,

i.e. the energy of what the averaged gradient has beyond the shift average, relative to the
no-jitter gradient. It is measured three ways per seed: with N actual draws of RandomRoll(d)
(nested: the first N of 64 draws), with the exact expectation over the draws given the image
(computed from every shift in [-d, d]^2), and predicted by the jitter law
(gradviz.optvis.jitter_law) with the bins weighted by the no-jitter grid energy ``|g_0 - H|^2``.

Part 3, **figure** (``--part figure``, a few minutes on one thread). The jitter figure: for VGG16 with
ImageNet weights, DeepDream from a 224 px noise image (10 steps, the dream part's step), without jitter and
with roll jitter d = 4, 10 seeds, at three candidate layers (relu2_2, relu3_3, relu4_3); the figure shows
the layer whose no-jitter updates have a detected grid in the most seeds (a rule that looks at the no-jitter
condition only), and ResNet50 at random init (``layer2``) the same way. Per condition: the dream image
whole and its centre enlarged, the mean power spectrum of the updates, and every seed's line excess per
octave with its p-value from the calibrated meter; per octave, a paired sign-flip test over the seeds.

Writes figures/jitter/jitter_study.json (every number), figures/jitter/<model>_octaves.png,
figures/jitter/jitter_law.png and figures/jitter/jitter_<model>.png (the jitter figures).

    python scripts/jitter_study.py [--part all|dream|law|figure|plots] [--seeds 5] [--size 128] [--steps 10]
                                   [--law-size 224] [--figure-seeds 10] [--figure-size 224] [--out figures/jitter]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import matplotlib.ticker
import numpy as np
import torch

from gradviz.core.gradients import input_gradient
from gradviz.core.models import load_model
from gradviz.core.objectives import deepdream
from gradviz.io.outputs import write_json
from gradviz.io.plotting import new_figure, save_figure
from gradviz.optvis.dream import DreamSettings, dream, objective_stride
from gradviz.optvis.jitter_law import predicted_kept_fraction
from gradviz.optvis.parameterization import GREY, NOISE_STD, start_images
from gradviz.optvis.reference import shift_averaged_gradient
from gradviz.optvis.render import JitterCondition, JitterFigureData, jitter_figure
from gradviz.optvis.transforms import RandomRoll, roll, unroll
from gradviz.spectrum import CheckerboardMetrics, SpectrumAccumulator, checkerboard_metrics, period_map
from gradviz.spectrum.lines import holm_adjust

VGG16_WEIGHTS = "../shared/weights/vgg16_features_imagenet.pth"
# (model, weights, layer): one stride-8 layer per model (conv4_3 after ReLU; ResNet50's layer2).
MODELS = (("vgg16", VGG16_WEIGHTS, "features.22"), ("resnet50", "random", "layer2"))
JITTERS = (1, 2, 4, 8, 16)
OCTAVES, OCTAVE_SCALE = 3, 1.4  # DeepDream's scale; at 128 px: 65, 91, 128
OCTAVE_JITTERS = (0, 4, 16)
# Normalised-ascent step (pixels in [0, 1]); larger than DeepDream's 1.5/255 so that few steps show a picture.
STEP_SIZE = 4 / 255
# Jitter law: VGG16 conv3_3 (stride 4: lattice periods 2 and 4) and ResNet50's layer2 (stride 8, random
# init whose seed follows the image's), these ranges and step counts.
LAW_MODELS = (("vgg16", VGG16_WEIGHTS, "features.15"), ("resnet50", "random", "layer2"))
LAW_D = (0, 1, 2, 3, 4, 8)
# The jitter figure: VGG16's last ReLU before pools 2, 3 and 4 (relu2_2, relu3_3, relu4_3; strides 2, 4, 8),
# one of which the figure shows (select_layer), and ResNet50 at random init for a strong grid. 224 px as in
# the law part: a grid of fixed amplitude stands further above the background the more pixels there are.
FIGURE_LAYERS = ("features.8", "features.15", "features.22")
FIGURE_CONTRAST = ("resnet50", "random", "layer2")
FIGURE_SIZE, FIGURE_SEEDS, FIGURE_JITTER = 224, 10, 4
LAW_N = (1, 4, 16, 64)


def conditions() -> list[dict]:
    conds = [{"label": "no jitter", "jitter": 0, "octaves": 1}]
    conds += [{"label": f"jitter {d}", "jitter": d, "octaves": 1} for d in JITTERS]
    conds += [{"label": f"octaves{f' + jitter {d}' if d else ''}", "jitter": d, "octaves": OCTAVES}
              for d in OCTAVE_JITTERS]
    return conds


def measure(grad: torch.Tensor, stride: int) -> dict:
    """The calibrated readings of one map (defaults: seed 0, alpha 0.05, 999 null draws, equal weights)."""
    return readings(checkerboard_metrics(grad, stride))


def readings(m: CheckerboardMetrics) -> dict:
    """What the JSON keeps of one map's metrics."""
    return {
        "lattice_excess": m.lattice_excess, "octave_excess": list(m.octave_excess),
        "octave_p_values": list(m.octave_p_values), "octave_p_adjusted": list(m.octave_p_adjusted),
        "p_value": m.p_value, "grid_detected": bool(m.grid_detected), "verdict": m.verdict,
        "lattice_fraction": m.lattice_fraction, "octave_fractions": list(m.octave_fractions),
        "octave_null_band": [list(b) for b in m.octave_null_band], "octave_threshold": list(m.octave_threshold),
    }


def mean_sd(values) -> dict:
    """Mean and sample standard deviation (ddof = 1) over seeds."""
    a = np.asarray(values, dtype=float)
    return {"mean": float(a.mean()), "sd": float(a.std(ddof=1)) if len(a) > 1 else 0.0}


def summarise(runs: list[dict]) -> dict:
    n_oct = len(runs[0]["octave_excess"])
    return {
        "n_seeds": len(runs),
        "octave_excess": [mean_sd([r["octave_excess"][j] for r in runs]) for j in range(n_oct)],
        "lattice_excess": mean_sd([r["lattice_excess"] for r in runs]),
        "detected_fraction": float(np.mean([r["grid_detected"] for r in runs])),
        "octave_detected_fraction": [float(np.mean([r["octave_p_adjusted"][j] < 0.05 for r in runs]))
                                     for j in range(n_oct)],
        "lattice_fraction": mean_sd([r["lattice_fraction"] for r in runs]),
        "octave_fractions": [mean_sd([r["octave_fractions"][j] for r in runs]) for j in range(n_oct)],
    }


# ----------------------------------------------------------------------------------------- dream


def run_dream(seeds: list[int], size: int, steps: int, out: Path) -> dict:
    result = {}
    for name, weights, layer in MODELS:
        t0 = time.perf_counter()
        objective = deepdream(layer)
        conds = conditions()
        runs = {c["label"]: [] for c in conds}
        refs = {"gradient_at_start": [], "exact_shift_average": []}
        model = None
        for seed in seeds:
            if model is None or weights == "random":
                model = load_model(name, weights, seed=seed, device="cpu")
            start = start_images("noise", size, seed=seed)
            stride = objective_stride(model, objective)
            for c in conds:
                settings = DreamSettings(steps=steps, lr=STEP_SIZE, jitter=c["jitter"], octaves=c["octaves"],
                                         octave_scale=OCTAVE_SCALE, seed=seed, progress=False, track_metrics=False)
                res = dream(model, objective, start, settings)
                numbers = measure(res.update(), stride)
                numbers.update(seed=seed, objective_start=res.history[0].objective,
                               objective_end=res.history[-1].objective, octave_sizes=res.octave_sizes)
                runs[c["label"]].append(numbers)
            plain = input_gradient(model, start, objective)
            exact = shift_averaged_gradient(model, start, objective, stride)
            for key, g in (("gradient_at_start", plain), ("exact_shift_average", exact)):
                refs[key].append(measure(g, stride) | {"seed": seed})
            print(f"dream {name} {layer} seed {seed}: {time.perf_counter() - t0:.0f} s", flush=True)
        entry = {
            "weights": weights_label(model.weights, weights), "layer": layer, "stride": stride,
            "seconds": time.perf_counter() - t0,
            "conditions": [c | {"summary": summarise(runs[c["label"]]), "runs": runs[c["label"]]} for c in conds],
            "references": {k: {"summary": summarise(v), "runs": v} for k, v in refs.items()},
        }
        result[name] = entry
        octaves_figure(name, entry, out / f"{name}_octaves.png")
    return result


def weights_label(loaded: str, requested: str) -> str:
    if requested == "random":
        return "random init, seed = image seed"
    return f"ImageNet conv weights, {Path(requested).name}" if "imagenet" in requested else loaded


def octaves_figure(name: str, entry: dict, path: Path) -> None:
    """Octave excess (mean ± sd over seeds) of the accumulated update against the condition."""
    conds = entry["conditions"]
    n_oct = len(conds[0]["summary"]["octave_excess"])
    fig, ax = new_figure(figsize=(7.5, 3.8))
    x = np.arange(len(conds))
    for j in range(n_oct):
        colour = f"C{j}"
        mu = np.array([c["summary"]["octave_excess"][j]["mean"] for c in conds])
        sd = np.array([c["summary"]["octave_excess"][j]["sd"] for c in conds])
        lower = np.minimum(sd, 0.9 * mu)  # a log axis cannot show mean - sd <= 0: the lower bar stops at mean / 10
        ax.errorbar(x + (j - 1) * 0.08, mu, yerr=[lower, sd], fmt="o-", color=colour, ms=4, lw=1, capsize=2,
                    label=f"period {2 ** (j + 1)}")
        ref = entry["references"]["exact_shift_average"]["summary"]["octave_excess"][j]
        ax.axhspan(max(ref["mean"] - ref["sd"], 0.1 * ref["mean"]), ref["mean"] + ref["sd"], color=colour, alpha=0.12)
        ax.axhline(ref["mean"], color=colour, ls="--", lw=0.8)
    ax.axhline(1.0, color="k", ls=":", lw=1, label="1 = no grid")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(matplotlib.ticker.LogFormatter(minor_thresholds=(2, 0.5)))
    labels = [f"{c['label'].replace(' + ', chr(10) + '+ ')}\n{c['summary']['detected_fraction'] * 100:.0f}% det."
              for c in conds]
    ax.set_xticks(x, labels, fontsize=6)
    ax.set_ylabel("octave excess of the update")
    ax.legend(fontsize=7, ncol=4)
    n = conds[0]["summary"]["n_seeds"]
    ax.set_title(f"{name} ({entry['weights']}), {entry['layer']} (stride {entry['stride']}): mean ± sd over {n} "
                 "seeds; "
                 "dashed/band: exact shift average at the start image\n'det.': share of seeds with a detected grid "
                 "(Holm-adjusted p < 0.05)", fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)


# ------------------------------------------------------------------------------------------- law


def run_law(seeds: list[int], size: int, name: str, weights: str, layer: str) -> dict:
    t0 = time.perf_counter()
    model = load_model(name, weights, device="cpu")
    objective = deepdream(layer)
    stride = objective_stride(model, objective)
    dmax = max(LAW_D)
    periods = period_map(size, size, stride)
    on = periods > 1
    idx = on.nonzero()  # (K, 2) lattice bins (no DC)
    bin_period = periods[on]
    freqs = [(float(np.fft.fftfreq(size)[u]), float(np.fft.fftfreq(size)[v])) for u, v in idx.tolist()]
    period_list = [2 ** j for j in range(1, int(math.log2(stride)) + 1)]
    shifts = [(dy, dx) for dy in range(-dmax, dmax + 1) for dx in range(-dmax, dmax + 1)]
    per_seed = []
    for seed in seeds:
        if weights == "random":
            model = load_model(name, weights, seed=seed, device="cpu")
        x = start_images("noise", size, seed=seed)
        coeff = {}  # shift -> (C, K) complex Fourier coefficients of the unrolled gradient at the lattice bins
        for s in shifts:
            g = unroll(input_gradient(model, roll(x, s), objective), s)[0].double()
            F = torch.fft.fft2(g, norm="ortho")
            coeff[s] = F[:, idx[:, 0], idx[:, 1]]
        exact = torch.stack([coeff[(dy, dx)] for dy in range(stride) for dx in range(stride)]).mean(0)
        a = {s: c - exact for s, c in coeff.items()}  # what each gradient has beyond the shift average
        c0 = a[(0, 0)]
        w0 = c0.abs().square().sum(0)  # (K,) no-jitter grid-locked energy per bin
        seed_out = {"seed": seed, "periods": {}}
        # how rigidly the grid-locked part moves: share of Σ|a_δ|^2 explained by c0 e^{+2πi f·δ}
        # (unrolling by δ multiplies by it)
        fy = torch.tensor([f[0] for f in freqs], dtype=torch.float64)
        fx = torch.tensor([f[1] for f in freqs], dtype=torch.float64)
        pools = {}
        for d in LAW_D:
            jitter, gen = RandomRoll(d), torch.Generator().manual_seed(10_000 * seed + d)
            draws = []
            for _ in range(max(LAW_N)):
                jitter(x, gen)
                draws.append(jitter.last_shift)
            pools[d] = draws
        for p in period_list:
            sel = bin_period == p
            denom = float(w0[sel].sum())
            rows = {"denominator": denom, "measured": {}, "expected_given_image": {}, "law": {}}
            # rigidity over every shift in [-dmax, dmax]^2
            num, tot = 0.0, 0.0
            for (dy, dx), ad in a.items():
                model_ad = c0 * torch.exp(2j * math.pi * (fy * dy + fx * dx))
                num += float((ad[:, sel] - model_ad[:, sel]).abs().square().sum())
                tot += float(ad[:, sel].abs().square().sum())
            rows["rigid_share"] = 1 - num / tot
            for d in LAW_D:
                inside = [s for s in shifts if abs(s[0]) <= d and abs(s[1]) <= d]
                stack = torch.stack([a[s][:, sel] for s in inside])  # (M, C, K_p)
                mu = stack.mean(0)
                second = stack.abs().square().mean(0)
                for n in LAW_N:
                    key = f"d={d},N={n}"
                    mean_n = torch.stack([a[s][:, sel] for s in pools[d][:n]]).mean(0)
                    rows["measured"][key] = float(mean_n.abs().square().sum()) / denom
                    exp_n = mu.abs().square() + (second - mu.abs().square()) / n
                    rows["expected_given_image"][key] = float(exp_n.sum()) / denom
                    sel_freqs = [f for f, s_ in zip(freqs, sel.tolist()) if s_]
                    k = torch.tensor([predicted_kept_fraction(f[0], f[1], d, n) for f in sel_freqs],
                                     dtype=torch.float64)
                    rows["law"][key] = float((w0[sel] * k).sum()) / denom
            seed_out["periods"][str(p)] = rows
        seed_out["no_jitter_metrics"] = measure(unroll(input_gradient(model, x, objective), (0, 0)), stride)
        per_seed.append(seed_out)
        print(f"law {name} {layer} seed {seed}: {time.perf_counter() - t0:.0f} s", flush=True)
    summary = {}
    for p in period_list:
        ps = str(p)
        summary[ps] = {"rigid_share": mean_sd([s["periods"][ps]["rigid_share"] for s in per_seed])}
        for kind in ("measured", "expected_given_image", "law"):
            summary[ps][kind] = {key: mean_sd([s["periods"][ps][kind][key] for s in per_seed])
                                 for key in per_seed[0]["periods"][ps][kind]}
    result = {
        "model": name, "weights": weights_label(model.weights, weights), "layer": layer, "stride": stride, "size": size,
        "image": f"grey {GREY} + Gaussian noise std {NOISE_STD}, seeded", "d": list(LAW_D), "N": list(LAW_N),
        "shifts_computed": f"every roll in [-{dmax}, {dmax}]^2 ({len(shifts)} gradients per seed)",
        "residual": "sum over the lattice bins of one period and the channels of |mean_N g - H|^2 over the same sum "
                    "for the no-jitter gradient g_0; H = exact shift average over Z_S^2",
        "summary": summary, "per_seed": per_seed, "seconds": time.perf_counter() - t0,
    }
    return result


def law_figure(results: dict, path: Path) -> None:
    """Rows: models; columns: periods 2 and 4."""
    periods = ("2", "4")
    fig, axes = new_figure(len(results), len(periods), figsize=(5.2 * len(periods), 4.0 * len(results)), squeeze=False)
    for row, result in zip(axes, results.values()):
        law_panels(row, result, periods)
    n = len(next(iter(results.values()))["per_seed"])
    size = next(iter(results.values()))["size"]
    fig.suptitle(f"Jitter law at a fixed {size} px noise image: residual grid energy of the mean of N unrolled "
                 f"jittered gradients, beyond the exact shift average.\nLine: law |φ|² + (1-|φ|²)/N weighted by "
                 f"the no-jitter grid energy per bin; dots: N actual draws, mean ± sd over {n} seeds; x: exact "
                 "expectation "
                 "over draws given the image", fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=90)


def law_panels(axes, result: dict, periods) -> None:
    ds = result["d"]
    for ax, p in zip(axes, periods):
        s = result["summary"][p]
        for i, n in enumerate(result["N"]):
            colour = f"C{i}"
            keys = [f"d={d},N={n}" for d in ds]
            x = np.array(ds, dtype=float) + (i - 1.5) * 0.06
            law = [s["law"][k]["mean"] for k in keys]
            ax.plot(ds, law, "-", color=colour, lw=1.2, label=f"N = {n}: law")
            mu = [s["measured"][k]["mean"] for k in keys]
            sd = [s["measured"][k]["sd"] for k in keys]
            ax.errorbar(x, mu, yerr=sd, fmt="o", color=colour, ms=4, capsize=2, label=f"N = {n}: measured (draws)")
            ex = [s["expected_given_image"][k]["mean"] for k in keys]
            ax.plot(x, ex, "x", color=colour, ms=5)
        ax.set_yscale("log")
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xticks(ds, [str(d) for d in ds])
        ax.set_xlabel("roll jitter range d (shifts uniform in [-d, d] per axis)")
        ax.set_ylabel("residual grid energy (no jitter = 1)")
        short = "ImageNet" if "ImageNet" in result["weights"] else "random init"
        ax.set_title(f"{result['model']} ({short}), {result['layer']} (stride {result['stride']}), "
                     f"period-{p} bins\nrigid share of the grid-locked part: {s['rigid_share']['mean']:.3f} ± "
                     f"{s['rigid_share']['sd']:.3f}",
                     fontsize=8)
        ax.legend(fontsize=6, ncol=2)


# ---------------------------------------------------------------------------------------- figure


@dataclass
class SeedRun:
    """One seed of one condition: the dream image, its update's spectrum and the meter's readings of it."""

    seed: int
    image: torch.Tensor  # (3, H, W) the final image
    power: torch.Tensor  # (H', W') power of the unit-energy update, border cross removed: what the line test reads
    metrics: CheckerboardMetrics


@dataclass
class ConditionRuns:
    """One condition (a jitter range) over the seeds."""

    label: str
    jitter: int
    runs: list[SeedRun]

    def excess(self) -> np.ndarray:
        """Line excess, (seeds, octaves)."""
        return np.array([r.metrics.octave_excess for r in self.runs], dtype=float)

    def detected(self) -> np.ndarray:
        """Per seed and octave: Holm-adjusted p < alpha, (seeds, octaves)."""
        return np.array([[p < r.metrics.alpha for p in r.metrics.octave_p_adjusted] for r in self.runs], dtype=bool)

    def summary(self) -> dict:
        return summarise([readings(r.metrics) for r in self.runs])

    def to_dict(self) -> dict:
        return {"label": self.label, "jitter": self.jitter, "summary": self.summary(),
                "runs": [readings(r.metrics) | {"seed": r.seed} for r in self.runs]}


@dataclass
class JitterComparison:
    """One model and layer, no jitter against roll jitter ``d``, on the same seeds (start images)."""

    model: str
    weights: str
    layer: str
    stride: int
    size: int
    steps: int
    seeds: list[int]
    conditions: list[ConditionRuns]
    seconds: float = 0.0

    def paired(self) -> list[dict]:
        """Per octave: in how many seeds jitter gave the lower excess, and the exact two-sided sign-flip
        p-value of the mean log ratio (jitter over no jitter) over the seeds."""
        base, other = self.conditions[0].excess(), self.conditions[-1].excess()
        out = []
        for j in range(base.shape[1]):
            ratio = np.log(other[:, j] / base[:, j])
            out.append({"period": 2 ** (j + 1), "lower_with_jitter": int((ratio < 0).sum()), "n": len(ratio),
                        "mean_log_ratio": float(ratio.mean()), "sign_flip_p": sign_flip_p(ratio)})
        return out

    def to_dict(self) -> dict:
        return {"model": self.model, "weights": self.weights, "layer": self.layer, "stride": self.stride,
                "size": self.size, "steps": self.steps, "seeds": self.seeds, "seconds": self.seconds,
                "conditions": [c.to_dict() for c in self.conditions], "paired": self.paired()}


def sign_flip_p(values: np.ndarray) -> float:
    """Exact two-sided sign-flip p-value of ``mean(values)`` against 0: the share of the ``2**n`` sign
    patterns whose mean is at least as far from 0 (the observed one included).

    >>> sign_flip_p(np.array([-1.0, -2.0, -3.0])), sign_flip_p(np.array([1.0, -1.0]))
    (0.25, 1.0)
    """
    v = np.asarray(values, dtype=float)
    signs = np.array(np.meshgrid(*[[1.0, -1.0]] * len(v))).reshape(len(v), -1).T  # (2**n, n)
    means = np.abs(signs @ v) / len(v)
    return float(np.mean(means >= abs(v.mean()) * (1 - 1e-12)))


def compare_jitter(name: str, weights: str, layer: str, seeds: list[int], size: int, steps: int, jitter: int,
                   model=None) -> JitterComparison:
    """DeepDream (the dream part's settings, one octave) from each seed's noise image, without and with roll
    jitter ``d = jitter``; every update measured with the calibrated meter at the layer's stride.

    Args:
        name, weights: the model (``weights="random"``: a new initialisation per seed, seeded with it).
        layer: the DeepDream objective's layer.
        seeds: each sets the start image, the jitter draws and, at random init, the weights.
        size, steps: image side (px) and ascent steps.
        jitter: the roll range of the jittered condition.
        model: a loaded model to use for every seed instead of loading ``name`` (``weights`` then only labels it).

    Returns:
        A :class:`JitterComparison` with the conditions "no jitter" and "jitter d = {jitter}".
    """
    t0 = time.perf_counter()
    objective = deepdream(layer)
    conds = [ConditionRuns("no jitter", 0, []), ConditionRuns(f"jitter d = {jitter}", jitter, [])]
    given = model is not None
    for seed in seeds:
        if not given and (model is None or weights == "random"):
            model = load_model(name, weights, seed=seed, device="cpu")
        stride = objective_stride(model, objective)
        start = start_images("noise", size, seed=seed)
        for cond in conds:
            settings = DreamSettings(steps=steps, lr=STEP_SIZE, jitter=cond.jitter, seed=seed, progress=False,
                                     track_metrics=False)
            res = dream(model, objective, start, settings)
            acc = SpectrumAccumulator(stride)
            acc.add(res.update())
            cond.runs.append(SeedRun(seed, res.images[0], acc.periodic_power_sum.clone(), acc.metrics()))
    return JitterComparison(name, weights_label(model.weights, weights), layer, stride, size, steps, list(seeds), conds,
                            time.perf_counter() - t0)


def select_layer(comparisons: list[JitterComparison]) -> JitterComparison:
    """The layer whose no-jitter updates have a detected grid in the most seeds (ties: the larger mean
    lattice excess). The rule looks at the no-jitter condition only, so the choice does not favour jitter."""
    def key(c: JitterComparison):
        base = c.conditions[0]
        return sum(r.metrics.grid_detected for r in base.runs), np.mean([r.metrics.lattice_excess for r in base.runs])
    return max(comparisons, key=key)


def figure_data(comp: JitterComparison, shown_seed: int | None = None) -> JitterFigureData:
    """What :func:`gradviz.optvis.render.jitter_figure` draws of ``comp`` (the images of ``shown_seed``, by default
    the first seed)."""
    shown = comp.seeds[0] if shown_seed is None else shown_seed
    idx = comp.seeds.index(shown)
    conditions = []
    for c in comp.conditions:
        summary = c.summary()
        conditions.append(JitterCondition(
            label=c.label, image=c.runs[idx].image.numpy(),
            power=torch.stack([r.power for r in c.runs]).mean(0).numpy(),
            excess=c.excess(), detected=c.detected(),
            mean=np.array([m["mean"] for m in summary["octave_excess"]]),
            sd=np.array([m["sd"] for m in summary["octave_excess"]]),
            null_band=np.array([r.metrics.octave_null_band for r in c.runs]).mean(0),
            threshold=np.array([r.metrics.octave_threshold for r in c.runs]).mean(0),
            n_detected=sum(r.metrics.grid_detected for r in c.runs)))
    notes = [f"lower with jitter in {p['lower_with_jitter']}/{p['n']} seeds\n"
             f"(paired sign-flip p = {p['sign_flip_p']:.2g})"
             for p in comp.paired()]
    d = comp.conditions[-1].jitter
    title = (f"{comp.model} ({comp.weights}), {comp.layer} (stride {comp.stride})\nDeepDream objective, {comp.steps} "
             f"steps from a {comp.size} px noise image, without and with roll jitter d = {d}")
    footer = ("made by python scripts/jitter_study.py --part figure. Excess and detection: the calibrated line test "
              "of\n"
              "gradviz.spectrum.checkerboard_metrics (999 null draws, Holm over octaves); sign-flip p: paired over the "
              "seeds, on log excess")
    return JitterFigureData(title, comp.stride, list(comp.seeds), shown, conditions, notes, footer)


def run_figure(seeds: list[int], size: int, steps: int, jitter: int, out: Path) -> dict:
    """VGG16 (ImageNet weights): the candidate layers compared, the figure for the one :func:`select_layer`
    picks; ResNet50 at random init (``layer2``) drawn the same way for a strong grid."""
    vgg = load_model("vgg16", VGG16_WEIGHTS, device="cpu")
    scanned = []
    for layer in FIGURE_LAYERS:
        scanned.append(compare_jitter("vgg16", VGG16_WEIGHTS, layer, seeds, size, steps, jitter, model=vgg))
        print(f"figure vgg16 {layer}: {scanned[-1].seconds:.0f} s", flush=True)
    chosen = select_layer(scanned)
    tests = [(c.layer, t["period"], t["sign_flip_p"]) for c in scanned for t in c.paired()]
    holm = [{"layer": layer, "period": period, "sign_flip_p": p, "holm_p": adjusted}
            for (layer, period, p), adjusted in zip(tests, holm_adjust([t[2] for t in tests]))]
    contrast = compare_jitter(*FIGURE_CONTRAST, seeds, size, steps, jitter)
    print(f"figure resnet50 layer2: {contrast.seconds:.0f} s", flush=True)
    for comp in (chosen, contrast):
        save_figure(jitter_figure(figure_data(comp)), out / f"jitter_{comp.model}.png")
    return {
        "size": size, "steps": steps, "step_size": STEP_SIZE, "jitter": jitter, "seeds": seeds,
        "start": f"grey {GREY} + Gaussian noise std {NOISE_STD} (seeded)",
        "objective": "deepdream (mean squared activation)",
        "rule": "the VGG16 layer whose no-jitter updates have a detected grid in the most seeds (ties: larger mean "
                "lattice excess); decided on the no-jitter condition only",
        "chosen_layer": chosen.layer, "vgg16": [c.to_dict() for c in scanned], "resnet50": contrast.to_dict(),
        "vgg16_paired_holm": holm,  # the paired tests of every VGG16 layer and octave, Holm-adjusted together
        "figures": [f"jitter_{c.model}.png" for c in (chosen, contrast)],
    }


# ------------------------------------------------------------------------------------------ main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("all", "dream", "law", "figure", "plots"), default="all",
                        help="'figure': the jitter figure only (a few minutes); 'plots' redraws the octave and law "
                             "figures from the JSON")
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..n-1 (default 5)")
    parser.add_argument("--size", type=int, default=128, help="dream image size (default 128)")
    parser.add_argument("--steps", type=int, default=10, help="dream steps per octave (default 10)")
    parser.add_argument("--law-size", type=int, default=224, help="image size of the law measurement (default 224)")
    parser.add_argument("--figure-seeds", type=int, default=FIGURE_SEEDS,
                        help=f"seeds of the jitter figure (default {FIGURE_SEEDS})")
    parser.add_argument("--figure-size", type=int, default=FIGURE_SIZE,
                        help=f"image size of the jitter figure (default {FIGURE_SIZE})")
    parser.add_argument("--out", default="figures/jitter", help="output folder (default figures/jitter)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "jitter_study.json"
    report = json.loads(path.read_text()) if path.exists() and args.part != "all" else {}
    seeds = list(range(args.seeds))
    t0 = time.perf_counter()
    if args.part in ("all", "dream"):
        report["dream"] = {
            "size": args.size, "steps_per_octave": args.steps, "step_size": STEP_SIZE, "seeds": seeds,
            "start": f"grey {GREY} + Gaussian noise std {NOISE_STD} (seeded)",
            "objective": "deepdream (mean squared activation)",
            "optimizer": "normalized", "octaves": OCTAVES, "octave_scale": OCTAVE_SCALE,
            "sd": "sample standard deviation over seeds (ddof = 1)",
            "models": run_dream(seeds, args.size, args.steps, out),
        }
    if args.part == "plots":
        for name, entry in report.get("dream", {}).get("models", {}).items():
            octaves_figure(name, entry, out / f"{name}_octaves.png")
        if "law" in report:
            law_figure(report["law"], out / "jitter_law.png")
        print("redrew the figures")
        return
    if args.part in ("all", "law"):
        report["law"] = {name: run_law(seeds, args.law_size, name, weights, layer)
                         for name, weights, layer in LAW_MODELS}
        law_figure(report["law"], out / "jitter_law.png")
    if args.part in ("all", "figure"):
        t1 = time.perf_counter()
        report["figure"] = run_figure(list(range(args.figure_seeds)), args.figure_size, args.steps, FIGURE_JITTER, out)
        report["figure"]["seconds"] = time.perf_counter() - t1
    report["seconds_" + args.part] = time.perf_counter() - t0
    write_json(path, report)
    print(f"wrote {path} and figures ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
