"""Downsampling variants of one loaded network: the same trained weights, another way to downsample.

Each variant is a copy of the loaded model (new modules, the same frozen weight tensors) in which only the downsampling modules are
swapped; every convolution keeps its weights, and the loaded model is never modified. Layer
names of the downsampling stages stay the same, so a variant is measured where the original is.

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
from math import comb

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from gradviz.errors import GradvizError

# Binomial filter sizes offered (size 1 would be no filter at all).
BLUR_SIZES = (2, 3, 4, 5)
# Every downsampling step in VGG and ResNet halves the resolution.
DOWNSAMPLE = 2

VGG_VARIANTS = {
    "maxpool": "max-pool 2x2 stride 2 (as trained)",
    "stride": "the convolution before each pool at stride 2, pool removed",
    "avgpool": "average pool 2x2 stride 2",
    **{f"blurpool{n}": f"max-pool 2x2 stride 1, then binomial blur {n}x{n} stride 2" for n in BLUR_SIZES},
    "relaxed": "max-pool forward, average-pool backward",
}
RESNET_VARIANTS = {
    "stride": "strided convolutions and max-pool (as built)",
    **{
        f"blurpool{n}": f"binomial blur {n}x{n} before every strided convolution of layer2-4 and in the max-pool"
        for n in BLUR_SIZES
    },
    **{f"blurpool{n}-stem": f"blurpool{n}, and the stem convolution blurred too" for n in BLUR_SIZES},
}
# The variant that is the network as loaded, per family.
AS_BUILT = {"vgg": "maxpool", "resnet": "stride"}


def binomial_kernel(size: int) -> torch.Tensor:
    """Normalised 2D binomial filter ``b b^T`` with ``b[k] = C(size-1, k) / 2**(size-1)``.

    Its 1D frequency response is ``B(w) = cos(w/2)**(size-1)`` up to a phase, zero at ``w = pi``
    for ``size >= 2``.
    """
    if size < 1:
        raise GradvizError(f"binomial filter size must be >= 1, got {size}")
    b = torch.tensor([comb(size - 1, k) for k in range(size)], dtype=torch.float64)
    b = b / b.sum()
    return torch.outer(b, b)


class BlurPool2d(nn.Module):
    """Depthwise binomial blur of ``size`` with reflect padding, then keep every ``stride``-th pixel.

    Padding ``(size-1)//2`` before and ``size//2`` after, so the output is ``ceil(H / stride)``.
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
    """Zhang's MaxBlurPool: a max-pool at stride 1 (same window), then :class:`BlurPool2d` at stride 2."""

    def __init__(self, kernel_size: int, padding: int, blur_size: int):
        super().__init__()
        self.max = nn.MaxPool2d(kernel_size, stride=1, padding=padding)
        self.blur = BlurPool2d(blur_size, DOWNSAMPLE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blur(self.max(x))


class Blurred(nn.Module):
    """A stride-1 binomial blur in front of a strided layer (the layer and its weights unchanged)."""

    def __init__(self, layer: nn.Module, blur_size: int):
        super().__init__()
        self.blur = BlurPool2d(blur_size, stride=1)
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(self.blur(x))


class RelaxedMaxPool2d(nn.Module):
    """Max-pool in the forward pass, average pool in the backward pass (same window and stride).

    ``avg + (max - avg).detach()`` has the value of ``max`` and the gradient of ``avg``.
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


def model_family(model: nn.Module) -> str:
    """``"vgg"`` or ``"resnet"`` from the torchvision class of ``model.net``; a clear error otherwise."""
    net = getattr(model, "net", model)
    if isinstance(net, torchvision.models.VGG):
        return "vgg"
    if isinstance(net, torchvision.models.ResNet):
        return "resnet"
    raise GradvizError(
        f"downsampling variants need a torchvision VGG or ResNet, got {type(net).__name__}; "
        f"valid models: vgg11..vgg19(_bn), resnet18..resnet152"
    )


def variant_names(model: nn.Module) -> list[str]:
    """The variant names valid for ``model``'s family."""
    return list(VGG_VARIANTS if model_family(model) == "vgg" else RESNET_VARIANTS)


def describe_variant(model: nn.Module, name: str) -> str:
    table = VGG_VARIANTS if model_family(model) == "vgg" else RESNET_VARIANTS
    return table[name]


def _vgg_variant(features: nn.Sequential, name: str) -> None:
    """Swap every max-pool of a VGG ``features`` copy in place."""
    last_conv = None
    for i, module in enumerate(features):
        if isinstance(module, nn.Conv2d):
            last_conv = i
        if not isinstance(module, nn.MaxPool2d):
            continue
        k, s, p = module.kernel_size, module.stride, module.padding
        if name == "stride":
            if last_conv is None:
                raise GradvizError(f"variant 'stride': no convolution before pool features.{i}")
            features[last_conv].stride = (s, s)
            features[i] = nn.Identity()
        elif name == "avgpool":
            features[i] = nn.AvgPool2d(k, s, p)
        elif name == "relaxed":
            features[i] = RelaxedMaxPool2d(k, s, p)
        elif name.startswith("blurpool"):
            features[i] = MaxBlurPool2d(k, p, int(name.removeprefix("blurpool")))


def _resnet_variant(net: nn.Module, name: str) -> None:
    """Blur a ResNet copy in place: every strided conv of layer1-4, the max-pool, optionally the stem."""
    base, _, stem = name.partition("-")
    size = int(base.removeprefix("blurpool"))
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


def build_variant(model: nn.Module, name: str) -> nn.Module:
    """A copy of ``model`` (a :class:`~gradviz.models.PixelModel`) downsampling as ``name`` says.

    The modules are deep-copied; the frozen weight and buffer tensors are shared with ``model``.

    Unknown names raise :class:`GradvizError` listing the valid ones for this model.
    """
    family = model_family(model)
    valid = variant_names(model)
    if name not in valid:
        arch = getattr(model, "arch", family)
        raise GradvizError(f"unknown variant {name!r} for {arch}; valid: {', '.join(valid)}")
    # New modules, shared (frozen, never written) weight tensors: a copy costs no memory for weights.
    shared = {id(t): t for t in [*model.parameters(), *model.buffers()]}
    variant = copy.deepcopy(model, memo=shared)
    if name != AS_BUILT[family]:
        if family == "vgg":
            _vgg_variant(variant.net.features, name)
        else:
            _resnet_variant(variant.net, name)
    from gradviz.models import model_device

    # New blur modules are built on the CPU; the shared weights already sit on the model's device.
    variant.to(model_device(model)).eval().requires_grad_(False)
    return variant


def stage_layers(model: nn.Module, size: int = 224) -> list[tuple[str, int]]:
    """``(layer name, stride)`` of the stages where every variant of ``model`` is measured.

    VGG: the output of each max-pool (``features.4``, ``.9``, ``.16``, ``.23``, ``.30`` for VGG16).
    The layers between two pools are no good here: in the ``stride`` variant the convolution
    before a pool already runs at the next stride. ResNet: the stages of
    :func:`gradviz.taps.downsampling_stages` (``relu``, ``layer1`` .. ``layer4``).
    """
    from gradviz.taps import downsampling_stages, layer_table

    if model_family(model) == "resnet":
        return [(s.name, s.stride) for s in downsampling_stages(model, size)]
    strides = {r.name: r.stride for r in layer_table(model, size)}
    return [(f"features.{i}", strides[f"features.{i}"]) for i, m in enumerate(model.net.features) if isinstance(m, nn.MaxPool2d)]


def parse_variants(model: nn.Module, text: str) -> list[str]:
    """Comma-separated variant names, checked against ``model``'s family (duplicates dropped)."""
    names = list(dict.fromkeys(v.strip() for v in text.split(",") if v.strip()))
    valid = variant_names(model)
    if not names:
        raise GradvizError(f"no variant given; valid: {', '.join(valid)}")
    for n in names:
        if n not in valid:
            raise GradvizError(f"unknown variant {n!r} for {getattr(model, 'arch', '')}; valid: {', '.join(valid)}")
    return names
