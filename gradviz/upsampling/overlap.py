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
    "MAX_KERNEL",
    "OverlapLayer",
    "OverlapPrefix",
    "OverlapReport",
    "analyse_overlap",
    "equivalent_kernel",
    "line_ratios",
    "overlap_pattern",
    "overlap_pattern_2d",
    "overlap_prefixes",
    "parse_kernel",
    "stack",
    "stack_label",
    "transposed_conv_1d",
    "transposed_conv_2d",
]


@dataclass(frozen=True)
class OverlapLayer:
    """One 1D transposed convolution: kernel weights and stride (``box(k, s)`` for counts).

    Args:
        weights: the kernel ``h``, at least one weight.
        stride: the stride ``s``, an integer >= 1.

    Raises:
        GradvizError: no weights, or a stride that is not an integer >= 1.

    Example:
        >>> OverlapLayer.box(3, 2)
        OverlapLayer(weights=(1.0, 1.0, 1.0), stride=2)
        >>> OverlapLayer((1.0, 2.0, 1.0), 2).size
        3
    """

    weights: tuple[float, ...]
    stride: int

    def __post_init__(self) -> None:
        if not self.weights:
            raise GradvizError("kernel must have at least one weight; valid: a size >= 1 or weights like 1,4,6,4,1")
        if isinstance(self.stride, bool) or int(self.stride) != self.stride or self.stride < 1:
            raise GradvizError(f"stride must be an integer >= 1, got {self.stride!r}")

    @classmethod
    def box(cls, kernel: int, stride: int) -> OverlapLayer:
        """A constant kernel of size ``kernel`` (an integer >= 1): its pattern counts overlapping windows."""
        if isinstance(kernel, bool) or int(kernel) != kernel or kernel < 1:
            raise GradvizError(f"kernel size must be an integer >= 1, got {kernel!r}")
        return cls((1.0,) * int(kernel), int(stride))

    @property
    def size(self) -> int:
        """The kernel size ``k``."""
        return len(self.weights)


# The largest box kernel the command line takes (a transposed convolution's kernel is a few taps).
MAX_KERNEL = 1024


def parse_kernel(text: str) -> tuple[float, ...]:
    """Read a kernel as the command line gives it: a box size or comma-separated weights.

    Args:
        text: ``"3"`` (a box of size 3, at most ``MAX_KERNEL``) or ``"1,4,6,4,1"`` (those weights).

    Raises:
        GradvizError: not a size from 1 to ``MAX_KERNEL`` nor finite weights with a non-zero sum.

    Example:
        >>> parse_kernel("3"), parse_kernel("1,2,1")
        ((1.0, 1.0, 1.0), (1.0, 2.0, 1.0))
    """
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

    Args:
        layers: the stack, first layer first (at least one; else :class:`GradvizError`).

    Shape:
        ``h_eq``: ``(K,)``, the full support of the stack.

    Example:
        >>> h, s = equivalent_kernel(stack(3, 2, layers=2))
        >>> h.tolist(), s
        ([1.0, 1.0, 2.0, 1.0, 2.0, 1.0, 1.0], 4)
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
    """One period of the interior output for a constant input: ``c[p] = sum_m h_eq[p + S m]``.

    Args:
        layers: the stack.

    Shape:
        ``c``: ``(S,)``, ``S`` the product of the strides; float64.

    Example:
        >>> overlap_pattern(stack(3, 2)).tolist(), overlap_pattern(stack(4, 2)).tolist()
        ([2.0, 1.0], [2.0, 2.0])
    """
    h, s = equivalent_kernel(layers)
    pad = (-h.numel()) % s
    return torch.cat([h, h.new_zeros(pad)]).view(-1, s).sum(0)


def overlap_pattern_2d(layers: Sequence[OverlapLayer]) -> torch.Tensor:
    """The 2D pattern for the same kernels on both axes: ``c[p] c[q]``.

    Args:
        layers: the stack.

    Shape:
        ``(S, S)``; float64.

    Example:
        >>> overlap_pattern_2d(stack(3, 2)).tolist()
        [[4.0, 2.0], [2.0, 1.0]]
    """
    c = overlap_pattern(layers)
    return torch.outer(c, c)


def line_ratios(pattern: torch.Tensor) -> torch.Tensor:
    """``|DFT(c)[q]| / DFT(c)[0]`` for every frequency bin of the pattern (1D or 2D); bin 0 is 1.

    Args:
        pattern: an overlap pattern (non-zero sum).

    Shape:
        the pattern's shape; float64.

    Example:
        >>> [round(r, 4) for r in line_ratios(overlap_pattern(stack(3, 2))).tolist()]
        [1.0, 0.3333]
    """
    spectrum = torch.fft.fftn(pattern.to(torch.float64)).abs()
    return spectrum / spectrum.flatten()[0]


def transposed_conv_1d(x: torch.Tensor, layers: Sequence[OverlapLayer]) -> torch.Tensor:
    """Apply the stack to a 1D signal ``x`` (full output, no padding), in float64.

    Args:
        x: the signal.
        layers: the stack.

    Shape:
        ``(N,)`` -> ``((N - 1) s + k,)`` per layer of kernel ``k`` and stride ``s``; float64.

    Example:
        >>> transposed_conv_1d(torch.ones(3), stack(3, 2)).tolist()
        [1.0, 1.0, 2.0, 1.0, 2.0, 1.0, 1.0]
    """
    y = x.to(torch.float64).view(1, 1, -1)
    for layer in layers:
        w = torch.tensor(layer.weights, dtype=torch.float64).view(1, 1, -1)
        y = F.conv_transpose1d(y, w, stride=layer.stride)
    return y.flatten()


def transposed_conv_2d(x: torch.Tensor, layers: Sequence[OverlapLayer]) -> torch.Tensor:
    """Apply the stack to a 2D map ``x`` with the separable kernels ``h h^T`` (full output), in float64.

    Args:
        x: the map.
        layers: the stack.

    Shape:
        ``(N, N)`` -> ``(M, M)``, ``M`` as for :func:`transposed_conv_1d`; float64.

    Example:
        >>> transposed_conv_2d(torch.ones(2, 2), stack(1, 2)).tolist()
        [[1.0, 0.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 1.0]]
    """
    y = x.to(torch.float64)[None, None]
    for layer in layers:
        h = torch.tensor(layer.weights, dtype=torch.float64)
        y = F.conv_transpose2d(y, torch.outer(h, h)[None, None], stride=layer.stride)
    return y[0, 0]


@dataclass
class OverlapReport:
    """Overlap pattern of a stack and its spectrum (see the module docstring); made by :func:`analyse_overlap`."""

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
        """JSON-ready: the fields, with infinite ratios as None."""
        d = dict(self.__dict__)
        for key in ("ratio_1d", "ratio_2d"):
            d[key] = d[key] if math.isfinite(d[key]) else None
        return d


def stack(kernel: int | Sequence[float], stride: int, layers: int = 1, final: int = 0) -> list[OverlapLayer]:
    """``layers`` copies of (kernel, stride), then a stride-1 box of size ``final`` if ``final > 0``.

    Args:
        kernel: a box size, or the weights.
        stride: the stride of each copy.
        layers: the number of copies (>= 1).
        final: the size of a final stride-1 box (0: none).

    Returns:
        the stack, first layer first.

    Raises:
        GradvizError: a bad kernel, stride, count or final size.

    Example:
        >>> [(layer.size, layer.stride) for layer in stack(3, 2, layers=2, final=2)]
        [(3, 2), (3, 2), (2, 1)]
    """
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
    """Pattern, max/min and spectrum of a stack of transposed convolutions.

    Example:
        >>> r = analyse_overlap(stack(3, 2))
        >>> r.period, r.pattern, r.ratio_1d, r.ratio_2d, r.even
        (2, [2.0, 1.0], 2.0, 4.0, False)
    """
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


def stack_label(layers: Sequence[OverlapLayer]) -> str:
    """A short name of the stack: ``k<size> s<stride>`` per layer (weights in brackets unless a box).

    Example:
        >>> stack_label(stack(3, 2, final=2)), stack_label(stack([1.0, 2.0, 1.0], 2))
        ('k3 s2 -> k2 s1', 'k[1,2,1] s2')
    """

    def one(layer: OverlapLayer) -> str:
        w = layer.weights
        k = str(len(w)) if all(v == 1.0 for v in w) else "[" + ",".join(f"{v:g}" for v in w) + "]"
        return f"k{k} s{layer.stride}"

    return " -> ".join(one(layer) for layer in layers)


@dataclass(frozen=True)
class OverlapPrefix:
    """The first layers of a stack, and what they do to a constant input (one row of the overlap figure).

    Args:
        label: :func:`stack_label` of these layers.
        report: their :func:`analyse_overlap`.
        n_inputs: the size of the constant input (``n_inputs`` ones, or ``n_inputs x n_inputs``).
        output_1d: :func:`transposed_conv_1d` of the 1D constant input.
        output_2d: :func:`transposed_conv_2d` of the 2D constant input.
    """

    label: str
    report: OverlapReport
    n_inputs: int
    output_1d: torch.Tensor
    output_2d: torch.Tensor


def overlap_prefixes(layers: Sequence[OverlapLayer], n_inputs: int = 6) -> list[OverlapPrefix]:
    """For each prefix of the stack (first layer, first two, ..., all): its report and the outputs of a
    constant input, what :func:`gradviz.upsampling.render.overlap_figure` draws.

    Args:
        layers: the stack.
        n_inputs: the size of the constant input.

    Returns:
        one :class:`OverlapPrefix` per prefix, shortest first.

    Shape:
        ``output_1d`` ``(M,)`` and ``output_2d`` ``(M, M)``, ``M`` as for :func:`transposed_conv_1d`.

    Example:
        >>> [(p.label, p.output_1d.tolist()) for p in overlap_prefixes(stack(3, 2, final=2), n_inputs=2)]
        [('k3 s2', [1.0, 1.0, 2.0, 1.0, 1.0]), ('k3 s2 -> k2 s1', [1.0, 2.0, 3.0, 3.0, 2.0, 1.0])]
    """
    out = []
    for i in range(len(layers)):
        prefix = list(layers[: i + 1])
        out.append(OverlapPrefix(
            label=stack_label(prefix),
            report=analyse_overlap(prefix),
            n_inputs=n_inputs,
            output_1d=transposed_conv_1d(torch.ones(n_inputs), prefix),
            output_2d=transposed_conv_2d(torch.ones(n_inputs, n_inputs), prefix),
        ))
    return out
