"""The jitter law: how much of a grid-locked gradient pattern survives averaging over random rolls.

Setting (DeepDream's roll jitter, :class:`gradviz.transforms.RandomRoll`): at each of ``N`` steps
a shift ``δ_t = (δy, δx)`` is drawn, each axis independently and uniformly from the integers
``{-d, ..., d}``; the model sees ``roll(x, δ_t)`` and the gradient is rolled back,
``g_t = roll(∇f(roll(x, δ_t)), -δ_t)``. A pattern locked to the network's sampling grid of period
``S`` does not roll back with the image: in the unrolled gradient its Fourier coefficient at a
lattice frequency ``f = (a/S, b/S)`` carries the phase ``e^{-2πi f·δ_t}``. The mean of ``N``
such gradients holds ``c_f · (1/N) Σ_t e^{-2πi f·δ_t}``, and

    E |(1/N) Σ_t e^{-2πi f·δ_t}|^2 = |φ(f)|^2 + (1 - |φ(f)|^2) / N,

with ``φ(f) = E e^{2πi f·δ}`` the characteristic function of the shift law (real here, since the
law is symmetric). For the discrete uniform law on ``{-d, ..., d}`` per axis,

    φ_1(f) = sin(π f (2d + 1)) / ((2d + 1) sin(π f)),    φ(f_y, f_x) = φ_1(f_y) φ_1(f_x),

and ``φ_1(f) = 1`` when ``f`` is an integer. The kept fraction is 1 for ``N = 1`` whatever ``d``
(one jittered gradient has as much grid as an unjittered one, at another phase) and tends to
``|φ(f)|^2`` as ``N`` grows; since it equals ``|φ|^2 (1 - 1/N) + 1/N`` it is never below ``1/N``.

>>> round(roll_characteristic(0.5, 1), 6)
-0.333333
>>> round(kept_fraction(lattice_characteristic(0.5, 0.0, 1), 4), 6)
0.333333
>>> kept_fraction(lattice_characteristic(0.25, 0.5, 0), 16)
1.0
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

__all__ = [
    "kept_fraction",
    "lattice_characteristic",
    "predicted_kept_fraction",
    "roll_characteristic",
    "simulate_kept_fraction",
    "weighted_kept_fraction",
]


def _check(d: int, n: int | None = None) -> None:
    if int(d) != d or d < 0:
        raise ValueError(f"jitter range d must be a non-negative integer, got {d!r}")
    if n is not None and (int(n) != n or n < 1):
        raise ValueError(f"number of steps N must be a positive integer, got {n!r}")


def roll_characteristic(f: float, d: int) -> float:
    """``E e^{2πi f δ}`` for ``δ`` uniform on the integers ``{-d, ..., d}`` (one axis).

    ``f`` in cycles per pixel. Equals ``sin(π f (2d+1)) / ((2d+1) sin(π f))``, and 1 at integer ``f``.

    >>> roll_characteristic(0.25, 0)
    1.0
    >>> round(roll_characteristic(0.25, 2), 6)
    -0.2
    """
    _check(d)
    m = 2 * d + 1
    s = math.sin(math.pi * f)
    if abs(s) < 1e-12:  # f integer: every shift has phase 1
        return 1.0
    return math.sin(math.pi * f * m) / (m * s)


def lattice_characteristic(fy: float, fx: float, d: int) -> float:
    """``φ(f_y, f_x) = φ_1(f_y) φ_1(f_x)``: the two axes are drawn independently."""
    return roll_characteristic(fy, d) * roll_characteristic(fx, d)


def kept_fraction(phi: float, n: int) -> float:
    """``|φ|^2 + (1 - |φ|^2) / N``: expected share of a grid-locked component's energy that the
    mean of ``N`` independently jittered gradients keeps."""
    _check(0, n)
    p2 = abs(phi) ** 2
    return p2 + (1.0 - p2) / n


def predicted_kept_fraction(fy: float, fx: float, d: int, n: int) -> float:
    """The jitter law at one lattice frequency: :func:`kept_fraction` of :func:`lattice_characteristic`."""
    _check(d, n)
    return kept_fraction(lattice_characteristic(fy, fx, d), n)


def weighted_kept_fraction(freqs: Iterable[tuple[float, float]], weights: Iterable[float], d: int, n: int) -> float:
    """The law for a set of lattice bins with energies ``weights`` (e.g. the grid-locked energy of
    the unjittered gradient at each bin): ``Σ w_f K(f) / Σ w_f``."""
    freqs, w = list(freqs), np.asarray(list(weights), dtype=float)
    if len(freqs) != len(w) or len(w) == 0 or w.sum() <= 0:
        raise ValueError("need as many positive-sum weights as frequencies")
    k = np.array([predicted_kept_fraction(fy, fx, d, n) for fy, fx in freqs])
    return float((w * k).sum() / w.sum())


def simulate_kept_fraction(fy: float, fx: float, d: int, n: int, trials: int, rng: np.random.Generator) -> float:
    """Monte-Carlo estimate of the kept fraction: draw ``N`` shifts per trial (uniform integers in
    ``[-d, d]`` per axis, as :class:`gradviz.transforms.RandomRoll`), average the unit phasors
    ``e^{-2πi f·δ}``, and return the mean of ``|mean phasor|^2`` over ``trials``."""
    _check(d, n)
    shifts = rng.integers(-d, d + 1, size=(trials, n, 2))
    phase = np.exp(-2j * np.pi * (fy * shifts[..., 0] + fx * shifts[..., 1]))
    return float(np.mean(np.abs(phase.mean(axis=1)) ** 2))
