"""Transform stage: random, differentiable changes applied to the image before the model sees it.

Each transform is a small callable ``t(x, gen) -> x`` on a (B, C, H, W) batch; it draws its
randomness from the ``torch.Generator`` it is given, so one seed fixes every offset, scale and
angle. One draw is shared by the whole batch (a batch behaves like its images run one by one).
:class:`Compose` chains them.

Jitter comes in two forms:

- :class:`RandomRoll` (DeepDream): ``roll(x, δ)`` with ``δ`` uniform in ``[-d, d]^2``, circular.
  The optimiser differentiates ``f(roll(x, δ))`` with respect to ``x``, so the update it gets is
  ``roll(∇f(roll(x, δ)), -δ)``: the roll is undone after the step, as in DeepDream's
  ``np.roll(src, -ox, -oy)``; :func:`unroll` is that inverse.
- :class:`Pad` then :class:`RandomCrop` (Lucid): pad by ``p``, crop ``H + 2p - d`` at an offset in
  ``[0, d]``; the borders are not circular.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from gradviz.errors import GradvizError


def _randint(gen: torch.Generator, low: int, high: int) -> int:
    """A uniform integer in ``[low, high]`` (both included) from ``gen``."""
    return int(torch.randint(low, high + 1, (1,), generator=gen))


def _choice(gen: torch.Generator, values: Sequence[float]) -> float:
    return float(values[_randint(gen, 0, len(values) - 1)])


def roll(x: torch.Tensor, shift: tuple[int, int]) -> torch.Tensor:
    """Circular shift of the last two dims by ``(dy, dx)``: ``y[i, j] = x[i - dy, j - dx]``."""
    return torch.roll(x, shifts=shift, dims=(-2, -1))


def unroll(x: torch.Tensor, shift: tuple[int, int]) -> torch.Tensor:
    """The inverse of :func:`roll`: ``unroll(roll(x, s), s) == x`` exactly."""
    return torch.roll(x, shifts=(-shift[0], -shift[1]), dims=(-2, -1))


@dataclass
class RandomRoll:
    """DeepDream's jitter: a circular roll by a random ``(dy, dx)`` in ``[-d, d]^2``; ``d = 0``: none."""

    d: int
    last_shift: tuple[int, int] = field(default=(0, 0), init=False)

    def __post_init__(self):
        if self.d < 0:
            raise GradvizError(f"jitter range must be >= 0, got {self.d}")

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        self.last_shift = (_randint(gen, -self.d, self.d), _randint(gen, -self.d, self.d))
        return roll(x, self.last_shift) if self.d else x


@dataclass
class Pad:
    """Pad every side by ``width`` pixels of the constant ``fill`` (Lucid pads with grey 0.5)."""

    width: int
    fill: float = 0.5

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return F.pad(x, [self.width] * 4, mode="constant", value=self.fill) if self.width else x


@dataclass
class RandomCrop:
    """Lucid's jitter: crop ``(H - d, W - d)`` at a random offset in ``[0, d]^2``."""

    d: int

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        h, w = x.shape[-2:]
        if self.d >= min(h, w):
            raise GradvizError(f"crop jitter {self.d} is not smaller than the image ({h}x{w})")
        oy, ox = _randint(gen, 0, self.d), _randint(gen, 0, self.d)
        return x[..., oy : oy + h - self.d, ox : ox + w - self.d]


@dataclass
class RandomScale:
    """Resize by a factor drawn from ``scales`` (bilinear): the size becomes ``ceil(factor * H)``."""

    scales: Sequence[float]

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        factor = _choice(gen, self.scales)
        h, w = x.shape[-2:]
        size = (math.ceil(factor * h), math.ceil(factor * w))
        return x if size == (h, w) else F.interpolate(x, size=size, mode="bilinear", align_corners=False)


@dataclass
class RandomRotate:
    """Rotate about the centre by an angle (degrees) drawn from ``angles``; zeros outside."""

    angles: Sequence[float]

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        angle = math.radians(_choice(gen, self.angles))
        if angle == 0:
            return x
        cos, sin = math.cos(angle), math.sin(angle)
        theta = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0]], dtype=x.dtype, device=x.device)
        grid = F.affine_grid(theta.expand(x.shape[0], 2, 3), list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


@dataclass
class Compose:
    """Apply ``transforms`` in order."""

    transforms: Sequence

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        for t in self.transforms:
            x = t(x, gen)
        return x


# Lucid's / Lucent's standard_transforms: pad 12 (grey), jitter 8, scale 0.9..1.1, rotate ±10°
# (zero drawn 6 times out of 26), jitter 4.
LUCID_SCALES = tuple(1 + (i - 5) / 50.0 for i in range(11))
LUCID_ANGLES = tuple(range(-10, 11)) + (0,) * 5


def lucid_transforms() -> Compose:
    """gradviz's version of Lucid's standard transforms (jitter as pad and random crop)."""
    return Compose([Pad(12), RandomCrop(8), RandomScale(LUCID_SCALES), RandomRotate(LUCID_ANGLES), RandomCrop(4)])
