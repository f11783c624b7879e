"""Spectrum stage: FFT power of signed gradient maps and the checkerboard metrics.

Conventions, for a gradient ``g`` of shape (C, H, W) or (B, C, H, W) and a period ``S``
(the cumulative stride of the layer whose objective produced ``g``):

1. **Crop.** Keep the top-left ``H' x W'`` pixels with ``H' = S * floor(H / S)`` (same for W).
   A network samples its input on a grid anchored at pixel (0, 0), so cutting rows and
   columns off the bottom and right keeps every pixel at the phase it had.
2. **Mean.** Remove each channel's mean, per image.
3. **FFT.** ``G_c = fft2(g_c, norm="ortho")`` so that ``sum |G_c|^2 = sum g_c^2`` (Parseval);
   the power is ``P(u, v) = sum_c |G_c(u, v)|^2``, summed over images for a batch.

Frequencies are ``f_y = u / H'`` and ``f_x = v / W'`` cycles per pixel. The *lattice* is the set
of bins whose two frequencies are both multiples of ``1 / S``, i.e. ``u`` a multiple of
``H' / S`` and ``v`` a multiple of ``W' / S``; a pattern that repeats every ``S`` pixels lives
there and nowhere else.

- ``lattice_fraction = sum_{lattice, not DC} P / sum_{not DC} P``
- ``null_fraction = (S*S - 1) / (H'*W' - 1)``: its expectation for white noise.
- ``octave_fractions[j-1]``, j = 1 .. log2(S): the lattice energy at bins of period exactly
  ``2**j`` pixels, over all non-DC energy; the bin at ``(a/S, b/S)`` has period
  ``S / gcd(a, b, S)``. They add up to ``lattice_fraction``.
- ``tile[p, q] = mean{ sum_c g_c[y, x]^2 : y = p mod S, x = q mod S }`` on the cropped gradient
  (channel means kept, averaged over images), divided by its own mean so that it averages 1.
  ``tile_contrast = max / min`` and ``tile_cv = std / mean``; ``tile_cv_null = sqrt(2 S^2 / (C H' W' N))``
  is the tile cv that Gaussian white noise of the same size (C channels, N images) shows by chance,
  since each cell averages only ``H' W' N / S^2`` pixels. For a constant kernel with
  white-noise upstream gradient the tile is the Distill article's overlap count pattern.
- ``hf_offlattice_fraction``: energy in the top octave (``max(|f_y|, |f_x|) >= 1/4``) that is not
  on the lattice, over all non-DC energy; the less organised high-frequency noise.

Every number is a ratio of energies, so the metrics do not change when ``g`` is scaled.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch

from gradviz.outputs import json_ready

__all__ = [
    "CheckerboardMetrics",
    "SpectrumAccumulator",
    "checkerboard_metrics",
    "crop_to_period",
    "lattice_mask",
    "period_map",
    "radial_profile",
]

# Bins with max(|f_y|, |f_x|) at or above this many cycles per pixel form the top octave
# (periods of 2 to 4 pixels), where max-pooling noise shows.
HIGH_FREQUENCY_CUTOFF = 0.25


@dataclass
class CheckerboardMetrics:
    """Checkerboard metrics of one gradient map or a pooled batch (see the module docstring)."""

    stride: int
    shape: tuple[int, int]  # (H', W') after cropping
    lattice_fraction: float
    null_fraction: float
    octave_fractions: list[float]
    octave_null_fractions: list[float]
    tile: list[list[float]]
    tile_contrast: float
    tile_cv: float
    hf_offlattice_fraction: float
    hf_offlattice_null: float
    coherent_lattice_fraction: float = math.nan
    tile_cv_null: float = math.nan
    n_images: int = 1
    period_fractions: dict[int, float] = field(default_factory=dict)

    @property
    def lattice_ratio(self) -> float:
        """``lattice_fraction / null_fraction``: how many times white noise's share."""
        return self.lattice_fraction / self.null_fraction if self.null_fraction > 0 else math.nan

    def to_dict(self) -> dict:
        """JSON-ready dict; infinities and NaNs become ``None``."""
        d = asdict(self)
        d["lattice_ratio"] = self.lattice_ratio
        d["period_fractions"] = {str(k): v for k, v in self.period_fractions.items()}
        return json_ready(d)


def _check_stride(stride: int) -> int:
    if isinstance(stride, bool) or int(stride) != stride or stride < 1:
        raise ValueError(f"stride must be a positive integer, got {stride!r}")
    return int(stride)


def crop_to_period(grad: torch.Tensor, stride: int) -> torch.Tensor:
    """Top-left crop of the last two dims to multiples of ``stride`` (see step 1 above)."""
    stride = _check_stride(stride)
    h, w = grad.shape[-2:]
    hc, wc = (h // stride) * stride, (w // stride) * stride
    if hc == 0 or wc == 0:
        raise ValueError(f"gradient of size {h}x{w} is smaller than the period {stride}")
    return grad[..., :hc, :wc]


def period_map(height: int, width: int, stride: int, device=None) -> torch.Tensor:
    """(H, W) integer map: the period ``S / gcd(a, b, S)`` of each lattice bin, 0 elsewhere.

    ``height`` and ``width`` must be multiples of ``stride``; DC has period 1.
    """
    stride = _check_stride(stride)
    if height % stride or width % stride:
        raise ValueError(f"size {height}x{width} is not a multiple of the period {stride}")
    my, mx = height // stride, width // stride
    u = torch.arange(height, device=device)
    v = torch.arange(width, device=device)
    on_u, on_v = (u % my == 0), (v % mx == 0)
    a, b = (u // my)[:, None], (v // mx)[None, :]
    g = torch.gcd(torch.gcd(a, b), torch.tensor(stride, device=device))
    periods = stride // g
    return torch.where(on_u[:, None] & on_v[None, :], periods, torch.zeros_like(periods))


def lattice_mask(height: int, width: int, stride: int, device=None) -> torch.Tensor:
    """Boolean (H, W) mask of the non-DC lattice bins for period ``stride``."""
    return period_map(height, width, stride, device) > 1


def _high_band(height: int, width: int, device=None) -> torch.Tensor:
    fy = torch.fft.fftfreq(height, device=device).abs()
    fx = torch.fft.fftfreq(width, device=device).abs()
    return torch.maximum(fy[:, None], fx[None, :]) >= HIGH_FREQUENCY_CUTOFF


def _as_batch(grad: torch.Tensor) -> torch.Tensor:
    if grad.dim() == 2:
        return grad[None, None]
    if grad.dim() == 3:
        return grad[None]
    if grad.dim() == 4:
        return grad
    raise ValueError(f"expected a gradient of shape (H, W), (C, H, W) or (B, C, H, W), got {tuple(grad.shape)}")


class SpectrumAccumulator:
    """Accumulates power spectra, the energy tile and the mean gradient over batches.

    Memory is constant in the number of images: only sums are kept, on the gradients' device,
    in float64.
    """

    def __init__(self, stride: int):
        self.stride = _check_stride(stride)
        self.n_images = 0
        self.power_sum: torch.Tensor | None = None  # (H', W'): sum over images of P
        self.grad_sum: torch.Tensor | None = None  # (C, H', W'): for the coherent spectrum
        self.tile_sum: torch.Tensor | None = None  # (S, S): sum over images of the phase means

    def add(self, grad: torch.Tensor) -> None:
        """Add a gradient map (C, H, W) or a batch (B, C, H, W)."""
        g = crop_to_period(_as_batch(grad.detach()), self.stride).to(torch.float64)
        b, c, h, w = g.shape
        if self.power_sum is not None and self.grad_sum.shape != (c, h, w):
            raise ValueError(
                f"gradient shape {(c, h, w)} differs from the first one {tuple(self.grad_sum.shape)}"
            )
        s = self.stride
        energy = (g * g).sum(1)  # (B, H', W')
        tile = energy.reshape(b, h // s, s, w // s, s).mean(dim=(1, 3)).sum(0)
        centred = g - g.mean(dim=(-2, -1), keepdim=True)
        power = torch.fft.fft2(centred, norm="ortho").abs().square().sum(dim=(0, 1))
        if self.power_sum is None:
            self.power_sum, self.grad_sum, self.tile_sum = power, g.sum(0), tile
        else:
            self.power_sum += power
            self.grad_sum += g.sum(0)
            self.tile_sum += tile
        self.n_images += b

    def _require(self) -> None:
        if self.n_images == 0:
            raise ValueError("no gradient was added")

    def incoherent_power(self) -> torch.Tensor:
        """Mean over images of the power spectrum P (the mean of the spectra), (H', W')."""
        self._require()
        return self.power_sum / self.n_images

    def coherent_power(self) -> torch.Tensor:
        """Power spectrum of the mean gradient (the spectrum of the mean), (H', W')."""
        self._require()
        mean = self.grad_sum / self.n_images
        mean = mean - mean.mean(dim=(-2, -1), keepdim=True)
        return torch.fft.fft2(mean, norm="ortho").abs().square().sum(0)

    def mean_gradient(self) -> torch.Tensor:
        self._require()
        return self.grad_sum / self.n_images

    def metrics(self) -> CheckerboardMetrics:
        """The metrics of the pooled batch: fractions of summed energies over all images."""
        self._require()
        power = self.power_sum
        h, w = power.shape
        s = self.stride
        periods = period_map(h, w, s, power.device)
        non_dc = power.clone()
        non_dc[0, 0] = 0.0
        total = float(non_dc.sum())
        n_bins = h * w - 1
        on_lattice = periods > 1
        lattice = float(non_dc[on_lattice].sum())

        period_fractions: dict[int, float] = {}
        for p in sorted({int(x) for x in periods.unique().tolist()} - {0, 1}):
            period_fractions[p] = _ratio(float(non_dc[periods == p].sum()), total)
        octave_fracs: list[float] = []
        octave_nulls: list[float] = []
        if s & (s - 1) == 0:  # power of two
            for j in range(1, s.bit_length()):
                octave_fracs.append(period_fractions.get(2**j, 0.0))
                octave_nulls.append(float((periods == 2**j).sum()) / n_bins)

        high = _high_band(h, w, power.device) & ~on_lattice
        high[0, 0] = False
        hf = float(non_dc[high].sum())

        tile = self.tile_sum / self.n_images
        tile_mean = float(tile.mean())
        if tile_mean > 0:
            tile = tile / tile_mean
            tmin = float(tile.min())
            contrast = float(tile.max()) / tmin if tmin > 0 else math.inf
            cv = float(tile.std(unbiased=False))
        else:
            contrast, cv = math.nan, math.nan

        coherent = self.coherent_power()
        coherent[0, 0] = 0.0
        coherent_fraction = _ratio(float(coherent[on_lattice].sum()), float(coherent.sum()))

        return CheckerboardMetrics(
            stride=s,
            shape=(h, w),
            lattice_fraction=_ratio(lattice, total),
            null_fraction=(s * s - 1) / n_bins if n_bins > 0 else math.nan,
            octave_fractions=octave_fracs,
            octave_null_fractions=octave_nulls,
            tile=tile.tolist(),
            tile_contrast=contrast,
            tile_cv=cv,
            hf_offlattice_fraction=_ratio(hf, total),
            hf_offlattice_null=float(high.sum()) / n_bins if n_bins > 0 else math.nan,
            coherent_lattice_fraction=coherent_fraction,
            tile_cv_null=math.sqrt(2 * s * s / (self.grad_sum.shape[0] * h * w * self.n_images)),
            n_images=self.n_images,
            period_fractions=period_fractions,
        )


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else math.nan


def checkerboard_metrics(grad: torch.Tensor, stride: int) -> CheckerboardMetrics:
    """Checkerboard metrics of a signed gradient map (C, H, W) or a batch (B, C, H, W).

    For a batch the energies are summed over images before the ratios are taken (the metrics
    of the incoherent mean spectrum); ``coherent_lattice_fraction`` is that of the mean
    gradient. See the module docstring for the formulas.
    """
    acc = SpectrumAccumulator(stride)
    acc.add(grad)
    return acc.metrics()


def radial_profile(power: torch.Tensor, n_bins: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Azimuthal mean of a power spectrum (H, W) against radius in cycles per pixel.

    For plots only: averaging over rings dilutes the lattice lines (the corner bin (1/2, 1/2)
    sits alone at radius 0.707).
    Returns ``(radius_centres, mean_power)``; empty rings give NaN.
    """
    h, w = power.shape
    fy = torch.fft.fftfreq(h, device=power.device, dtype=torch.float64)
    fx = torch.fft.fftfreq(w, device=power.device, dtype=torch.float64)
    r = torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2).flatten()
    n_bins = n_bins or max(h, w) // 2
    edges = torch.linspace(0.0, math.sqrt(0.5) + 1e-9, n_bins + 1, device=power.device, dtype=torch.float64)
    idx = torch.bucketize(r, edges[1:-1])
    p = power.flatten().to(torch.float64)
    sums = torch.zeros(n_bins, dtype=torch.float64, device=power.device).index_add_(0, idx, p)
    counts = torch.zeros(n_bins, dtype=torch.float64, device=power.device).index_add_(0, idx, torch.ones_like(p))
    centres = (edges[1:] + edges[:-1]) / 2
    return centres, sums / counts
