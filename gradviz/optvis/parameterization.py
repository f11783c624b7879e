"""Parameterisation stage: what the optimiser changes, and how it becomes an RGB image in [0, 1].

- :class:`PixelImage` (the default, ``"pixel"``): the parameters *are* the pixels. ``project()``
  clamps them to [0, 1] after each step. Nothing filters the update, so its spectrum is the
  gradient's: the right choice for measuring artifacts.
- :class:`FourierImage` (``"fourier"``): Lucid's parameterisation. With ``s`` the (B, 3, H, W/2+1)
  complex spectrum, ``w(f) = 1 / max(|f|, 1/max(H, W))**decay`` and ``C`` Lucid's colour matrix,
  ``image = sigmoid(C · irfft2(w · s, norm="ortho"))``. It boosts low frequencies (whitened
  gradient) and therefore changes the update's spectrum: use it for pictures, not measurements.

Both are built from a start image (``from_image``), which is how octaves hand an image on;
:data:`PARAMETERIZATIONS` maps the command line's names to these builders.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from gradviz.errors import GradvizError
from gradviz.io.images import read_image, resize_square
from gradviz.registry import Registry

__all__ = [
    "GREY",
    "NOISE_STD",
    "PARAMETERIZATIONS",
    "START_KINDS",
    "FourierImage",
    "PixelImage",
    "make_parameterization",
    "start_images",
]

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
    """Plain pixels: ``forward() = x``, clamped to [0, 1] by ``project()``.

    Args:
        image: the start image, clamped to [0, 1] and copied into the parameter ``pixels``.

    Shape:
        ``forward()``: (B, 3, H, W), the parameter itself.

    Example:
        >>> p = PixelImage(torch.full((1, 3, 2, 2), 0.5))
        >>> with torch.no_grad():
        ...     _ = p.pixels.add_(0.8)
        >>> p.project(); p().max().item()
        1.0
    """

    def __init__(self, image: torch.Tensor):
        super().__init__()
        self.pixels = nn.Parameter(image.detach().clone().clamp(0, 1))

    @classmethod
    def from_image(cls, image: torch.Tensor) -> PixelImage:
        """The parameters whose image is ``image`` (clamped to [0, 1])."""
        return cls(image)

    def forward(self) -> torch.Tensor:
        """The image: the pixel parameter, (B, 3, H, W)."""
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
    """Lucid's Fourier parameterisation with decorrelated colour (see the module docstring).

    Args:
        spectrum: the (B, 3, H, W // 2 + 1) complex spectrum before the frequency scale.
        height, width: the image size.

    Shape:
        ``forward()``: (B, 3, height, width) in (0, 1).

    Example:
        >>> x = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 0.9 + 0.05
        >>> torch.allclose(FourierImage.from_image(x)(), x, atol=1e-5)
        True
    """

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
        """The image ``sigmoid(C · irfft2(w · s))``, (B, 3, H, W)."""
        spectrum = torch.view_as_complex(self.spectrum) * self.scale
        decorrelated = torch.fft.irfft2(spectrum, s=(self.height, self.width), norm="ortho")
        return torch.sigmoid(torch.einsum("ij,bjhw->bihw", self.color, decorrelated))

    def project(self) -> None:
        """Nothing to do: the sigmoid keeps every pixel in (0, 1)."""


# Parameterisations by the name the command line uses: each builds, from a start image
# (B, 3, H, W) in [0, 1], the module whose ``forward()`` gives that image; its docstring's first
# line is the description ``--help`` shows.
PARAMETERIZATIONS: Registry[Callable[[torch.Tensor], PixelImage | FourierImage]] = Registry("parameterisation")


@PARAMETERIZATIONS.register("pixel")
def _pixel(image: torch.Tensor) -> PixelImage:
    """plain pixels, clamped to [0, 1] after each step (the update's spectrum is the gradient's)"""
    return PixelImage.from_image(image)


@PARAMETERIZATIONS.register("fourier")
def _fourier(image: torch.Tensor) -> FourierImage:
    """Lucid's Fourier image with decorrelated colour (boosts low frequencies: for pictures)"""
    return FourierImage.from_image(image)


def make_parameterization(kind: str, image: torch.Tensor) -> PixelImage | FourierImage:
    """A ``kind`` parameterisation (see :data:`PARAMETERIZATIONS`) whose image is ``image``.

    Args:
        kind: ``"pixel"`` or ``"fourier"``.
        image: the start image in [0, 1].

    Returns:
        A module; ``module()`` is the image, ``module.project()`` runs after each step.

    Shape:
        image: (B, 3, H, W); ``module()``: (B, 3, H, W).

    Example:
        >>> type(make_parameterization("pixel", torch.zeros(1, 3, 4, 4))).__name__
        'PixelImage'
        >>> make_parameterization("wavelet", torch.zeros(1, 3, 4, 4))
        Traceback (most recent call last):
        ...
        gradviz.errors.GradvizError: unknown parameterisation 'wavelet'; valid: pixel, fourier
    """
    return PARAMETERIZATIONS[kind](image)


def start_images(start: str | Path, size: int, batch: int = 1, seed: int = 0) -> torch.Tensor:
    """Start images in [0, 1]: grey, grey plus noise, or a photograph.

    Args:
        start: ``"grey"`` (every pixel ``GREY``), ``"noise"`` (``GREY`` plus Gaussian noise of std
            ``NOISE_STD`` from a local generator seeded with ``seed``, clamped to [0, 1]) or the
            path of a photograph (resized and centre-cropped; every image of the batch the same).
        size: the image side in pixels.
        batch: the number of images.
        seed: the noise seed.

    Returns:
        The images; the noise images differ from one another.

    Shape:
        (batch, 3, size, size).

    Example:
        >>> start_images("grey", 4, batch=2).shape, float(start_images("grey", 4).mean())
        (torch.Size([2, 3, 4, 4]), 0.5)
        >>> torch.equal(start_images("noise", 8, seed=1), start_images("noise", 8, seed=1))
        True
    """
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
