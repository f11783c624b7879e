"""The jitter law (gradviz.optvis.jitter_law): closed forms, Monte Carlo, and the real roll jitter."""

import math

import numpy as np
import pytest
import torch

from gradviz.optvis.jitter_law import (
    kept_fraction,
    lattice_characteristic,
    predicted_kept_fraction,
    roll_characteristic,
    simulate_kept_fraction,
    weighted_kept_fraction,
)
from gradviz.optvis.transforms import RandomRoll, roll, unroll


def test_closed_forms():
    for f in (0.5, 0.25, 0.125, 0.3):
        assert roll_characteristic(f, 0) == 1.0  # no jitter: the phase never moves
        for n in (1, 4, 64):
            assert predicted_kept_fraction(f, f, 0, n) == 1.0
    assert roll_characteristic(0.5, 1) == pytest.approx(-1 / 3)
    assert lattice_characteristic(0.5, 0.5, 1) == pytest.approx(1 / 9)
    assert lattice_characteristic(0.5, 0.0, 1) == pytest.approx(-1 / 3)
    assert roll_characteristic(0.5, 2) == pytest.approx(1 / 5)  # f = 1/2, even d: ±1/(2d+1)
    assert roll_characteristic(0.25, 8) == pytest.approx(1 / 17)
    assert roll_characteristic(0.25, 3) == pytest.approx(-1 / 7)
    assert roll_characteristic(0.25, 10) == pytest.approx(-1 / 21)
    assert roll_characteristic(1.0, 3) == 1.0  # integer frequency: DC
    # f = 1/S and 2d + 1 a multiple of S: the shifts cover every phase equally, φ = 0 exactly
    assert roll_characteristic(1 / 3, 1) == pytest.approx(0.0, abs=1e-12)
    assert roll_characteristic(1 / 5, 2) == pytest.approx(0.0, abs=1e-12)
    # N = 1 keeps everything; large N tends to |φ|^2
    assert kept_fraction(-1 / 3, 1) == pytest.approx(1.0)
    assert kept_fraction(-1 / 3, 4) == pytest.approx(1 / 9 + (8 / 9) / 4)
    assert kept_fraction(0.0, 16) == pytest.approx(1 / 16)


def test_characteristic_matches_direct_sum():
    for d in (1, 2, 5):
        for f in (0.5, 0.25, 0.1, 0.375):
            direct = np.mean([np.exp(2j * np.pi * f * k) for k in range(-d, d + 1)])
            assert abs(direct.imag) < 1e-12
            assert roll_characteristic(f, d) == pytest.approx(direct.real, abs=1e-12)


@pytest.mark.parametrize("fy,fx,d,n", [(0.5, 0.0, 1, 4), (0.5, 0.5, 1, 16), (0.25, 0.5, 2, 8), (0.25, 0.25, 3, 64), (0.5, 0.25, 0, 4)])
def test_monte_carlo(fy, fx, d, n):
    rng = np.random.default_rng(1234)
    trials = 20000
    sim = simulate_kept_fraction(fy, fx, d, n, trials, rng)
    law = predicted_kept_fraction(fy, fx, d, n)
    # |mean phasor|^2 lies in [0, 1]: its standard deviation is at most 1/2, so 5 sigma < 0.018
    assert sim == pytest.approx(law, abs=5 * 0.5 / math.sqrt(trials))


def test_weighted():
    freqs = [(0.5, 0.0), (0.0, 0.5), (0.5, 0.5)]
    k = [predicted_kept_fraction(fy, fx, 1, 4) for fy, fx in freqs]
    assert weighted_kept_fraction(freqs, [1, 1, 2], 1, 4) == pytest.approx((k[0] + k[1] + 2 * k[2]) / 4)
    with pytest.raises(ValueError, match="positive-sum weights"):
        weighted_kept_fraction(freqs, [0, 0, 0], 1, 4)
    with pytest.raises(ValueError, match="jitter range d must be a non-negative integer, got -1"):
        predicted_kept_fraction(0.5, 0.5, -1, 4)
    with pytest.raises(ValueError, match="number of steps N must be a positive integer, got 0"):
        predicted_kept_fraction(0.5, 0.5, 1, 0)


def test_law_on_real_roll_jitter():
    """A fixed period-4 pattern seen through RandomRoll and unrolled, averaged over N draws: the
    energy kept at its lattice bin follows the law (the draws come from the transform itself)."""
    size, d, n, trials = 32, 2, 8, 400
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    fy, fx = 0.25, 0.5
    grid = torch.cos(2 * math.pi * (fy * yy + fx * xx)).double()[None, None]  # locked to the network's grid
    jitter = RandomRoll(d)
    # project on cos and sin of the bin: cos projection^2 + sin projection^2 = |mean phasor|^2
    sin_grid = torch.sin(2 * math.pi * (fy * yy + fx * xx)).double()[None, None]
    kept = []
    gen = torch.Generator().manual_seed(0)
    for _ in range(trials):
        total = torch.zeros_like(grid)
        for _ in range(n):
            jitter(grid, gen)
            total += unroll(grid, jitter.last_shift)
        mean = total / n
        c = float((mean * grid).sum() / (grid * grid).sum())
        s = float((mean * sin_grid).sum() / (grid * grid).sum())
        kept.append(c * c + s * s)
    law = predicted_kept_fraction(fy, fx, d, n)
    assert np.mean(kept) == pytest.approx(law, abs=4 * 0.5 / math.sqrt(trials))
    assert roll(unroll(grid, (1, 2)), (1, 2)).equal(grid)
