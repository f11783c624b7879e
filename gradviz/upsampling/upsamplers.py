"""The x2 upsampling layers a generator can use, by the name its design string gives them.

``UPSAMPLERS`` maps each name to ``fn(c_in, c_out) -> nn.Module``, a layer that doubles the height
and width of a ``(B, c_in, H, W)`` map and gives ``c_out`` channels:

- ``deconv3``, ``deconv4``, ``deconv5``: a transposed convolution of kernel k, stride 2 (uneven
  overlap unless 2 divides k);
- ``nearest``, ``bilinear``: resize by 2, then a 3x3 stride-1 convolution (resize-convolution);
- ``subpixel``: a 3x3 convolution to 4x the channels, then pixel shuffle; ``subpixel-icnr`` is
  initialised with ICNR (the 4 sub-pixel kernels equal), so it is a nearest resize-convolution.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from gradviz.registry import Registry

__all__ = ["DECONV_KERNELS", "UPSAMPLERS", "ResizeConv", "SubPixelConv", "upsampling_block"]


class ResizeConv(nn.Module):
    """Resize by 2 (``nearest`` or ``bilinear``), then a 3x3 stride-1 convolution (replicate padding).

    Args:
        c_in: input channels.
        c_out: output channels.
        mode: ``"nearest"`` or ``"bilinear"`` (:class:`torch.nn.Upsample`'s mode).

    Shape:
        ``(B, c_in, H, W)`` -> ``(B, c_out, 2H, 2W)``.

    Example:
        >>> ResizeConv(4, 3, "bilinear")(torch.zeros(1, 4, 5, 7)).shape
        torch.Size([1, 3, 10, 14])
    """

    def __init__(self, c_in: int, c_out: int, mode: str = "nearest"):
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode=mode)
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1, padding_mode="replicate")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.up(x))


class SubPixelConv(nn.Module):
    """3x3 convolution to ``4 c_out`` channels, then pixel shuffle by 2 (sub-pixel convolution).

    Args:
        c_in: input channels.
        c_out: output channels.
        icnr: start with :meth:`icnr_` applied; ``icnr`` stays True so that a network that redraws
            its weights (DCGAN init) can apply it again.

    Shape:
        ``(B, c_in, H, W)`` -> ``(B, c_out, 2H, 2W)``.

    Example:
        >>> block = SubPixelConv(4, 3, icnr=True)
        >>> y = block(torch.randn(1, 4, 5, 5, generator=torch.Generator().manual_seed(0)))
        >>> y.shape, torch.equal(y[..., ::2, ::2], y[..., 1::2, 1::2])  # ICNR: each 2x2 block is constant
        (torch.Size([1, 3, 10, 10]), True)
    """

    def __init__(self, c_in: int, c_out: int, icnr: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(c_in, 4 * c_out, 3, padding=1, padding_mode="replicate")
        self.shuffle = nn.PixelShuffle(2)
        self.icnr = icnr
        if icnr:
            self.icnr_()

    def icnr_(self) -> SubPixelConv:
        """ICNR: copy one kernel to the 4 sub-pixel positions (channel ``c*4 + i`` -> output ``c``).

        Returns:
            the block itself, changed in place.
        """
        with torch.no_grad():
            w, b = self.conv.weight, self.conv.bias
            w.copy_(w[::4].repeat_interleave(4, dim=0))
            b.copy_(b[::4].repeat_interleave(4, dim=0))
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.conv(x))


# Upsampling layers by the name a generator design uses: ``fn(c_in, c_out)`` -> a x2 layer.
UPSAMPLERS: Registry[Callable[[int, int], nn.Module]] = Registry("upsampling")
# Kernel sizes of the transposed convolutions (``deconv<k>``).
DECONV_KERNELS = (3, 4, 5)


def _deconv(k: int) -> Callable[[int, int], nn.Module]:
    def block(c_in: int, c_out: int) -> nn.Module:
        pad = (k - 1) // 2
        return nn.ConvTranspose2d(c_in, c_out, k, stride=2, padding=pad, output_padding=2 - k + 2 * pad)

    return block


for _k in DECONV_KERNELS:
    UPSAMPLERS.register(
        f"deconv{_k}", _deconv(_k),
        doc=f"transposed convolution, kernel {_k}, stride 2 ({'even' if _k % 2 == 0 else 'uneven'} overlap)",
    )


@UPSAMPLERS.register("nearest")
def _nearest(c_in: int, c_out: int) -> nn.Module:
    """nearest-neighbour resize by 2, then a 3x3 convolution"""
    return ResizeConv(c_in, c_out, "nearest")


@UPSAMPLERS.register("bilinear")
def _bilinear(c_in: int, c_out: int) -> nn.Module:
    """bilinear resize by 2, then a 3x3 convolution"""
    return ResizeConv(c_in, c_out, "bilinear")


@UPSAMPLERS.register("subpixel")
def _subpixel(c_in: int, c_out: int) -> nn.Module:
    """3x3 convolution to 4x the channels, then pixel shuffle (random init)"""
    return SubPixelConv(c_in, c_out)


@UPSAMPLERS.register("subpixel-icnr")
def _subpixel_icnr(c_in: int, c_out: int) -> nn.Module:
    """sub-pixel convolution with ICNR init (equal to nearest resize-convolution at init)"""
    return SubPixelConv(c_in, c_out, icnr=True)


def upsampling_block(kind: str, c_in: int, c_out: int) -> nn.Module:
    """One x2 upsampling layer of the given kind (see the module docstring).

    Args:
        kind: a name of ``UPSAMPLERS``.
        c_in: input channels.
        c_out: output channels.

    Returns:
        the layer, with PyTorch's default initialisation (ICNR applied for ``subpixel-icnr``).

    Raises:
        GradvizError: ``kind`` is not one of ``UPSAMPLERS``.

    Shape:
        ``(B, c_in, H, W)`` -> ``(B, c_out, 2H, 2W)``.

    Example:
        >>> upsampling_block("deconv3", 4, 3)(torch.zeros(2, 4, 5, 7)).shape
        torch.Size([2, 3, 10, 14])
        >>> list(UPSAMPLERS)
        ['deconv3', 'deconv4', 'deconv5', 'nearest', 'bilinear', 'subpixel', 'subpixel-icnr']
    """
    return UPSAMPLERS[kind](c_in, c_out)
