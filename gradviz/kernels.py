"""Where the lattice lines come from: what each strided layer's kernel predicts.

The backward pass of a layer with kernel ``W`` (O, I, k, k) and stride ``s`` is a transposed
convolution: ``g_i[n] = sum_o sum_j W_oi[n - s j] d_o[j]``. Two upstream gradients give exact
predictions (see docs/downsampling.md and the T2/T3 notes):

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

from gradviz.downsampling import Blurred, BlurPool2d, MaxBlurPool2d, RelaxedMaxPool2d

# Kernels folded per chunk when a blur is convolved into a large weight tensor (bounds memory).
CHUNK = 65536


@dataclass
class KernelPrediction:
    """What one strided layer's kernel predicts (see the module docstring)."""

    layer: str
    kind: str
    stride: int
    input_stride: int  # cumulative stride of the layer's input, in pixels
    line_period: int  # input_stride * stride: the period, in pixels, of the lines it makes
    harmonic_to_dc: dict[str, float | None] | None  # "a,b" -> P(w_ab) / P(0); None when data-dependent
    tile: list[list[float]] | None  # polyphase energies, mean 1
    tile_contrast: float | None  # max / min of the tile

    def to_dict(self) -> dict:
        return asdict(self)


def fold(kernel: torch.Tensor, stride: int) -> torch.Tensor:
    """Sum a kernel (..., k, k) onto an ``s x s`` grid: ``out[..., p, q] = sum_{m,l} W[.., p+s m, q+s l]``."""
    k = kernel.shape[-1]
    pad = (-k) % stride
    w = F.pad(kernel, (0, pad, 0, pad))
    n = w.shape[-1] // stride
    return w.reshape(*w.shape[:-2], n, stride, n, stride).sum(dim=(-4, -2))


def harmonic_power(kernel: torch.Tensor, stride: int) -> torch.Tensor:
    """``P(w_ab) = sum |H(w_ab)|^2`` over all leading dims, as an (s, s) tensor indexed by (a, b)."""
    spectrum = torch.fft.fft2(fold(kernel.double(), stride))
    return spectrum.abs().square().reshape(-1, stride, stride).sum(0)


def polyphase_energy(kernel: torch.Tensor, stride: int) -> torch.Tensor:
    """``E[p, q] = sum W[.., p+s m, q+s l]**2`` over all leading dims, (s, s)."""
    return fold(kernel.double().square(), stride).reshape(-1, stride, stride).sum(0)


def blur_into(kernel: torch.Tensor, blur: torch.Tensor) -> torch.Tensor:
    """Full 2D convolution of every (k, k) kernel in ``kernel`` (..., k, k) with ``blur`` (n, n)."""
    lead, k = kernel.shape[:-2], kernel.shape[-1]
    flat = kernel.double().reshape(-1, 1, k, k)
    b = blur.double()[None, None]
    out = torch.cat([F.conv_transpose2d(chunk, b) for chunk in flat.split(CHUNK)])
    return out.reshape(*lead, *out.shape[-2:])


def _box(k: int) -> torch.Tensor:
    return torch.full((1, 1, k, k), 1.0 / (k * k), dtype=torch.float64)


def effective_kernel(module: nn.Module) -> tuple[str, torch.Tensor | None, int]:
    """``(kind, kernel (..., k, k) or None, stride)`` of the backward pass of a downsampling module."""
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


DOWNSAMPLERS = (nn.Conv2d, Blurred, MaxBlurPool2d, BlurPool2d, nn.AvgPool2d, RelaxedMaxPool2d, nn.MaxPool2d)


def strided_layers(model: nn.Module, size: int = 224) -> list[tuple[str, nn.Module, int]]:
    """``(name, module, input_stride)`` of every module that lowers the resolution, in call order.

    A downsampler inside another one (the conv in a :class:`Blurred`) is left to its parent.
    """
    from gradviz.models import model_device

    root = getattr(model, "net", model)
    found: dict[str, tuple[nn.Module, int]] = {}

    def hook_for(name: str):
        def hook(module, inputs, output):
            h_in, h_out = inputs[0].shape[-1], output.shape[-1]
            if h_out < h_in and name not in found:
                found[name] = (module, round(size / h_in))

        return hook

    handles = [m.register_forward_hook(hook_for(n)) for n, m in root.named_modules() if n and isinstance(m, DOWNSAMPLERS)]
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, size, size, device=model_device(model)))
    finally:
        for h in handles:
            h.remove()
    names = list(found)
    return [(n, *found[n]) for n in names if not any(n.startswith(p + ".") for p in names if p != n)]


def predict_layer(name: str, module: nn.Module, input_stride: int) -> KernelPrediction:
    """The prediction for one strided layer (``harmonic_to_dc`` and ``tile`` None for a max-pool)."""
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


def predict_lines(model: nn.Module, size: int = 224) -> list[KernelPrediction]:
    """Kernel predictions for every strided layer of ``model``, in call order."""
    return [predict_layer(n, m, r) for n, m, r in strided_layers(model, size)]
