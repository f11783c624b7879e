"""Downsampling variants of one loaded network: the same trained weights, another way to downsample.

Each variant is a copy of the loaded model (new modules, the same frozen weight tensors) in which only the downsampling modules are
swapped; every convolution keeps its weights, and the loaded model is never modified. Layer
names stay the same, so a variant is measured where the original is.

The variants are two registries, :data:`VGG_VARIANTS` and :data:`RESNET_VARIANTS` (name ->
a function that rewrites a copy of the torchvision network in place; the first line of its
docstring is the description ``gradviz compare --help`` and the reports print).

VGG (``features`` with 2x2 max-pools):

- ``maxpool``: as trained.
- ``stride``: the convolution before each pool runs at stride 2 and the pool becomes ``Identity``;
  ``conv_s2(x) = conv(x)[..., ::2, ::2]`` exactly, so this is a strided convolution with the same kernel.
- ``avgpool``: 2x2 average pool, stride 2.
- ``blurpool2`` .. ``blurpool5``: max-pool 2x2 at stride 1, then a binomial low-pass of that size at
  stride 2 (:class:`MaxBlurPool2d`; Zhang 2019, "Making Convolutional Networks Shift-Invariant Again").
- ``relaxed``: max-pool forward, average-pool backward (:class:`RelaxedMaxPool2d`).

ResNet:

- ``stride``: as built (strided 3x3 and 1x1 convolutions, max-pool after the stem).
- ``blurpool2`` .. ``blurpool5``: a stride-1 binomial blur in front of every strided convolution of the
  residual stages (:class:`Blurred`) and :class:`MaxBlurPool2d` for the stem's max-pool; the stem's
  7x7 stride-2 convolution stays aliased, as in Zhang's released ResNets.
- ``blurpool2-stem`` .. ``blurpool5-stem``: the same, and the stem convolution blurred too.

Blur then a stride-2 convolution equals the stride-1 convolution, then the blur, then keeping every
second pixel: the blur low-passes what the stride samples, with the trained receptive field kept.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from math import comb

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from gradviz.core.models import model_device
from gradviz.core.taps import layer_root
from gradviz.errors import GradvizError
from gradviz.registry import Registry

__all__ = [
    "AS_BUILT", "BLUR_SIZES", "DOWNSAMPLE", "RESNET_VARIANTS", "VARIANTS", "VGG_VARIANTS", "BlurPool2d", "Blurred",
    "MaxBlurPool2d", "RelaxedMaxPool2d", "binomial_kernel", "build_variant", "check_variant", "model_family", "variants_for",
]

# Binomial filter sizes offered (size 1 would be no filter at all).
BLUR_SIZES = (2, 3, 4, 5)
# Every downsampling step in VGG and ResNet halves the resolution.
DOWNSAMPLE = 2


def binomial_kernel(size: int) -> torch.Tensor:
    """Normalised 2D binomial filter ``b b^T`` with ``b[k] = C(size-1, k) / 2**(size-1)``.

    Its 1D frequency response is ``B(w) = cos(w/2)**(size-1)`` up to a phase, zero at ``w = pi``
    for ``size >= 2``.

    Args:
        size: the filter side, >= 1.

    Returns:
        A float64 tensor summing to 1.

    Shape:
        ``(size, size)``.

    Example:
        >>> binomial_kernel(3) * 16
        tensor([[1., 2., 1.],
                [2., 4., 2.],
                [1., 2., 1.]], dtype=torch.float64)
    """
    if size < 1:
        raise GradvizError(f"binomial filter size must be >= 1, got {size}")
    b = torch.tensor([comb(size - 1, k) for k in range(size)], dtype=torch.float64)
    b = b / b.sum()
    return torch.outer(b, b)


class BlurPool2d(nn.Module):
    """Depthwise binomial blur of ``size`` with reflect padding, then keep every ``stride``-th pixel.

    Padding ``(size-1)//2`` before and ``size//2`` after, so the output is ``ceil(H / stride)``.

    Args:
        size: the binomial filter's side (:func:`binomial_kernel`).
        stride: the subsampling step (1: blur only).

    Shape:
        ``(B, C, H, W)`` -> ``(B, C, ceil(H / stride), ceil(W / stride))``.

    Example:
        >>> BlurPool2d(3)(torch.ones(1, 2, 7, 8)).shape   # a constant stays constant
        torch.Size([1, 2, 4, 4])
        >>> BlurPool2d(3)(torch.ones(1, 2, 7, 8)).unique()
        tensor([1.])
    """

    def __init__(self, size: int, stride: int = DOWNSAMPLE):
        super().__init__()
        self.size, self.stride = size, stride
        self.register_buffer("kernel", binomial_kernel(size).float()[None, None])
        self.pad = ((size - 1) // 2, size // 2) * 2  # (left, right, top, bottom)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        x = F.pad(x, self.pad, mode="reflect") if self.size > 1 else x
        weight = self.kernel.to(x.dtype).expand(c, 1, self.size, self.size)
        return F.conv2d(x, weight, stride=self.stride, groups=c)

    def extra_repr(self) -> str:
        return f"size={self.size}, stride={self.stride}"


class MaxBlurPool2d(nn.Module):
    """Zhang's MaxBlurPool: a max-pool at stride 1 (same window), then :class:`BlurPool2d` at stride 2.

    Args:
        kernel_size, padding: the window and padding of the max-pool it replaces.
        blur_size: the binomial filter's side.

    Shape:
        ``(B, C, H, W)`` -> ``(B, C, H', W')``, ``H' = ceil((H + 2 padding - kernel_size + 1) / 2)``.

    Example:
        >>> x = torch.arange(16.0).view(1, 1, 4, 4)
        >>> MaxBlurPool2d(2, 0, 2)(x)   # max over 2x2 at stride 1 (3x3), blurred, every second pixel
        tensor([[[[ 7.5000,  8.5000],
                  [11.5000, 12.5000]]]])
    """

    def __init__(self, kernel_size: int, padding: int, blur_size: int):
        super().__init__()
        self.max = nn.MaxPool2d(kernel_size, stride=1, padding=padding)
        self.blur = BlurPool2d(blur_size, DOWNSAMPLE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blur(self.max(x))


class Blurred(nn.Module):
    """A stride-1 binomial blur in front of a strided layer (the layer and its weights unchanged).

    Args:
        layer: the layer to blur the input of (kept as ``.layer``).
        blur_size: the binomial filter's side.

    Shape:
        what ``layer`` maps ``(B, C, H, W)`` to.

    Example:
        >>> conv = nn.Conv2d(1, 1, 3, stride=2, padding=1)
        >>> Blurred(conv, 3)(torch.rand(1, 1, 8, 8)).shape
        torch.Size([1, 1, 4, 4])
    """

    def __init__(self, layer: nn.Module, blur_size: int):
        super().__init__()
        self.blur = BlurPool2d(blur_size, stride=1)
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(self.blur(x))


class RelaxedMaxPool2d(nn.Module):
    """Max-pool in the forward pass, average pool in the backward pass (same window and stride).

    ``avg + (max - avg).detach()`` has the value of ``max`` and the gradient of ``avg``.

    Args:
        kernel_size, stride, padding: as :class:`torch.nn.MaxPool2d` (integers).

    Shape:
        as the max-pool: ``(B, C, H, W)`` -> ``(B, C, H', W')``.

    Example:
        >>> x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]], requires_grad=True)
        >>> y = RelaxedMaxPool2d(2, 2)(x)
        >>> y.item(), torch.autograd.grad(y.sum(), x)[0].flatten().tolist()
        (4.0, [0.25, 0.25, 0.25, 0.25])
    """

    def __init__(self, kernel_size: int, stride: int, padding: int = 0):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mx = F.max_pool2d(x, self.kernel_size, self.stride, self.padding)
        avg = F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, count_include_pad=False)
        return avg + (mx - avg).detach()

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


# ---------------------------------------------------------------- the variants of each family

# A variant rewrites a copy of the torchvision network (``model.net``) in place.
Rewrite = Callable[[nn.Module], None]
VGG_VARIANTS: Registry[Rewrite] = Registry("VGG variant")
RESNET_VARIANTS: Registry[Rewrite] = Registry("ResNet variant")


def _max_pools(features: nn.Sequential) -> list[tuple[int, nn.MaxPool2d, int | None]]:
    """``(index, pool, index of the last convolution before it or None)`` of every max-pool of ``features``."""
    pools, last_conv = [], None
    for i, module in enumerate(features):
        if isinstance(module, nn.Conv2d):
            last_conv = i
        if isinstance(module, nn.MaxPool2d):
            pools.append((i, module, last_conv))
    return pools


@VGG_VARIANTS.register("maxpool")
def _vgg_maxpool(net: nn.Module) -> None:
    """max-pool 2x2 stride 2 (as trained)"""


@VGG_VARIANTS.register("stride")
def _vgg_stride(net: nn.Module) -> None:
    """the convolution before each pool at stride 2, pool removed"""
    for i, pool, last_conv in _max_pools(net.features):
        if last_conv is None:
            raise GradvizError(f"variant 'stride': no convolution before pool features.{i}")
        net.features[last_conv].stride = (pool.stride, pool.stride)
        net.features[i] = nn.Identity()


@VGG_VARIANTS.register("avgpool")
def _vgg_avgpool(net: nn.Module) -> None:
    """average pool 2x2 stride 2"""
    for i, pool, _ in _max_pools(net.features):
        net.features[i] = nn.AvgPool2d(pool.kernel_size, pool.stride, pool.padding)


def _vgg_blurpool(size: int) -> Rewrite:
    def rewrite(net: nn.Module) -> None:
        for i, pool, _ in _max_pools(net.features):
            net.features[i] = MaxBlurPool2d(pool.kernel_size, pool.padding, size)

    return rewrite


for _size in BLUR_SIZES:
    VGG_VARIANTS.register(f"blurpool{_size}", _vgg_blurpool(_size),
                          doc=f"max-pool 2x2 stride 1, then binomial blur {_size}x{_size} stride 2")


@VGG_VARIANTS.register("relaxed")
def _vgg_relaxed(net: nn.Module) -> None:
    """max-pool forward, average-pool backward"""
    for i, pool, _ in _max_pools(net.features):
        net.features[i] = RelaxedMaxPool2d(pool.kernel_size, pool.stride, pool.padding)


@RESNET_VARIANTS.register("stride")
def _resnet_stride(net: nn.Module) -> None:
    """strided convolutions and max-pool (as built)"""


def _resnet_blurpool(size: int, stem: bool) -> Rewrite:
    def rewrite(net: nn.Module) -> None:
        mp = net.maxpool
        net.maxpool = MaxBlurPool2d(mp.kernel_size, mp.padding, size)
        if stem:
            net.conv1 = Blurred(net.conv1, size)
        strided = [
            (parent, child_name, child)
            for layer_name in ("layer1", "layer2", "layer3", "layer4")
            for parent in getattr(net, layer_name).modules()
            for child_name, child in parent.named_children()
            if isinstance(child, nn.Conv2d) and max(child.stride) > 1
        ]
        for parent, child_name, child in strided:
            setattr(parent, child_name, Blurred(child, size))

    return rewrite


for _size in BLUR_SIZES:
    RESNET_VARIANTS.register(f"blurpool{_size}", _resnet_blurpool(_size, stem=False),
                             doc=f"binomial blur {_size}x{_size} before every strided convolution of layer2-4 "
                                 f"and in the max-pool")
for _size in BLUR_SIZES:
    RESNET_VARIANTS.register(f"blurpool{_size}-stem", _resnet_blurpool(_size, stem=True),
                             doc=f"blurpool{_size}, and the stem convolution blurred too")
del _size

# The variants of each family, and the one that is the network as loaded.
VARIANTS: dict[str, Registry[Rewrite]] = {"vgg": VGG_VARIANTS, "resnet": RESNET_VARIANTS}
AS_BUILT = {"vgg": "maxpool", "resnet": "stride"}


def model_family(model: nn.Module) -> str:
    """``"vgg"`` or ``"resnet"`` from the torchvision class of ``model.net``; a clear error otherwise.

    Args:
        model: a :class:`~gradviz.core.models.PixelModel` or a bare torchvision network.

    Returns:
        The family name, a key of :data:`VARIANTS`.

    Example:
        >>> model_family(torchvision.models.resnet18())
        'resnet'
        >>> model_family(nn.Conv2d(3, 3, 1))
        Traceback (most recent call last):
        ...
        gradviz.errors.GradvizError: downsampling variants need a torchvision VGG or ResNet, got Conv2d; valid models: vgg11..vgg19(_bn), resnet18..resnet152
    """
    net = layer_root(model)
    if isinstance(net, torchvision.models.VGG):
        return "vgg"
    if isinstance(net, torchvision.models.ResNet):
        return "resnet"
    raise GradvizError(
        f"downsampling variants need a torchvision VGG or ResNet, got {type(net).__name__}; "
        f"valid models: vgg11..vgg19(_bn), resnet18..resnet152"
    )


def variants_for(model: nn.Module) -> Registry[Rewrite]:
    """The registry of the variants valid for ``model``'s family.

    Args:
        model: a torchvision VGG or ResNet, or a :class:`~gradviz.core.models.PixelModel` of one.

    Returns:
        :data:`VGG_VARIANTS` or :data:`RESNET_VARIANTS`.

    Example:
        >>> variants = variants_for(torchvision.models.resnet18())
        >>> list(variants)[:3], variants.describe("blurpool3-stem")
        (['stride', 'blurpool2', 'blurpool3'], 'blurpool3, and the stem convolution blurred too')
    """
    return VARIANTS[model_family(model)]


def check_variant(model: nn.Module, name: str) -> str:
    """``name`` if it is a variant of ``model``'s family, else a one-line error listing the valid ones.

    Example:
        >>> check_variant(torchvision.models.vgg11(), "maxpool")
        'maxpool'
    """
    valid = variants_for(model)
    if name not in valid:
        arch = getattr(model, "arch", model_family(model))
        raise GradvizError(f"unknown variant {name!r} for {arch}; valid: {', '.join(valid)}")
    return name


def build_variant(model: nn.Module, name: str) -> nn.Module:
    """A copy of ``model`` (a :class:`~gradviz.core.models.PixelModel`) downsampling as ``name`` says.

    The modules are deep-copied; the frozen weight and buffer tensors are shared with ``model``,
    which is never modified. The copy is in eval mode, on ``model``'s device, without gradients
    for its parameters.

    Args:
        model: a PixelModel of a torchvision VGG or ResNet.
        name: a variant of :func:`variants_for` ``(model)``.

    Returns:
        The variant, a PixelModel.

    Raises:
        GradvizError: an unknown name, with the valid ones for this model.

    Example:
        >>> from gradviz.core.models import PixelModel
        >>> model = PixelModel(torchvision.models.resnet18(), arch="resnet18")
        >>> variant = build_variant(model, "blurpool3")
        >>> type(variant.net.layer2[0].conv1).__name__, variant.net.layer2[0].conv1.layer.weight is model.net.layer2[0].conv1.weight
        ('Blurred', True)
        >>> build_variant(model, "relaxed")
        Traceback (most recent call last):
        ...
        gradviz.errors.GradvizError: unknown variant 'relaxed' for resnet18; valid: stride, blurpool2, blurpool3, blurpool4, blurpool5, blurpool2-stem, blurpool3-stem, blurpool4-stem, blurpool5-stem
    """
    check_variant(model, name)
    # New modules, shared (frozen, never written) weight tensors: a copy costs no memory for weights.
    shared = {id(t): t for t in [*model.parameters(), *model.buffers()]}
    variant = copy.deepcopy(model, memo=shared)
    variants_for(model)[name](layer_root(variant))
    # New blur modules are built on the CPU; the shared weights already sit on the model's device.
    variant.to(model_device(model)).eval()
    for p in variant.parameters():  # new modules' parameters frozen; the shared ones stay as the caller has them
        p.requires_grad_(p.requires_grad and id(p) in shared)
    return variant
