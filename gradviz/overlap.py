"""Overlap arithmetic of transposed convolutions (the Distill article's "uneven overlap").

A 1D transposed convolution with kernel ``h`` (length ``k``) and stride ``s`` writes
``y[n] = sum_j x[j] h[n - s j]``. With a constant input ``x = 1`` the interior output is periodic
with period ``s``; one period is the *overlap pattern*

    c[p] = sum_m h[p + s m],      p = 0 .. s-1          (polyphase sums of h)

which for a box kernel (``h = 1``) is the count ``#{j : 0 <= n - s j <= k-1}``: ``ceil(k/s)`` on
``k mod s`` phases and ``floor(k/s)`` elsewhere, even iff ``s`` divides ``k``.

Stacking (``k1, s1``) then (``k2, s2``) is one transposed convolution of stride ``s1 s2`` with
kernel ``h_eq = upsample_{s2}(h1) * h2`` (``H_eq(w) = H1(s2 w) H2(w)``); a final stride-1 layer of
size ``m`` is a layer with ``s = 1``. In 2D with the same kernel on both axes the pattern is the
outer product ``c[p] c[q]``, so the unevenness is squared.

Spectrum: with ``C[q] = DFT(c)[q]``, the output of a constant input has spectral lines at the
frequencies ``q / S`` with amplitude ``|C[q]| / C[0] = |H(2 pi q / S)| / |H(0)|`` relative to the
mean; in 2D the power relative to DC at ``(q1, q2)`` is ``(|C[q1]| |C[q2]| / C[0]^2)^2``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from gradviz.errors import GradvizError

__all__ = [
    "OverlapLayer",
    "OverlapReport",
    "analyse_overlap",
    "equivalent_kernel",
    "line_ratios",
    "overlap_pattern",
    "overlap_pattern_2d",
    "parse_kernel",
    "plot_overlap",
    "stack",
    "transposed_conv_1d",
    "transposed_conv_2d",
]


@dataclass(frozen=True)
class OverlapLayer:
    """One 1D transposed convolution: kernel weights and stride (``box(k, s)`` for counts)."""

    weights: tuple[float, ...]
    stride: int

    def __post_init__(self) -> None:
        if not self.weights:
            raise GradvizError("kernel must have at least one weight; valid: a size >= 1 or weights like 1,4,6,4,1")
        if isinstance(self.stride, bool) or int(self.stride) != self.stride or self.stride < 1:
            raise GradvizError(f"stride must be an integer >= 1, got {self.stride!r}")

    @classmethod
    def box(cls, kernel: int, stride: int) -> OverlapLayer:
        """A constant kernel of size ``kernel``: its pattern counts overlapping windows."""
        if isinstance(kernel, bool) or int(kernel) != kernel or kernel < 1:
            raise GradvizError(f"kernel size must be an integer >= 1, got {kernel!r}")
        return cls((1.0,) * int(kernel), int(stride))

    @property
    def size(self) -> int:
        return len(self.weights)


# The largest box kernel the command line takes (a transposed convolution's kernel is a few taps).
MAX_KERNEL = 1024


def parse_kernel(text: str) -> tuple[float, ...]:
    """``"3"`` -> box of size 3; ``"1,4,6,4,1"`` -> those weights."""
    try:
        if "," in text:
            weights = tuple(float(w) for w in text.split(","))
        else:
            size = int(text)
            if not 1 <= size <= MAX_KERNEL:
                raise ValueError
            weights = (1.0,) * size
    except ValueError:
        raise GradvizError(
            f"kernel must be a size from 1 to {MAX_KERNEL} or comma-separated weights like 1,4,6,4,1, got {text!r}"
        ) from None
    if not all(math.isfinite(w) for w in weights) or sum(weights) == 0:
        raise GradvizError(f"kernel weights must be finite with a non-zero sum, got {text!r}")
    return weights


def equivalent_kernel(layers: Sequence[OverlapLayer]) -> tuple[torch.Tensor, int]:
    """``(h_eq, S)``: the single transposed convolution equal to the stack, in float64.

    ``h_eq <- upsample_s(h_eq) * h`` for each next layer ``(h, s)``; ``S`` is the product of strides.
    """
    if not layers:
        raise GradvizError("need at least one layer")
    h = torch.tensor(layers[0].weights, dtype=torch.float64)
    total = layers[0].stride
    for layer in layers[1:]:
        s = layer.stride
        up = torch.zeros((h.numel() - 1) * s + 1, dtype=torch.float64)
        up[::s] = h
        nxt = torch.tensor(layer.weights, dtype=torch.float64)
        # full linear convolution: conv_transpose1d with stride 1 is exactly that
        h = F.conv_transpose1d(up.view(1, 1, -1), nxt.view(1, 1, -1)).flatten()
        total *= s
    return h, total


def overlap_pattern(layers: Sequence[OverlapLayer]) -> torch.Tensor:
    """One period (length ``S``) of the interior output for a constant input: ``c[p] = sum_m h_eq[p + S m]``."""
    h, s = equivalent_kernel(layers)
    pad = (-h.numel()) % s
    return torch.cat([h, h.new_zeros(pad)]).view(-1, s).sum(0)


def overlap_pattern_2d(layers: Sequence[OverlapLayer]) -> torch.Tensor:
    """The 2D (S, S) pattern for the same kernels on both axes: ``c[p] c[q]``."""
    c = overlap_pattern(layers)
    return torch.outer(c, c)


def line_ratios(pattern: torch.Tensor) -> torch.Tensor:
    """``|DFT(c)[q]| / DFT(c)[0]`` for every frequency bin of the pattern (1D or 2D); bin 0 is 1."""
    spectrum = torch.fft.fftn(pattern.to(torch.float64)).abs()
    return spectrum / spectrum.flatten()[0]


def transposed_conv_1d(x: torch.Tensor, layers: Sequence[OverlapLayer]) -> torch.Tensor:
    """Apply the stack to a 1D signal ``x`` (full output, no padding), in float64."""
    y = x.to(torch.float64).view(1, 1, -1)
    for layer in layers:
        w = torch.tensor(layer.weights, dtype=torch.float64).view(1, 1, -1)
        y = F.conv_transpose1d(y, w, stride=layer.stride)
    return y.flatten()


def transposed_conv_2d(x: torch.Tensor, layers: Sequence[OverlapLayer]) -> torch.Tensor:
    """Apply the stack to a 2D map ``x`` with the separable kernels ``h h^T`` (full output), in float64."""
    y = x.to(torch.float64)[None, None]
    for layer in layers:
        h = torch.tensor(layer.weights, dtype=torch.float64)
        y = F.conv_transpose2d(y, torch.outer(h, h)[None, None], stride=layer.stride)
    return y[0, 0]


@dataclass
class OverlapReport:
    """Overlap pattern of a stack and its spectrum (see the module docstring)."""

    layers: list[tuple[list[float], int]]  # (weights, stride) per layer
    period: int  # S, the product of the strides
    pattern: list[float]  # c[p], p = 0 .. S-1
    pattern_max: float
    pattern_min: float
    ratio_1d: float  # max / min (inf when some phase gets nothing)
    ratio_2d: float  # the 2D pattern's max / min = ratio_1d ** 2
    even: bool  # all phases equal
    line_ratios_1d: list[float]  # |C[q]| / C[0], q = 0 .. S-1
    power_2d: list[list[float]]  # 2D power relative to DC, (S, S)
    nondc_over_dc_2d: float  # sum of power_2d off DC

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        for key in ("ratio_1d", "ratio_2d"):
            d[key] = d[key] if math.isfinite(d[key]) else None
        return d


def stack(kernel: int | Sequence[float], stride: int, layers: int = 1, final: int = 0) -> list[OverlapLayer]:
    """``layers`` copies of (kernel, stride), then a stride-1 box of size ``final`` if ``final > 0``."""
    if isinstance(layers, bool) or int(layers) != layers or layers < 1:
        raise GradvizError(f"layers must be an integer >= 1, got {layers!r}")
    if isinstance(final, bool) or int(final) != final or final < 0:
        raise GradvizError(f"final stride-1 layer size must be an integer >= 0 (0 = none), got {final!r}")
    one = OverlapLayer.box(kernel, stride) if isinstance(kernel, int) else OverlapLayer(tuple(kernel), stride)
    result = [one] * int(layers)
    if final:
        result.append(OverlapLayer.box(final, 1))
    return result


def analyse_overlap(layers: Sequence[OverlapLayer]) -> OverlapReport:
    """Pattern, max/min and spectrum of a stack of transposed convolutions."""
    c = overlap_pattern(layers)
    cmax, cmin = float(c.max()), float(c.min())
    ratio = cmax / cmin if cmin > 0 else math.inf
    r1 = line_ratios(c)
    power = torch.outer(r1, r1) ** 2
    return OverlapReport(
        layers=[(list(layer.weights), layer.stride) for layer in layers],
        period=c.numel(),
        pattern=c.tolist(),
        pattern_max=cmax,
        pattern_min=cmin,
        ratio_1d=ratio,
        ratio_2d=ratio**2,
        even=bool(torch.isclose(c, c[0]).all()),
        line_ratios_1d=r1.tolist(),
        power_2d=power.tolist(),
        nondc_over_dc_2d=float(power.sum() - 1.0),
    )


def _label(layers: Sequence[OverlapLayer]) -> str:
    def one(layer: OverlapLayer) -> str:
        w = layer.weights
        k = str(len(w)) if all(v == 1.0 for v in w) else "[" + ",".join(f"{v:g}" for v in w) + "]"
        return f"k{k} s{layer.stride}"

    return " -> ".join(one(layer) for layer in layers)


def plot_overlap(layers: Sequence[OverlapLayer], path, n_inputs: int = 6, dpi: int = 100) -> None:
    """Distill-style figure: for each prefix of the stack, the 1D output of a constant input
    (bars; the shade is the count), the 2D output, and the spectrum of the interior pattern."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gradviz.plots import png_metadata

    n = len(layers)
    fig, axes = plt.subplots(n, 3, figsize=(11, 2.4 * n + 0.4), squeeze=False,
                             gridspec_kw={"width_ratios": [2.2, 1, 1.2]})
    for i in range(n):
        prefix = list(layers[: i + 1])
        rep = analyse_overlap(prefix)
        y1 = transposed_conv_1d(torch.ones(n_inputs), prefix)
        y2 = transposed_conv_2d(torch.ones(n_inputs, n_inputs), prefix)
        ax = axes[i, 0]
        shade = plt.cm.Blues(0.25 + 0.75 * (y1 / y1.max()).numpy())
        ax.bar(range(y1.numel()), y1.numpy(), width=1.0, color=shade, edgecolor="white", linewidth=0.5)
        ratio = "inf" if not math.isfinite(rep.ratio_1d) else f"{rep.ratio_1d:.3g}"
        ax.set_title(f"{_label(prefix)}: constant input of {n_inputs}, interior max/min {ratio}", fontsize=9)
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
    fig.savefig(path, dpi=dpi, format="png", metadata=png_metadata())
    plt.close(fig)
