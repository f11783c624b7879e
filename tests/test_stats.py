"""The grid tests of gradviz.spectrum.lines: numpy twins of each piece, and exact cases."""

import math

import numpy as np
import pytest
import torch

import gradviz.spectrum.tiles as tiles_module
from conftest import strided_conv_input_grad
from gradviz.spectrum import SpectrumAccumulator, checkerboard_metrics, period_map
from gradviz.spectrum.lines import detection_threshold, holm_adjust, line_excess_test, line_ratio_map, periodic_fft
from gradviz.spectrum.tiles import interior_margin, relative_tiles, shared_tile_test, tile_testable


def moisan_numpy(u: np.ndarray) -> np.ndarray:
    """Periodic component by its definition: periodic Laplacian of p = interior Laplacian of u, same mean."""
    h, w = u.shape
    n = h * w

    def idx(y, x):
        return (y % h) * w + (x % w)

    lap_per = np.zeros((n, n))
    rhs = np.zeros(n)
    for y in range(h):
        for x in range(w):
            i = idx(y, x)
            for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                lap_per[i, idx(y + dy, x + dx)] += 1
                lap_per[i, i] -= 1
                if 0 <= y + dy < h and 0 <= x + dx < w:  # interior Laplacian: neighbours inside only
                    rhs[i] += u[y + dy, x + dx] - u[y, x]
    a = np.vstack([lap_per, np.ones((1, n)) / n])
    b = np.concatenate([rhs, [u.mean()]])
    return np.linalg.lstsq(a, b, rcond=None)[0].reshape(h, w)


def test_periodic_component_matches_its_definition():
    u = np.random.default_rng(0).normal(size=(6, 5)).cumsum(0)
    p = moisan_numpy(u)
    got = periodic_fft(torch.from_numpy(u))
    want = np.fft.fft2(p - p.mean(), norm="ortho")
    assert np.allclose(got.numpy(), want, atol=1e-10)


def line_ratio_numpy(logp: np.ndarray, lattice: np.ndarray, half: int = 2) -> np.ndarray:
    h, w = logp.shape
    out = np.full((h, w), np.nan)
    for u in range(h):
        for v in range(w):
            vals = []
            for du in range(-half, half + 1):
                for dv in range(-half, half + 1):
                    y, x = (u + du) % h, (v + dv) % w
                    if (du, dv) == (0, 0) or lattice[y, x] or (y, x) == (0, 0):
                        continue
                    if u == 0 and not (y == 0 and du == 0):
                        continue  # a bin on the row axis: neighbours on that axis only
                    if v == 0 and u != 0 and not (x == 0 and dv == 0):
                        continue
                    if u != 0 and v != 0 and (y == 0 or x == 0):
                        continue  # an off-axis bin: off-axis neighbours only
                    vals.append(logp[y, x])
            out[u, v] = logp[u, v] - np.mean(vals)
    return out


def test_line_ratio_map_matches_a_loop():
    logp = np.random.default_rng(1).normal(size=(12, 16))
    lattice = (period_map(12, 16, 4) > 0).numpy()
    got = line_ratio_map(torch.from_numpy(logp), torch.from_numpy(lattice)).numpy()
    want = line_ratio_numpy(logp, lattice)
    assert np.allclose(got[1:, 1:], want[1:, 1:], atol=1e-12)  # off-axis
    assert np.allclose(got[0, 1:], want[0, 1:], atol=1e-12)  # row axis
    assert np.allclose(got[1:, 0], want[1:, 0], atol=1e-12)  # column axis


def test_u_statistic_is_the_mean_over_pairs_of_different_images():
    t = torch.randn(5, 4, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    t = t - t.mean((-2, -1), keepdim=True)
    pairs = [float((t[i] * t[k]).mean()) for i in range(5) for k in range(5) if i != k]
    result = shared_tile_test(t, n_null=200)
    assert result.statistic == pytest.approx(np.mean(pairs), rel=1e-12)
    assert result.shared_tile_cv == pytest.approx(math.sqrt(max(np.mean(pairs), 0.0)), rel=1e-12)


def test_identical_tiles_have_the_smallest_p_value_and_their_own_cv():
    pattern = torch.tensor([[1.0, -1.0], [-1.0, 1.0]], dtype=torch.float64) * 0.3
    result = shared_tile_test(pattern.repeat(12, 1, 1), n_null=400, seed=0)
    assert result.shared_tile_cv == pytest.approx(0.3, rel=1e-12)  # the shared pattern's std / mean
    assert result.p_value < 0.01


def test_tile_test_needs_two_images():
    one = shared_tile_test(torch.randn(1, 4, 4), n_null=200)
    assert math.isnan(one.p_value) and math.isnan(one.shared_tile_cv)
    assert one.note == "a shared tile needs two or more images with energy"
    m = checkerboard_metrics(torch.randn(3, 96, 96, generator=torch.Generator().manual_seed(0)), 4, n_null=200)
    assert math.isnan(m.tile_p_value) and m.tile_note == "a shared tile needs two or more images with energy"
    small = checkerboard_metrics(torch.randn(2, 3, 48, 48, generator=torch.Generator().manual_seed(0)), 8, n_null=200)
    assert math.isnan(small.tile_p_value) and small.tile_note == (
        "the map is too small: the interior (16 px cut from every side) must hold 4 periods per side")
    assert shared_tile_test(torch.randn(4, 1, 1), n_null=200).note == "a period of 1 has no tile"


def test_the_interior_holds_four_periods_per_side():
    assert [interior_margin(s) for s in (1, 2, 3, 16, 24, 32)] == [16, 16, 18, 16, 24, 32]
    # the smallest testable side is 2 * margin + 4 * S
    for s in (2, 3, 8, 32):
        side = 2 * interior_margin(s) + 4 * s
        assert tile_testable(side, side + 5, s) and not tile_testable(side - 1, side + 5, s)


def test_line_test_is_nan_without_a_background():
    for h, w, s in ((4, 8, 4), (8, 4, 4), (8, 8, 1)):
        t = line_excess_test(torch.ones(h, w, dtype=torch.float64), s, period_map(h, w, s), n_maps=1, n_null=200)
        assert math.isnan(t.lattice_excess) and math.isnan(t.p_value) and t.period_excess == {}


def test_relative_tiles_keep_a_periodic_energy_pattern_and_drop_a_quadratic_trend():
    s, size = 4, 96
    y, x = torch.meshgrid(torch.arange(size, dtype=torch.float64), torch.arange(size, dtype=torch.float64), indexing="ij")
    pattern = torch.tensor([[2.0, 1.0, 1.0, 0.5]] * 4, dtype=torch.float64)
    periodic = pattern.repeat(size // s, size // s)
    trend = 1 + 0.01 * x + 0.002 * y + 1e-4 * x * y + 1e-4 * y * y
    t = relative_tiles((trend + 0.0 * periodic)[None], s)[0]
    assert t.abs().max() < 1e-12  # a trend up to the second degree leaves no tile
    t = relative_tiles(periodic[None], s)[0]
    want = pattern / pattern.mean() - 1
    assert torch.allclose(t, want, atol=1e-12)


def test_holm_adjust_by_hand():
    assert holm_adjust([0.01, 0.04, 0.03, math.nan]) == pytest.approx([0.03, 0.06, 0.06, math.nan], nan_ok=True)


def test_a_pure_grid_is_detected_with_the_smallest_p_value():
    g = torch.randn(1, 2, 2, generator=torch.Generator().manual_seed(3)).repeat(1, 16, 16)
    g = g + 1e-3 * torch.randn(1, 32, 32, generator=torch.Generator().manual_seed(4))
    m = checkerboard_metrics(g, 2, n_null=999)
    assert m.grid_detected and m.p_value == pytest.approx(1 / 1000)
    assert m.octave_excess[0] > 1e3
    assert m.verdict.startswith("grid: period 2")


def test_same_seed_same_numbers_other_seed_other_draws():
    g = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    a, b, c = (checkerboard_metrics(g, 8, seed=s, n_null=200) for s in (0, 0, 1))
    assert a.to_dict() == b.to_dict()
    assert a.lattice_excess == c.lattice_excess and a.octave_p_values != c.octave_p_values


def test_equal_weights_ignore_one_loud_image_energy_weights_do_not():
    gen = torch.Generator().manual_seed(6)
    g = torch.randn(4, 3, 64, 64, generator=gen, dtype=torch.float64)
    loud = g.clone()
    loud[0] *= 1e4
    for field in ("lattice_fraction", "lattice_excess", "shared_tile_cv", "tile_contrast"):
        assert getattr(checkerboard_metrics(loud, 4, n_null=200), field) == pytest.approx(
            getattr(checkerboard_metrics(g, 4, n_null=200), field), rel=1e-9)
    energy = checkerboard_metrics(loud, 4, n_null=200, weighting="energy")
    assert energy.lattice_fraction == pytest.approx(checkerboard_metrics(g[:1], 4, n_null=200).lattice_fraction, rel=1e-6)


def test_merged_accumulators_equal_one():
    gen = torch.Generator().manual_seed(7)
    g = torch.randn(6, 3, 64, 64, generator=gen)
    one = SpectrumAccumulator(8)
    one.add(g)
    a, b = SpectrumAccumulator(8), SpectrumAccumulator(8)
    a.add(g[:2])
    b.add(g[2:])
    merged, whole = a.merge(b).metrics(n_null=200), one.metrics(n_null=200)
    for field in ("lattice_fraction", "lattice_excess", "octave_excess", "octave_p_values", "p_value",
                  "shared_tile_cv", "tile_p_value", "coherent_lattice_fraction", "tile_cv"):
        assert getattr(merged, field) == pytest.approx(getattr(whole, field), rel=1e-9)


def test_bad_arguments_are_refused():
    g = torch.randn(2, 3, 32, 32)
    with pytest.raises(ValueError, match="alpha"):
        checkerboard_metrics(g, 4, alpha=1.5)
    with pytest.raises(ValueError, match="n_null"):
        checkerboard_metrics(g, 4, n_null=10)
    with pytest.raises(ValueError, match="weighting"):
        checkerboard_metrics(g, 4, weighting="loud")
    with pytest.raises(ValueError, match="NaN"):
        checkerboard_metrics(torch.full((3, 32, 32), math.nan), 4)


def test_strided_convolution_with_white_noise_upstream_makes_a_tile_not_lines():
    """White-noise upstream through kernel 3 stride 2 gives each phase its overlap count of
    energy, [[4, 2], [2, 1]] (cv 0.484), but no fixed pattern in the signed gradient."""
    up = torch.randn(16, 1, 32, 32, generator=torch.Generator().manual_seed(3))
    m = checkerboard_metrics(strided_conv_input_grad(torch.ones(3, 3), 2, up, 64), 2)
    t = torch.tensor([4.0, 2.0, 2.0, 1.0])
    expected_cv = float(((t / t.mean() - 1) ** 2).mean().sqrt())
    assert m.shared_tile_cv == pytest.approx(expected_cv, rel=0.05)
    assert m.tile_p_value < 0.01
    assert not m.grid_detected


def test_no_null_draws_give_the_same_excess_and_no_verdict():
    g = torch.randn(4, 3, 96, 96, generator=torch.Generator().manual_seed(8))
    tested, untested = checkerboard_metrics(g, 4), checkerboard_metrics(g, 4, n_null=0)
    assert untested.octave_excess == tested.octave_excess
    assert untested.shared_tile_cv == tested.shared_tile_cv
    assert all(math.isnan(p) for p in untested.octave_p_values) and math.isnan(untested.p_value)
    assert math.isnan(untested.tile_p_value) and not untested.grid_detected
    assert untested.verdict == "not tested (n_null = 0)"


@pytest.mark.parametrize("seed", range(5))
def test_an_octave_above_its_threshold_is_detected_and_below_it_its_p_is_not_below_alpha_over_g(seed):
    # Noise with a weak period-2 and period-4 pattern: some octaves land above their threshold, some below.
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(3, 64, 64, generator=gen, dtype=torch.float64)
    x[:, ::2, ::2] += 0.3 * seed
    x[:, 1::4, ::4] += 0.5
    m = checkerboard_metrics(x, 8, n_null=299, seed=seed)
    g = sum(not math.isnan(p) for p in m.period_p_values.values())
    assert len(m.octave_threshold) == len(m.octave_excess) == 3
    for excess, threshold, p, p_adj, (lo, hi) in zip(m.octave_excess, m.octave_threshold, m.octave_p_values,
                                                      m.octave_p_adjusted, m.octave_null_band):
        assert lo <= hi
        if excess > threshold:
            assert p < m.alpha / g and p_adj < m.alpha
        else:
            assert p >= m.alpha / g


def test_detection_threshold_counts_null_draws_exactly():
    null = torch.log(torch.arange(1.0, 100.0, dtype=torch.float64))  # excesses 1 .. 99, n = 99
    for level in (0.011, 0.02, 0.05, 0.1, 0.5):
        t = detection_threshold(null, level)
        p_above = (1 + int((null >= math.log(t) + 1e-9).sum())) / 100
        p_at = (1 + int((null >= math.log(t) - 1e-9).sum())) / 100
        assert p_above < level <= p_at
    assert detection_threshold(null, 0.01) == math.inf  # 1/100 is the smallest p 99 draws give, not below 0.01


@pytest.mark.parametrize("n, s", [(40, 4), (300, 8)])
def test_tile_p_value_does_not_depend_on_the_chunk_size(n, s, monkeypatch):
    # the null draws come from one seeded stream, whatever the number of draws per chunk (memory bound)
    g = torch.Generator().manual_seed(n)
    tiles = torch.rand(n, s, s, generator=g) + 0.05 * torch.rand(1, s, s, generator=g)
    p = []
    for chunk in (10_000_000, 250_000, 1_000):
        monkeypatch.setattr(tiles_module, "NULL_CHUNK_ELEMENTS", chunk)
        result = shared_tile_test(tiles, n_null=999, seed=3)
        p.append(result.p_value)
    assert p[0] == p[1] == p[2] and 1 / 1000 <= p[0] <= 1
