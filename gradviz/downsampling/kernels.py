"""Where the lattice lines come from: what each strided layer's kernel predicts.

The backward pass of a layer with kernel ``W`` (O, I, k, k) and stride ``s`` is a transposed
convolution: ``g_i[n] = sum_o sum_j W_oi[n - s j] d_o[j]``. Two upstream gradients give exact
predictions:

- **Constant upstream** ``d``: ``g`` has period ``s``; its power at the harmonic
  ``w_ab = 2 pi (a, b) / s`` relative to DC is ``P(w_ab) / P(0)`` with
  ``P(w) = sum_{o,i} |H_oi(w)|^2`` and ``H_oi`` the DTFT of ``W_oi``. It vanishes where the
  kernel's response is zero (a binomial blur at ``w = pi``).
- **White-noise upstream**: ``E g[n]^2`` follows the polyphase energies
  ``E[p, q] = sum_{o,i} sum_{m,l} W_oi[p + s m, q + s l]^2``, a tile of period ``s``;
  its max/min is the tile contrast the kernel alone would cause.

Both come from folding the kernel onto an ``s x s`` grid: ``H(w_ab) = fft2(fold(W))[a, b]``
and ``E = fold(W**2)``. A layer whose input has cumulative stride ``r`` puts its lines at
period ``r * s`` in pixels. A max-pool's backward depends on the data (the gradient goes to
each window's maximum): it has no fixed kernel and no prediction.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gradviz.core.layermap import LayerMap, layer_map
from gradviz.core.taps import layer_root
from gradviz.downsampling.variants import BlurPool2d, Blurred, MaxBlurPool2d, RelaxedMaxPool2d

__all__ = ["DOWNSAMPLERS", "KernelPrediction", "blur_into", "effective_kernel", "fold", "harmonic_power",
           "polyphase_energy", "predict_layer", "predict_lines", "strided_layers"]

# Kernels folded per chunk when a blur is convolved into a large weight tensor (bounds memory).
CHUNK = 65536


@dataclass
class KernelPrediction:
    """What one strided layer's kernel predicts (see the module docstring).

    Attributes:
        layer: the layer's dotted name.
        kind: what its backward pass is (``conv``, ``blur3+conv``, ``maxblurpool4``, ``avgpool``,
            ``relaxed (avg backward)``, ``maxpool (data-dependent)``).
        stride: the layer's own stride ``s``.
        input_stride: the cumulative stride of the layer's input, in pixels.
        line_period: ``input_stride * stride``: the period, in pixels, of the lines it makes.
        harmonic_to_dc: ``"a,b"`` -> ``P(w_ab) / P(0)`` (None where ``P(0) = 0``); None when
            the backward pass depends on the data (a max-pool).
        tile: the polyphase energies ``E`` (s x s), mean 1; None when data-dependent.
        tile_contrast: max / min of ``tile``; None when data-dependent or when a phase gets no
            gradient (min 0).
    """

    layer: str
    kind: str
    stride: int
    input_stride: int
    line_period: int
    harmonic_to_dc: dict[str, float | None] | None
    tile: list[list[float]] | None
    tile_contrast: float | None

    def to_dict(self) -> dict:
        """The fields as a JSON-ready dict."""
        return asdict(self)


def fold(kernel: torch.Tensor, stride: int) -> torch.Tensor:
    """Sum a kernel onto an ``s x s`` grid: ``out[..., p, q] = sum_{m,l} W[.., p+s m, q+s l]``.

    Args:
        kernel: square kernels, zero-padded to a multiple of ``stride``.
        stride: ``s``.

    Shape:
        ``(..., k, k)`` -> ``(..., s, s)``.

    Example:
        >>> fold(torch.arange(9.0).view(3, 3), 2)
        tensor([[16.,  8.],
                [ 8.,  4.]])
    """
    k = kernel.shape[-1]
    pad = (-k) % stride
    w = F.pad(kernel, (0, pad, 0, pad))
    n = w.shape[-1] // stride
    return w.reshape(*w.shape[:-2], n, stride, n, stride).sum(dim=(-4, -2))


def harmonic_power(kernel: torch.Tensor, stride: int) -> torch.Tensor:
    """``P(w_ab) = sum |H(w_ab)|^2`` over all leading dims, indexed by ``(a, b)``.

    Args:
        kernel: the kernels ``W_oi``.
        stride: ``s``; the harmonics are ``w_ab = 2 pi (a, b) / s``.

    Returns:
        float64 power; ``[0, 0]`` is the DC power ``P(0)``.

    Shape:
        ``(..., k, k)`` -> ``(s, s)``.

    Example:
        >>> harmonic_power(torch.ones(1, 1, 3, 3), 2)   # 3x3 box: (1/3)^2 and (1/9)^2 of DC
        tensor([[81.,  9.],
                [ 9.,  1.]], dtype=torch.float64)
    """
    spectrum = torch.fft.fft2(fold(kernel.double(), stride))
    return spectrum.abs().square().reshape(-1, stride, stride).sum(0)


def polyphase_energy(kernel: torch.Tensor, stride: int) -> torch.Tensor:
    """``E[p, q] = sum W[.., p+s m, q+s l]**2`` over all leading dims.

    Args:
        kernel: the kernels ``W_oi``.
        stride: ``s``.

    Returns:
        float64 energies per phase ``(p, q)``.

    Shape:
        ``(..., k, k)`` -> ``(s, s)``.

    Example:
        >>> polyphase_energy(torch.ones(3, 3), 2)   # even phases see 4 taps, odd ones 1
        tensor([[4., 2.],
                [2., 1.]], dtype=torch.float64)
    """
    return fold(kernel.double().square(), stride).reshape(-1, stride, stride).sum(0)


def blur_into(kernel: torch.Tensor, blur: torch.Tensor) -> torch.Tensor:
    """Full 2D convolution of every kernel in ``kernel`` with ``blur`` (in chunks of :data:`CHUNK`).

    Args:
        kernel: square kernels.
        blur: one 2D filter.

    Returns:
        float64 kernels of side ``k + n - 1``.

    Shape:
        ``(..., k, k)`` and ``(n, n)`` -> ``(..., k + n - 1, k + n - 1)``.

    Example:
        >>> blur_into(torch.ones(2, 1, 1, 1), torch.full((2, 2), 0.25)).shape
        torch.Size([2, 1, 2, 2])
    """
    lead, k = kernel.shape[:-2], kernel.shape[-1]
    flat = kernel.double().reshape(-1, 1, k, k)
    b = blur.double()[None, None]
    out = torch.cat([F.conv_transpose2d(chunk, b) for chunk in flat.split(CHUNK)])
    return out.reshape(*lead, *out.shape[-2:])


def _box(k: int) -> torch.Tensor:
    return torch.full((1, 1, k, k), 1.0 / (k * k), dtype=torch.float64)


def effective_kernel(module: nn.Module) -> tuple[str, torch.Tensor | None, int]:
    """What the backward pass of a downsampling module convolves with, and at which stride.

    Args:
        module: one of :data:`DOWNSAMPLERS`.

    Returns:
        ``(kind, kernel, stride)``: ``kernel`` (on the CPU) is None for a max-pool, whose
        backward pass depends on the data.

    Shape:
        ``kernel``: ``(..., k, k)``.

    Raises:
        TypeError: a module with no known kernel.

    Example:
        >>> effective_kernel(nn.MaxPool2d(2, 2))
        ('maxpool (data-dependent)', None, 2)
        >>> kind, kernel, stride = effective_kernel(Blurred(nn.Conv2d(4, 8, 3, stride=2), 3))
        >>> kind, tuple(kernel.shape), stride
        ('blur3+conv', (8, 4, 5, 5), 2)
    """
    if isinstance(module, nn.Conv2d):
        return "conv", module.weight.detach().cpu(), module.stride[0]
    if isinstance(module, Blurred):
        kind, w, s = effective_kernel(module.layer)
        blur = module.blur.kernel[0, 0].cpu()
        return f"blur{module.blur.size}+{kind}", None if w is None else blur_into(w, blur), s
    if isinstance(module, MaxBlurPool2d):
        return f"maxblurpool{module.blur.size}", module.blur.kernel.cpu(), module.blur.stride
    if isinstance(module, BlurPool2d):
        return f"blurpool{module.size}", module.kernel.cpu(), module.stride
    if isinstance(module, (nn.AvgPool2d, RelaxedMaxPool2d)):
        k, s = module.kernel_size, module.stride
        k, s = (k if isinstance(k, int) else k[0]), (s if isinstance(s, int) else s[0])
        kind = "avgpool" if isinstance(module, nn.AvgPool2d) else "relaxed (avg backward)"
        return kind, _box(k), s
    if isinstance(module, nn.MaxPool2d):
        s = module.stride if isinstance(module.stride, int) else module.stride[0]
        return "maxpool (data-dependent)", None, s
    raise TypeError(f"no kernel for {type(module).__name__}")


# The module types that can lower the resolution, the ones :func:`effective_kernel` knows.
DOWNSAMPLERS = (nn.Conv2d, Blurred, MaxBlurPool2d, BlurPool2d, nn.AvgPool2d, RelaxedMaxPool2d, nn.MaxPool2d)


def strided_layers(model: nn.Module, size: int = 224, lmap: LayerMap | None = None) -> list[tuple[str, nn.Module, int]]:
    """Every module that lowers the resolution, in call order, read from the model's layer map.

    A downsampler inside another one (the conv in a :class:`Blurred`) is left to its parent.

    Args:
        model: any model; names are those of :func:`~gradviz.core.taps.layer_root`.
        size: the image side of the map made when ``lmap`` is None.
        lmap: ``model``'s :class:`~gradviz.core.layermap.LayerMap` (at any size that is a
            multiple of the total stride), to reuse instead of probing again.

    Returns:
        ``(name, module, input_stride)`` per layer, ``input_stride`` the cumulative stride of
        the layer's input.

    Example:
        >>> import torchvision
        >>> [(name, stride) for name, _, stride in strided_layers(torchvision.models.resnet18(), 64)][:4]
        [('conv1', 1), ('maxpool', 2), ('layer2.0.conv1', 4), ('layer2.0.downsample.0', 4)]
    """
    lmap = layer_map(model, size) if lmap is None else lmap
    modules = dict(layer_root(model).named_modules())
    found = [
        (row.name, modules[row.name], round(lmap.size / row.input_shape[-1]))
        for row in lmap.rows
        if row.lowers_resolution and isinstance(modules[row.name], DOWNSAMPLERS)
    ]
    names = [name for name, _, _ in found]
    return [f for f in found if not any(f[0].startswith(p + ".") for p in names if p != f[0])]


def predict_layer(name: str, module: nn.Module, input_stride: int) -> KernelPrediction:
    """The prediction for one strided layer.

    Args:
        name: the layer's name, as reported.
        module: one of :data:`DOWNSAMPLERS`.
        input_stride: the cumulative stride of its input, in pixels.

    Returns:
        A :class:`KernelPrediction` (``harmonic_to_dc`` and ``tile`` None for a max-pool).

    Example:
        >>> conv = nn.Conv2d(1, 1, 3, stride=2, bias=False)
        >>> _ = nn.init.ones_(conv.weight)
        >>> p = predict_layer("box", conv, input_stride=4)
        >>> p.line_period, {k: round(v, 4) for k, v in p.harmonic_to_dc.items()}, p.tile_contrast
        (8, {'0,1': 0.1111, '1,0': 0.1111, '1,1': 0.0123}, 4.0)
    """
    kind, kernel, s = effective_kernel(module)
    if kernel is None:
        return KernelPrediction(name, kind, s, input_stride, input_stride * s, None, None, None)
    power = harmonic_power(kernel, s)
    dc = float(power[0, 0])
    ratios = {f"{a},{b}": (float(power[a, b]) / dc if dc > 0 else None) for a in range(s) for b in range(s) if a or b}
    energy = polyphase_energy(kernel, s)
    energy = energy / energy.mean()
    emin = float(energy.min())
    contrast = float(energy.max()) / emin if emin > 0 else None
    return KernelPrediction(name, kind, s, input_stride, input_stride * s, ratios, energy.tolist(), contrast)


def predict_lines(model: nn.Module, size: int = 224, lmap: LayerMap | None = None) -> list[KernelPrediction]:
    """Kernel predictions for every strided layer of ``model``, in call order.

    Args:
        model: a model, typically a variant from :func:`~gradviz.downsampling.variants.build_variant`.
        size: the image side of the layer map made when ``lmap`` is None.
        lmap: ``model``'s layer map, to reuse (see :func:`strided_layers`).

    Returns:
        One :class:`KernelPrediction` per layer of :func:`strided_layers`.

    Example:
        >>> import torchvision
        >>> preds = predict_lines(torchvision.models.resnet18(), 64)
        >>> [(p.layer, p.kind, p.line_period) for p in preds[:2]]
        [('conv1', 'conv', 2), ('maxpool', 'maxpool (data-dependent)', 4)]
    """
    return [predict_layer(n, m, r) for n, m, r in strided_layers(model, size, lmap)]
