"""Parameterisation stage: what the optimiser changes, and how it becomes an RGB image in [0, 1].

- :class:`PixelImage` (the default): the parameters *are* the pixels. ``project()`` clamps them
  to [0, 1] after each step. Nothing filters the update, so its spectrum is the gradient's:
  the right choice for measuring artifacts.
- :class:`FourierImage`: Lucid's parameterisation. With ``s`` the (B, 3, H, W/2+1) complex
  spectrum, ``w(f) = 1 / max(|f|, 1/max(H, W))**decay`` and ``C`` Lucid's colour matrix,
  ``image = sigmoid(C · irfft2(w · s, norm="ortho"))``. It boosts low frequencies (whitened
  gradient) and therefore changes the update's spectrum: use it for pictures, not measurements.

Both are built from a start image (``from_image``), which is how octaves hand an image on.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from gradviz.errors import GradvizError
from gradviz.images import read_image, resize_square

PARAMETERIZATIONS = ("pixel", "fourier")
START_KINDS = ("noise", "grey")

# Start images: grey 0.5 plus Gaussian noise of this standard deviation (in [0, 1] pixel units).
GREY = 0.5
NOISE_STD = 0.05

# Lucid's square root of the ImageNet colour covariance (lucid/optvis/param/color.py).
COLOR_CORRELATION_SVD_SQRT = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
# Lucid divides the matrix by its largest column norm.
COLOR_CORRELATION = COLOR_CORRELATION_SVD_SQRT / COLOR_CORRELATION_SVD_SQRT.norm(dim=0).max()
# The Fourier image's spectrum scale is 1 / frequency**DECAY_POWER (Lucid's default 1).
DECAY_POWER = 1.0
# Pixels are kept this far inside (0, 1) before the inverse sigmoid.
LOGIT_EPS = 1e-3


class PixelImage(nn.Module):
    """Plain pixels: ``forward() = x``, clamped to [0, 1] by ``project()``."""

    def __init__(self, image: torch.Tensor):
        super().__init__()
        self.pixels = nn.Parameter(image.detach().clone().clamp(0, 1))

    @classmethod
    def from_image(cls, image: torch.Tensor) -> PixelImage:
        return cls(image)

    def forward(self) -> torch.Tensor:
        return self.pixels

    @torch.no_grad()
    def project(self) -> None:
        """Keep the pixel values valid after an optimiser step."""
        self.pixels.clamp_(0, 1)


def _spectrum_scale(height: int, width: int, decay: float = DECAY_POWER) -> torch.Tensor:
    fy = torch.fft.fftfreq(height)[:, None]
    fx = torch.fft.rfftfreq(width)[None, :]
    freq = torch.sqrt(fy**2 + fx**2)
    return 1.0 / torch.clamp(freq, min=1.0 / max(height, width)) ** decay


class FourierImage(nn.Module):
    """Lucid's Fourier parameterisation with decorrelated colour (see the module docstring)."""

    def __init__(self, spectrum: torch.Tensor, height: int, width: int):
        super().__init__()
        self.height, self.width = height, width
        self.spectrum = nn.Parameter(torch.view_as_real(spectrum.detach().clone()))
        self.register_buffer("scale", _spectrum_scale(height, width).to(spectrum.device))
        self.register_buffer("color", COLOR_CORRELATION.to(spectrum.device))

    @classmethod
    def from_image(cls, image: torch.Tensor) -> FourierImage:
        """The parameters whose image is ``image`` (exactly, up to the ``LOGIT_EPS`` clamp)."""
        _, _, h, w = image.shape
        logits = torch.logit(image.detach().clamp(LOGIT_EPS, 1 - LOGIT_EPS))
        color = COLOR_CORRELATION.to(image.device)
        decorrelated = torch.einsum("ij,bjhw->bihw", torch.linalg.inv(color), logits)
        spectrum = torch.fft.rfft2(decorrelated, norm="ortho") / _spectrum_scale(h, w).to(image.device)
        return cls(spectrum, h, w)

    def forward(self) -> torch.Tensor:
        spectrum = torch.view_as_complex(self.spectrum) * self.scale
        decorrelated = torch.fft.irfft2(spectrum, s=(self.height, self.width), norm="ortho")
        return torch.sigmoid(torch.einsum("ij,bjhw->bihw", self.color, decorrelated))

    def project(self) -> None:
        """Nothing to do: the sigmoid keeps every pixel in (0, 1)."""


def make_parameterization(kind: str, image: torch.Tensor) -> PixelImage | FourierImage:
    """A ``kind`` parameterisation (``PARAMETERIZATIONS``) whose image is ``image`` (B, 3, H, W)."""
    if kind == "pixel":
        return PixelImage.from_image(image)
    if kind == "fourier":
        return FourierImage.from_image(image)
    raise GradvizError(f"unknown parameterisation {kind!r}; valid: {', '.join(PARAMETERIZATIONS)}")


def start_images(start: str | Path, size: int, batch: int = 1, seed: int = 0) -> torch.Tensor:
    """(batch, 3, size, size) start images in [0, 1]: ``"grey"``, ``"noise"`` (grey plus seeded
    Gaussian noise of std ``NOISE_STD``) or a path to a photograph (resized, centre-cropped)."""
    if size < 1:
        raise GradvizError(f"image size must be >= 1, got {size}")
    if batch < 1:
        raise GradvizError(f"batch must be >= 1, got {batch}")
    if str(start) == "grey":
        return torch.full((batch, 3, size, size), GREY)
    if str(start) == "noise":
        gen = torch.Generator().manual_seed(seed)
        noise = torch.randn(batch, 3, size, size, generator=gen) * NOISE_STD
        return (GREY + noise).clamp(0, 1)
    path = Path(start)
    if not path.exists():
        raise GradvizError(f"unknown start {str(start)!r}; valid: {', '.join(START_KINDS)} or an image file")
    image = resize_square(read_image(path), size)
    return image[None].expand(batch, -1, -1, -1).contiguous()
