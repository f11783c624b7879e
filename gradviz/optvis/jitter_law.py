"""The jitter law: how much of a grid-locked gradient pattern survives averaging over random rolls.

Pure numpy and the standard library: no torch, no model.

Setting (DeepDream's roll jitter, :class:`gradviz.optvis.transforms.RandomRoll`): at each of ``N`` steps
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
    """Raise ValueError unless ``d >= 0`` and (when given) ``n >= 1`` are integers."""
    if int(d) != d or d < 0:
        raise ValueError(f"jitter range d must be a non-negative integer, got {d!r}")
    if n is not None and (int(n) != n or n < 1):
        raise ValueError(f"number of steps N must be a positive integer, got {n!r}")


def roll_characteristic(f: float, d: int) -> float:
    """``φ_1(f) = E e^{2πi f δ}`` for ``δ`` uniform on the integers ``{-d, ..., d}`` (one axis).

    Args:
        f: the frequency in cycles per pixel (a lattice frequency of period ``S`` is ``a / S``).
        d: the jitter range (a non-negative integer; 0: no jitter).

    Returns:
        ``sin(π f (2d+1)) / ((2d+1) sin(π f))``, and 1 at integer ``f``; real, in [-1, 1].

    Raises:
        ValueError: ``d`` is not a non-negative integer.

    Example:
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
    """``φ(f_y, f_x) = φ_1(f_y) φ_1(f_x)``: the two axes are drawn independently.

    Args:
        fy, fx: the frequency in cycles per pixel along each axis.
        d: the jitter range of both axes.

    Returns:
        The product of the two :func:`roll_characteristic` values.

    Example:
        >>> round(lattice_characteristic(0.5, 0.5, 1), 6)  # (-1/3)^2
        0.111111
    """
    return roll_characteristic(fy, d) * roll_characteristic(fx, d)


def kept_fraction(phi: float, n: int) -> float:
    """``|φ|^2 + (1 - |φ|^2) / N``: expected share of a grid-locked component's energy that the
    mean of ``N`` independently jittered gradients keeps.

    Args:
        phi: the characteristic function at the component's frequency.
        n: the number of jittered gradients averaged (a positive integer).

    Returns:
        A share in ``[1/N, 1]``.

    Raises:
        ValueError: ``n`` is not a positive integer.

    Example:
        >>> kept_fraction(0.0, 4), kept_fraction(1.0, 4), kept_fraction(0.5, 1)
        (0.25, 1.0, 1.0)
    """
    _check(0, n)
    p2 = abs(phi) ** 2
    return p2 + (1.0 - p2) / n


def predicted_kept_fraction(fy: float, fx: float, d: int, n: int) -> float:
    """The jitter law at one lattice frequency: :func:`kept_fraction` of :func:`lattice_characteristic`.

    Args:
        fy, fx: the frequency in cycles per pixel.
        d: the jitter range.
        n: the number of jittered gradients averaged.

    Returns:
        The expected kept share of the component's energy.

    Raises:
        ValueError: a bad ``d`` or ``n``.

    Example:
        >>> round(predicted_kept_fraction(0.5, 0.0, 1, 4), 6)  # 1/9 + (8/9) / 4
        0.333333
    """
    _check(d, n)
    return kept_fraction(lattice_characteristic(fy, fx, d), n)


def weighted_kept_fraction(freqs: Iterable[tuple[float, float]], weights: Iterable[float], d: int, n: int) -> float:
    """The law for a set of lattice bins with energies ``weights``: ``Σ w_f K(f) / Σ w_f``.

    Args:
        freqs: the bins' ``(f_y, f_x)``, in cycles per pixel.
        weights: one non-negative energy per bin (e.g. the grid-locked energy of the unjittered
            gradient at that bin), with a positive sum.
        d: the jitter range.
        n: the number of jittered gradients averaged.

    Returns:
        The energy-weighted mean of :func:`predicted_kept_fraction` over the bins.

    Raises:
        ValueError: not one weight per frequency, no frequencies, a sum <= 0, or a bad ``d`` or ``n``.

    Example:
        >>> round(weighted_kept_fraction([(0.5, 0.0), (0.5, 0.5)], [1.0, 0.0], 1, 4), 6)
        0.333333
    """
    freqs, w = list(freqs), np.asarray(list(weights), dtype=float)
    if len(freqs) != len(w) or len(w) == 0 or w.sum() <= 0:
        raise ValueError("need as many positive-sum weights as frequencies")
    k = np.array([predicted_kept_fraction(fy, fx, d, n) for fy, fx in freqs])
    return float((w * k).sum() / w.sum())


def simulate_kept_fraction(fy: float, fx: float, d: int, n: int, trials: int, rng: np.random.Generator) -> float:
    """Monte-Carlo estimate of the kept fraction.

    Draws ``N`` shifts per trial (uniform integers in ``[-d, d]`` per axis, the law of
    :class:`gradviz.optvis.transforms.RandomRoll`; here from numpy's ``rng``), averages the unit
    phasors ``e^{-2πi f·δ}``, and returns the mean of ``|mean phasor|^2`` over ``trials``.

    Args:
        fy, fx: the frequency in cycles per pixel.
        d: the jitter range.
        n: the shifts per trial.
        trials: the number of trials.
        rng: the numpy generator the shifts are drawn from.

    Returns:
        The estimate; its standard error is at most ``0.5 / sqrt(trials)``.

    Example:
        >>> simulate_kept_fraction(0.5, 0.5, 0, 8, 10, np.random.default_rng(0))  # no jitter: all kept
        1.0
    """
    _check(d, n)
    shifts = rng.integers(-d, d + 1, size=(trials, n, 2))
    phase = np.exp(-2j * np.pi * (fy * shifts[..., 0] + fx * shifts[..., 1]))
    return float(np.mean(np.abs(phase.mean(axis=1)) ** 2))
