"""Exact checks of the checkerboard metrics against the overlap arithmetic of strided convolutions."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import strided_conv_input_grad
from gradviz.spectrum import (
    SpectrumAccumulator,
    checkerboard_metrics,
    crop_to_period,
    lattice_mask,
    period_map,
    radial_profile,
)
from gradviz.spectrum.synthetic import FIELDS, add_grid


def test_overlap_counts_1d_kernel3_stride2():
    x = torch.zeros(1, 1, 20, dtype=torch.float64, requires_grad=True)
    y = F.conv1d(x, torch.ones(1, 1, 3, dtype=torch.float64), stride=2)
    (g,) = torch.autograd.grad(y, x, torch.ones_like(y))
    # interior: positions 2j (covered by windows j-1 and j) count 2, odd positions count 1
    assert g[0, 0, 2:-2].tolist() == [2.0, 1.0] * 8


def test_overlap_counts_2d_kernel3_stride2_constant_upstream():
    g = strided_conv_input_grad(torch.ones(3, 3), 2, torch.ones(1, 1, 16, 16), 32)[0, 0]
    assert torch.equal(g[:2, :2], torch.tensor([[4.0, 2.0], [2.0, 1.0]], dtype=torch.float64))
    assert torch.equal(g, g[:2, :2].repeat(16, 16))
    m = checkerboard_metrics(g[None], 2)
    assert m.lattice_fraction == pytest.approx(1.0, abs=1e-12)  # a period-2 pattern is all lattice
    # |H(pi)|^2/|H(0)|^2 = 1/9 on each axis, so P(pi, 0) / P(pi, pi) = 9 exactly
    p = torch.fft.fft2(g - g.mean(), norm="ortho").abs().square()
    assert (p[16, 0] / p[16, 16]).item() == pytest.approx(9.0, rel=1e-12)
    assert (p[16, 0] / p[0, 16]).item() == pytest.approx(1.0, rel=1e-12)
    assert m.tile_contrast == pytest.approx(16.0)  # tile of g^2: 4^2 / 1^2


def test_white_noise_upstream_tile_tends_to_overlap_counts():
    gen = torch.Generator().manual_seed(1)
    up = torch.randn(64, 1, 32, 32, generator=gen)
    g = strided_conv_input_grad(torch.ones(3, 3), 2, up, 64)
    m = checkerboard_metrics(g, 2)
    tile = torch.tensor(m.tile)
    expected = torch.tensor([[4.0, 2.0], [2.0, 1.0]])
    assert torch.allclose(tile, expected / expected.mean(), rtol=0.05)
    assert m.tile_contrast == pytest.approx(4.0, rel=0.08)


@pytest.mark.parametrize("k,s", [(2, 2), (4, 2), (3, 3), (6, 3)])
def test_kernel_divisible_by_stride_is_even(k, s):
    g = strided_conv_input_grad(torch.ones(k, k), s, torch.ones(1, 1, 12, 12), 12 * s)[0, 0]
    assert torch.all(g == g[0, 0])  # constant: no lattice at all
    up = torch.randn(64, 1, 12, 12, generator=torch.Generator().manual_seed(2))
    m = checkerboard_metrics(strided_conv_input_grad(torch.ones(k, k), s, up, 12 * s), s)
    assert m.tile_contrast == pytest.approx(1.0, abs=1e-9)


def test_binomial_kernel_polyphase_energies():
    # [1, 2, 1] has polyphase energies (1 + 1, 4) = (2, 4): 2D tile max/min 4
    h = torch.tensor([1.0, 2.0, 1.0])
    up = torch.randn(96, 1, 16, 16, generator=torch.Generator().manual_seed(3))
    m = checkerboard_metrics(strided_conv_input_grad(torch.outer(h, h), 2, up, 32), 2)
    assert m.tile_contrast == pytest.approx(4.0, rel=0.1)


def test_null_fraction_formula_and_white_noise():
    g = torch.randn(64, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    m = checkerboard_metrics(g, 8)
    assert m.null_fraction == (8 * 8 - 1) / (32 * 32 - 1)
    assert m.lattice_fraction == pytest.approx(m.null_fraction, rel=0.1)
    assert sum(m.octave_null_fractions) == pytest.approx(m.null_fraction)


def test_metrics_are_scale_invariant_and_octaves_add_up():
    g = torch.randn(2, 3, 40, 36, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    g = g + torch.linspace(0, 1, 36, dtype=torch.float64)
    a, b = checkerboard_metrics(g, 4), checkerboard_metrics(1e-3 * g, 4)
    for field in ("lattice_fraction", "tile_contrast", "tile_cv", "hf_offlattice_fraction", "coherent_lattice_fraction"):
        assert getattr(a, field) == pytest.approx(getattr(b, field), rel=1e-9)
    assert a.shape == (40, 36)
    assert sum(a.octave_fractions) == pytest.approx(a.lattice_fraction, rel=1e-12)


def test_polyphase_identity_matches_fft():
    # lattice fraction = M^2 sum (T - mean T)^2 / sum (g - mean g)^2, T the phase means of g
    g = torch.randn(32, 32, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    s, m = 4, 8
    t = g.reshape(m, s, m, s).mean(dim=(0, 2))
    expected = m * m * ((t - t.mean()) ** 2).sum() / ((g - g.mean()) ** 2).sum()
    assert checkerboard_metrics(g[None], s).lattice_fraction == pytest.approx(expected.item(), rel=1e-10)


def test_period_map_uses_gcd():
    p = period_map(16, 16, 8)
    assert p[0, 0] == 1  # DC
    assert p[2, 0] == 8 and p[4, 0] == 4 and p[8, 8] == 2 and p[4, 6] == 8 and p[4, 8] == 4
    assert p[1, 0] == 0  # off the lattice


def test_accumulating_batches_equals_one_batch():
    g = torch.randn(10, 3, 32, 32, generator=torch.Generator().manual_seed(7))
    acc = SpectrumAccumulator(4)
    for chunk in g.split(3):
        acc.add(chunk)
    one = checkerboard_metrics(g, 4)
    two = acc.metrics()
    assert two.n_images == 10
    assert two.lattice_fraction == pytest.approx(one.lattice_fraction, rel=1e-12)
    assert torch.allclose(torch.tensor(two.tile), torch.tensor(one.tile), rtol=1e-12)


def test_crop_is_top_left_and_bad_inputs_fail():
    g = torch.randn(1, 35, 37, generator=torch.Generator().manual_seed(8))
    m = checkerboard_metrics(g, 4, n_null=200)
    assert m.shape == (32, 36)
    assert m.to_dict() == checkerboard_metrics(g[:, :32, :36].clone(), 4, n_null=200).to_dict()
    assert torch.equal(crop_to_period(g, 4), g[:, :32, :36])
    with pytest.raises(ValueError, match="smaller than the period"):
        checkerboard_metrics(torch.randn(1, 3, 3), 4)
    with pytest.raises(ValueError, match="positive integer"):
        checkerboard_metrics(g, 0)
    with pytest.raises(ValueError, match="positive integer"):
        checkerboard_metrics(g, True)
    with pytest.raises(ValueError, match=r"expected a gradient of shape .* got \(1, 1, 1, 35, 37\)"):
        checkerboard_metrics(g[None, None], 4)
    with pytest.raises(ValueError, match="size 10x12 is not a multiple of the period 4"):
        period_map(10, 12, 4)


def test_accumulator_refuses_what_it_cannot_pool():
    acc = SpectrumAccumulator(4)
    with pytest.raises(ValueError, match="no gradient was added"):
        acc.metrics()
    acc.add(torch.randn(2, 3, 32, 32))
    with pytest.raises(ValueError, match=r"gradient shape \(3, 16, 16\) differs from the first one \(3, 32, 32\)"):
        acc.add(torch.randn(3, 17, 18))
    with pytest.raises(ValueError, match="differ in stride or weighting"):
        acc.merge(SpectrumAccumulator(4, weighting="energy"))
    other = SpectrumAccumulator(4)
    other.add(torch.randn(1, 3, 16, 16))
    with pytest.raises(ValueError, match="different shapes"):
        acc.merge(other)
    assert acc.n_images == 2  # nothing was added by the refused calls


def test_one_by_one_shortcut_tile_has_zeros():
    # a 1x1 stride-2 convolution only sees phase (0, 0): the tile is [[4, 0], [0, 0]]
    g = strided_conv_input_grad(torch.ones(1, 1), 2, torch.randn(8, 1, 8, 8), 16)
    m = checkerboard_metrics(g, 2)
    assert m.tile == [[4.0, 0.0], [0.0, 0.0]]
    assert math.isinf(m.tile_contrast)
    assert m.to_dict()["tile_contrast"] is None


def radial_profile_numpy(power: np.ndarray, n_bins: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Ring means by their definition: ring i holds the bins with edge_i < r <= edge_(i+1) (ring 0 from r = 0,
    the last ring up to the corner), the edges splitting [0, sqrt(1/2)] evenly."""
    h, w = power.shape
    r = np.hypot(np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :])
    n = n_bins or max(h, w) // 2
    edges = np.linspace(0.0, math.sqrt(0.5) + 1e-9, n + 1)
    means = []
    for i in range(n):
        ring = (r > edges[i]) | (i == 0)
        ring &= (r <= edges[i + 1]) | (i == n - 1)
        means.append(power[ring].sum() / ring.sum() if ring.any() else math.nan)
    return (edges[1:] + edges[:-1]) / 2, np.array(means)


@pytest.mark.parametrize("shape,n_bins", [((24, 32), None), ((24, 32), 7), ((15, 9), 5)])
def test_radial_profile_matches_a_numpy_twin_on_a_function_of_radius(shape, n_bins):
    h, w = shape
    r = np.hypot(np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :])
    power = np.exp(-8 * r) + 0.1 / (1 + r)
    centres, means = radial_profile(torch.from_numpy(power), n_bins)
    want_centres, want_means = radial_profile_numpy(power, n_bins)
    assert np.allclose(centres.numpy(), want_centres, rtol=1e-15, atol=0)
    assert np.allclose(means.numpy(), want_means, rtol=1e-13, atol=0)
    # a decreasing function of r: each ring's mean lies between its values at the ring's edges
    edges = np.linspace(0.0, math.sqrt(0.5) + 1e-9, len(want_centres) + 1)
    f = lambda x: np.exp(-8 * x) + 0.1 / (1 + x)  # noqa: E731
    full = ~np.isnan(want_means)
    assert np.all((f(edges[1:]) <= means.numpy())[full] & (means.numpy() <= f(edges[:-1]))[full])


def test_radial_profile_of_a_flat_spectrum_is_flat_and_empty_rings_are_nan():
    centres, means = radial_profile(torch.full((8, 8), 2.5), n_bins=40)
    empty = np.isnan(radial_profile_numpy(np.full((8, 8), 2.5), 40)[1])
    assert empty.any() and np.array_equal(np.isnan(means.numpy()), empty)
    assert np.all(means.numpy()[~empty] == 2.5)
    assert centres[0].item() == pytest.approx((math.sqrt(0.5) + 1e-9) / 80, rel=1e-15)


def meter_numpy(grad: np.ndarray, stride: int, weighting: str) -> dict[str, float]:
    """The energy shares from the definitions of the meter's module docstring, in numpy."""
    b, c, h, w = grad.shape
    h, w = stride * (h // stride), stride * (w // stride)
    g = grad[..., :h, :w].astype(np.float64)  # step 1: top-left crop
    centred = g - g.mean(axis=(-2, -1), keepdims=True)  # step 3
    if weighting == "equal":  # step 2: unit energy per image
        scale = 1 / np.sqrt((centred**2).sum(axis=(1, 2, 3)))
        g, centred = g * scale[:, None, None, None], centred * scale[:, None, None, None]
    power = (np.abs(np.fft.fft2(centred, norm="ortho")) ** 2).sum(axis=(0, 1))  # step 4
    fy, fx = np.fft.fftfreq(h), np.fft.fftfreq(w)
    not_dc = np.ones((h, w), dtype=bool)
    not_dc[0, 0] = False
    # both frequencies multiples of 1/S
    on_y, on_x = np.isclose(fy * stride, np.round(fy * stride)), np.isclose(fx * stride, np.round(fx * stride))
    lattice = on_y[:, None] & on_x[None, :] & not_dc
    top_octave = np.maximum(np.abs(fy)[:, None], np.abs(fx)[None, :]) >= 1 / 4
    mean = g.mean(axis=0)
    mean = mean - mean.mean(axis=(-2, -1), keepdims=True)
    coherent = (np.abs(np.fft.fft2(mean, norm="ortho")) ** 2).sum(axis=0)
    return {
        "lattice_fraction": power[lattice].sum() / power[not_dc].sum(),
        "hf_offlattice_fraction": power[top_octave & ~lattice & not_dc].sum() / power[not_dc].sum(),
        "coherent_lattice_fraction": coherent[lattice].sum() / coherent[not_dc].sum(),
    }


@pytest.mark.parametrize("weighting", ["equal", "energy"])
@pytest.mark.parametrize("field,stride", [("1/f^2", 4), ("blue", 3), ("white", 8), ("heavy-tailed", 2)])
def test_energy_shares_match_numpy_twins_of_their_definitions(field, stride, weighting):
    gen = torch.Generator().manual_seed(stride)
    g = FIELDS[field](3, 3, 64, generator=gen)[..., :50, :45]  # not multiples of S: the crop matters
    g = g * torch.tensor([1.0, 5.0, 0.2], dtype=torch.float64)[:, None, None, None]  # unequal energies
    g = add_grid(g, stride, 0.05, generator=gen)  # the same grid in every image: coherent
    m = checkerboard_metrics(g, stride, n_null=0, weighting=weighting)
    want = meter_numpy(g.numpy(), stride, weighting)
    for name, value in want.items():
        assert getattr(m, name) == pytest.approx(value, rel=1e-12, abs=1e-15), name
    assert 0 < m.hf_offlattice_fraction < 1 and 0 < m.coherent_lattice_fraction < 1
    assert m.coherent_lattice_fraction > m.lattice_fraction  # the grid is shared, the noise is not


def test_lattice_mask_is_the_non_dc_lattice():
    mask = lattice_mask(12, 20, 4)
    u, v = torch.meshgrid(torch.arange(12), torch.arange(20), indexing="ij")
    want = (u % 3 == 0) & (v % 5 == 0) & ((u > 0) | (v > 0))
    assert torch.equal(mask, want) and int(mask.sum()) == 4 * 4 - 1
