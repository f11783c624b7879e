"""Transform stage: random, differentiable changes applied to the image before the model sees it.

Each transform is a small callable ``t(x, gen) -> x`` on a (B, C, H, W) batch; it draws its
randomness from the ``torch.Generator`` it is given, so one seed fixes every offset, scale and
angle. One draw is shared by the whole batch (a batch behaves like its images run one by one).
:class:`Compose` chains them.

Every random transform keeps its random draw apart from its deterministic core:
``t.draw(gen)`` returns the drawn offset, factor or angle (and consumes the generator exactly as
``t(x, gen)`` does), and a plain function applies it (:func:`roll`, :func:`crop`, :func:`rescale`,
:func:`rotate`), so ``t(x, gen)`` is ``core(x, t.draw(gen))``:

>>> x = torch.arange(16.0).view(1, 1, 4, 4)
>>> jitter = RandomRoll(1)
>>> shift = jitter.draw(torch.Generator().manual_seed(0))
>>> torch.equal(jitter(x, torch.Generator().manual_seed(0)), roll(x, shift))
True

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from gradviz.core.shift_average import roll, unroll
from gradviz.errors import GradvizError

__all__ = [
    "LUCID_ANGLES",
    "LUCID_SCALES",
    "Compose",
    "Pad",
    "RandomCrop",
    "RandomRoll",
    "RandomRotate",
    "RandomScale",
    "Transform",
    "crop",
    "lucid_transforms",
    "rescale",
    "roll",
    "rotate",
    "unroll",
]

# A transform: (B, C, H, W) batch and generator -> transformed batch.
Transform = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def _randint(gen: torch.Generator, low: int, high: int) -> int:
    """A uniform integer in ``[low, high]`` (both included) from ``gen``."""
    return int(torch.randint(low, high + 1, (1,), generator=gen))


def _choice(gen: torch.Generator, values: Sequence[float]) -> float:
    return float(values[_randint(gen, 0, len(values) - 1)])


# ------------------------------------------------------------------ deterministic cores


def crop(x: torch.Tensor, offset: tuple[int, int], d: int) -> torch.Tensor:
    """The ``(H - d, W - d)`` window of ``x`` whose top-left corner is ``offset = (oy, ox)``.

    Args:
        x: a (..., H, W) tensor.
        offset: ``(oy, ox)``, each in ``[0, d]``.
        d: how much smaller the window is than ``x`` on each axis.

    Returns:
        A view of shape (..., H - d, W - d).

    Example:
        >>> crop(torch.arange(9).view(3, 3), (1, 0), 1).tolist()
        [[3, 4], [6, 7]]
    """
    h, w = x.shape[-2:]
    oy, ox = offset
    return x[..., oy : oy + h - d, ox : ox + w - d]


def rescale(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Bilinear resize of a (B, C, H, W) batch to ``(ceil(factor * H), ceil(factor * W))``.

    Args:
        x: the batch.
        factor: the scale factor (> 0); a factor that keeps the size returns ``x`` itself.

    Returns:
        The resized batch.

    Shape:
        (B, C, H, W) -> (B, C, ceil(factor * H), ceil(factor * W)).

    Example:
        >>> rescale(torch.ones(1, 3, 10, 10), 1.1).shape
        torch.Size([1, 3, 11, 11])
    """
    h, w = x.shape[-2:]
    size = (math.ceil(factor * h), math.ceil(factor * w))
    return x if size == (h, w) else F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def rotate(x: torch.Tensor, degrees: float) -> torch.Tensor:
    """Rotate a (B, C, H, W) batch about its centre by ``degrees`` (bilinear, zeros outside).

    Args:
        x: the batch.
        degrees: the angle; 0 returns ``x`` itself.

    Returns:
        The rotated batch, same shape.

    Example:
        >>> x = torch.rand(1, 1, 6, 6, generator=torch.Generator().manual_seed(0))
        >>> rotate(x, 0) is x, torch.allclose(rotate(x, 180), x.flip(-1, -2), atol=1e-5)
        (True, True)
    """
    angle = math.radians(degrees)
    if angle == 0:
        return x
    cos, sin = math.cos(angle), math.sin(angle)
    theta = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0]], dtype=x.dtype, device=x.device)
    grid = F.affine_grid(theta.expand(x.shape[0], 2, 3), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


# ------------------------------------------------------------------ random transforms


@dataclass
class RandomRoll:
    """DeepDream's jitter: a circular roll by a random ``(dy, dx)`` in ``[-d, d]^2``; ``d = 0``: none.

    Args:
        d: the jitter range (>= 0). The shift is drawn (dy first) even when ``d = 0``, so the
            generator advances alike whatever ``d``.

    Attributes:
        last_shift: the shift of the latest call, to undo it with :func:`unroll`.

    Shape:
        (B, C, H, W) -> (B, C, H, W).

    Example:
        >>> jitter, x = RandomRoll(2), torch.rand(1, 3, 8, 8)
        >>> y = jitter(x, torch.Generator().manual_seed(1))
        >>> torch.equal(unroll(y, jitter.last_shift), x), all(abs(s) <= 2 for s in jitter.last_shift)
        (True, True)
    """

    d: int
    last_shift: tuple[int, int] = field(default=(0, 0), init=False)

    def __post_init__(self):
        if self.d < 0:
            raise GradvizError(f"jitter range must be >= 0, got {self.d}")

    def draw(self, gen: torch.Generator) -> tuple[int, int]:
        """The random part: ``(dy, dx)``, each uniform in ``[-d, d]``."""
        return (_randint(gen, -self.d, self.d), _randint(gen, -self.d, self.d))

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        self.last_shift = self.draw(gen)
        return roll(x, self.last_shift) if self.d else x


@dataclass
class Pad:
    """Pad every side by ``width`` pixels of the constant ``fill`` (Lucid pads with grey 0.5).

    Deterministic: ``gen`` is not used.

    Args:
        width: pixels added on each side (0: ``x`` itself).
        fill: the constant value.

    Shape:
        (B, C, H, W) -> (B, C, H + 2 width, W + 2 width).

    Example:
        >>> Pad(2)(torch.zeros(1, 3, 4, 4), torch.Generator()).shape
        torch.Size([1, 3, 8, 8])
    """

    width: int
    fill: float = 0.5

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return F.pad(x, [self.width] * 4, mode="constant", value=self.fill) if self.width else x


@dataclass
class RandomCrop:
    """Lucid's jitter: crop ``(H - d, W - d)`` at a random offset in ``[0, d]^2`` (see :func:`crop`).

    Args:
        d: the jitter range; must be smaller than the image.

    Shape:
        (B, C, H, W) -> (B, C, H - d, W - d).

    Example:
        >>> t, x = RandomCrop(4), torch.rand(1, 3, 12, 12)
        >>> offset = t.draw(torch.Generator().manual_seed(0))
        >>> torch.equal(t(x, torch.Generator().manual_seed(0)), crop(x, offset, 4))
        True
    """

    d: int

    def draw(self, gen: torch.Generator) -> tuple[int, int]:
        """The random part: the offset ``(oy, ox)``, each uniform in ``[0, d]``."""
        return (_randint(gen, 0, self.d), _randint(gen, 0, self.d))

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        h, w = x.shape[-2:]
        if self.d >= min(h, w):
            raise GradvizError(f"crop jitter {self.d} is not smaller than the image ({h}x{w})")
        return crop(x, self.draw(gen), self.d)


@dataclass
class RandomScale:
    """Resize by a factor drawn from ``scales`` (bilinear): the size becomes ``ceil(factor * H)``.

    Args:
        scales: the factors, each equally likely (see :func:`rescale`).

    Shape:
        (B, C, H, W) -> (B, C, ceil(factor * H), ceil(factor * W)).

    Example:
        >>> t, x = RandomScale([0.5, 2.0]), torch.rand(1, 3, 8, 8)
        >>> factor = t.draw(torch.Generator().manual_seed(0))
        >>> t(x, torch.Generator().manual_seed(0)).shape == rescale(x, factor).shape
        True
    """

    scales: Sequence[float]

    def draw(self, gen: torch.Generator) -> float:
        """The random part: one of ``scales``."""
        return _choice(gen, self.scales)

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return rescale(x, self.draw(gen))


@dataclass
class RandomRotate:
    """Rotate about the centre by an angle (degrees) drawn from ``angles``; zeros outside.

    Args:
        angles: the angles in degrees, each equally likely (see :func:`rotate`).

    Shape:
        (B, C, H, W) -> (B, C, H, W).

    Example:
        >>> t, x = RandomRotate([-5, 5]), torch.rand(1, 3, 8, 8)
        >>> angle = t.draw(torch.Generator().manual_seed(0))
        >>> torch.equal(t(x, torch.Generator().manual_seed(0)), rotate(x, angle))
        True
    """

    angles: Sequence[float]

    def draw(self, gen: torch.Generator) -> float:
        """The random part: one of ``angles``, in degrees."""
        return _choice(gen, self.angles)

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return rotate(x, self.draw(gen))


@dataclass
class Compose:
    """Apply ``transforms`` in order, all drawing from the one generator.

    Args:
        transforms: callables ``t(x, gen) -> x``.

    Example:
        >>> chain = Compose([Pad(2), RandomCrop(4)])
        >>> chain(torch.zeros(1, 3, 8, 8), torch.Generator().manual_seed(0)).shape
        torch.Size([1, 3, 8, 8])
    """

    transforms: Sequence[Transform]

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        for t in self.transforms:
            x = t(x, gen)
        return x


# Lucid's / Lucent's standard_transforms: pad 12 (grey), jitter 8, scale 0.9..1.1, rotate ±10°
# (zero drawn 6 times out of 26), jitter 4.
LUCID_SCALES = tuple(1 + (i - 5) / 50.0 for i in range(11))
LUCID_ANGLES = tuple(range(-10, 11)) + (0,) * 5


def lucid_transforms() -> Compose:
    """gradviz's version of Lucid's standard transforms (jitter as pad and random crop).

    Returns:
        ``Compose([Pad(12), RandomCrop(8), RandomScale(LUCID_SCALES), RandomRotate(LUCID_ANGLES), RandomCrop(4)])``.

    Example:
        >>> out = lucid_transforms()(torch.zeros(1, 3, 32, 32), torch.Generator().manual_seed(0))
        >>> out.shape  # 32 + 24 - 8 = 48, scaled by 0.9..1.1 (44..53), minus 4: 40..49
        torch.Size([1, 3, 41, 41])
    """
    return Compose([Pad(12), RandomCrop(8), RandomScale(LUCID_SCALES), RandomRotate(LUCID_ANGLES), RandomCrop(4)])
