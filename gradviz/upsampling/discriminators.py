"""Discriminators whose first layer is strided or not, the photo patches they see, and their input
gradients at initialisation.

The seed's claim: when the generator is neither biased for nor against checkerboards
(resize-convolution), a stride-2 first layer in the discriminator puts period-2 artifacts into the
gradient it sends the generator, and so into the generator's images.

Discriminator (DCGAN-style, for 3 x 32 x 32 images): a first layer that halves the size, then
``conv 4x4 stride 2`` twice (LeakyReLU 0.2 after each), then a linear layer to one logit. First
layers (``FIRST_LAYERS``):

- ``stride2``: conv 4x4 stride 2 (DCGAN; kernel divisible by stride: even overlap);
- ``stride2-k3``: conv 3x3 stride 2 (uneven overlap);
- ``conv+pool``: conv 3x3 stride 1, LeakyReLU, 2x2 average pooling;
- ``conv+maxpool``: conv 3x3 stride 1, LeakyReLU, 2x2 max pooling.

Data: RGB photographs bundled with scikit-image, averaged down by ``downscale`` and cut into
32 x 32 patches (plus mirror images), scaled to [-1, 1].
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import skimage.data
import torch
import torch.nn.functional as F
from torch import nn

from gradviz.errors import GradvizError
from gradviz.registry import Registry
from gradviz.spectrum import CheckerboardMetrics, checkerboard_metrics
from gradviz.upsampling.dcgan import LEAKY_SLOPE, dcgan_init_, seeded_construction

__all__ = [
    "FIRST_LAYERS",
    "PERIOD",
    "PHOTOS",
    "Discriminator",
    "DiscriminatorResult",
    "discriminator_input_gradient",
    "first_layer",
    "measure_discriminator",
    "photo_patches",
    "pick_patches",
]

# scikit-image's bundled RGB photographs the patches are cut from.
PHOTOS = ["astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry"]
# The discriminator's total downsampling: 3 halvings.
PERIOD = 8

# First layers by the name the command line uses: ``fn(c_in, c_out)`` -> a layer that halves the
# size, its LeakyReLU included.
FIRST_LAYERS: Registry[Callable[[int, int], nn.Sequential]] = Registry("first layer")


@FIRST_LAYERS.register("stride2")
def _stride2(c_in: int, c_out: int) -> nn.Sequential:
    """conv 4x4 stride 2 (DCGAN; even overlap)"""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.LeakyReLU(LEAKY_SLOPE))


@FIRST_LAYERS.register("stride2-k3")
def _stride2_k3(c_in: int, c_out: int) -> nn.Sequential:
    """conv 3x3 stride 2 (uneven overlap)"""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.LeakyReLU(LEAKY_SLOPE))


@FIRST_LAYERS.register("conv+pool")
def _conv_pool(c_in: int, c_out: int) -> nn.Sequential:
    """conv 3x3 stride 1, then 2x2 average pooling"""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.LeakyReLU(LEAKY_SLOPE), nn.AvgPool2d(2))


@FIRST_LAYERS.register("conv+maxpool")
def _conv_maxpool(c_in: int, c_out: int) -> nn.Sequential:
    """conv 3x3 stride 1, then 2x2 max pooling"""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.LeakyReLU(LEAKY_SLOPE), nn.MaxPool2d(2))


def first_layer(kind: str, c_in: int, c_out: int) -> nn.Sequential:
    """The discriminator's first layer (halves the size), LeakyReLU included.

    Args:
        kind: a name of ``FIRST_LAYERS``.
        c_in: input channels.
        c_out: output channels.

    Returns:
        the layer, with PyTorch's default initialisation.

    Raises:
        GradvizError: ``kind`` is not one of ``FIRST_LAYERS``.

    Shape:
        ``(B, c_in, H, W)`` -> ``(B, c_out, H / 2, W / 2)`` for even ``H``, ``W``.

    Example:
        >>> first_layer("conv+pool", 3, 4)(torch.zeros(1, 3, 16, 16)).shape
        torch.Size([1, 4, 8, 8])
        >>> list(FIRST_LAYERS)
        ['stride2', 'stride2-k3', 'conv+pool', 'conv+maxpool']
    """
    return FIRST_LAYERS[kind](c_in, c_out)


class Discriminator(nn.Module):
    """first layer -> (conv 4x4 s2, LeakyReLU) x 2 -> linear logit, for ``size`` x ``size`` inputs.

    Weights use the DCGAN init, drawn from torch's global generator; build it inside
    :func:`gradviz.upsampling.dcgan.seeded_construction` to fix them.

    Args:
        first: a name of ``FIRST_LAYERS``.
        width: channels after the first layer (doubled by each later convolution).
        channels: channels of the images.
        size: height and width of the images, a multiple of ``PERIOD``.

    Raises:
        GradvizError: an unknown first layer, or ``size`` not a multiple of ``PERIOD``.

    Shape:
        ``(B, channels, size, size)`` -> ``(B,)`` logits.

    Example:
        >>> Discriminator("stride2", width=4, size=16)(torch.zeros(2, 3, 16, 16)).shape
        torch.Size([2])
    """

    def __init__(self, first: str, width: int = 32, channels: int = 3, size: int = 32):
        super().__init__()
        if size % PERIOD:
            raise GradvizError(f"image size must be a multiple of {PERIOD}, got {size}")
        self.first = first_layer(first, channels, width)
        self.rest = nn.Sequential(
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1), nn.LeakyReLU(LEAKY_SLOPE),
            nn.Conv2d(2 * width, 4 * width, 4, stride=2, padding=1), nn.LeakyReLU(LEAKY_SLOPE),
            nn.Flatten(), nn.Linear(4 * width * (size // PERIOD) ** 2, 1),
        )
        self.apply(dcgan_init_)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rest(self.first(x)).flatten()


def photo_patches(size: int = 32, downscale: int = 4, step: int = 8, photos: list[str] | None = None) -> torch.Tensor:
    """Patches in [-1, 1] from scikit-image's bundled RGB photos.

    Each photo is averaged over ``downscale x downscale`` blocks, cut into patches every ``step``
    pixels, and mirrored left-right (the mirror images follow the originals).

    Args:
        size: height and width of a patch.
        downscale: the averaging block.
        step: the distance between patches.
        photos: names of ``skimage.data`` images (default ``PHOTOS``).

    Returns:
        the patches.

    Shape:
        ``(N, 3, size, size)``, ``N`` twice the number of patches cut.

    Example:
        >>> x = photo_patches(size=16, downscale=8, step=16, photos=["astronaut"])
        >>> tuple(x.shape), bool(x.min() >= -1 and x.max() <= 1)
        ((32, 3, 16, 16), True)
    """
    out = []
    for name in photos or PHOTOS:
        img = torch.from_numpy(getattr(skimage.data, name)()[..., :3].copy()).permute(2, 0, 1).float() / 127.5 - 1
        img = F.avg_pool2d(img[None], downscale)
        p = img.unfold(2, size, step).unfold(3, size, step)  # (1, 3, nh, nw, size, size)
        out.append(p.permute(0, 2, 3, 1, 4, 5).reshape(-1, 3, size, size))
    x = torch.cat(out)
    return torch.cat([x, x.flip(-1)])


def pick_patches(n: int, seed: int = 0) -> torch.Tensor:
    """``n`` of the default :func:`photo_patches`, drawn without replacement with a seeded generator.

    Args:
        n: number of patches, from 1 to all of them.
        seed: seed of the draw (a local ``torch.Generator``).

    Returns:
        the patches.

    Raises:
        GradvizError: ``n`` out of range.

    Shape:
        ``(n, 3, 32, 32)``.
    """
    data = photo_patches()
    if not 1 <= n <= len(data):
        raise GradvizError(f"number of patches must be between 1 and {len(data)}, got {n}")
    idx = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:n]
    return data[idx]


def discriminator_input_gradient(disc: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Signed gradient of the summed logits with respect to the input images (one per image).

    Only the input's gradient is computed: no parameter gradient is accumulated. (Not to be confused
    with :func:`gradviz.core.gradients.input_gradient`, the gradient of an objective on a tapped layer.)

    Args:
        disc: a discriminator, or any module giving one logit per image.
        images: the input batch.

    Returns:
        the gradient, detached.

    Shape:
        ``images`` ``(B, C, H, W)`` -> gradient ``(B, C, H, W)``.

    Example:
        >>> conv = nn.Conv2d(1, 1, 2, bias=False)
        >>> _ = conv.weight.data.fill_(1.0)
        >>> discriminator_input_gradient(conv, torch.zeros(1, 1, 3, 3))[0, 0].tolist()
        [[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]
    """
    x = images.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(disc(x).sum(), x)  # input only: no parameter gradients
    return grad.detach()


@dataclass
class DiscriminatorResult:
    """A fresh discriminator's input gradient on a batch of images, and its checkerboard metrics.

    Args:
        first_layer: the first layer's name.
        seed: the seed of the weights.
        metrics: the gradient's metrics at period ``PERIOD``.
        gradient: the signed gradient, ``(B, 3, H, W)``.
    """

    first_layer: str
    seed: int
    metrics: CheckerboardMetrics
    gradient: torch.Tensor


def measure_discriminator(first: str, images: torch.Tensor, seed: int = 0, width: int = 32) -> DiscriminatorResult:
    """Input-gradient metrics (period ``PERIOD``) of a fresh discriminator.

    The weights are fixed by ``seed`` (drawn as after ``torch.manual_seed(seed)``, inside
    :func:`gradviz.upsampling.dcgan.seeded_construction`, so the caller's random state is untouched).

    Args:
        first: a name of ``FIRST_LAYERS``.
        images: the batch the gradient is taken on, in [-1, 1].
        seed: the seed of the weights.
        width: channels after the first layer.

    Returns:
        the gradient and its metrics.

    Shape:
        ``images`` ``(B, 3, size, size)``, ``size`` a multiple of ``PERIOD``.

    Example:
        >>> x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
        >>> r = measure_discriminator("stride2", x, width=4)
        >>> r.metrics.stride, tuple(r.gradient.shape)
        (8, (2, 3, 16, 16))
    """
    with seeded_construction(seed):
        disc = Discriminator(first, width=width, size=images.shape[-1])
    grad = discriminator_input_gradient(disc, images)
    return DiscriminatorResult(first, seed, checkerboard_metrics(grad, PERIOD), grad)
