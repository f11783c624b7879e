"""Exact checks of the checkerboard metrics against the overlap arithmetic of strided convolutions."""

import math

import pytest
import torch
import torch.nn.functional as F

from gradviz.spectrum import SpectrumAccumulator, checkerboard_metrics, period_map


def strided_conv_input_grad(kernel: torch.Tensor, stride: int, upstream: torch.Tensor, size: int) -> torch.Tensor:
    """Input gradient of a circularly padded strided 2D convolution, for a given upstream gradient."""
    k = kernel.shape[-1]
    x = torch.zeros(upstream.shape[0], 1, size, size, dtype=torch.float64, requires_grad=True)
    # Circular padding on the right/bottom keeps every phase equivalent (no image border).
    y = F.conv2d(F.pad(x, (0, k - 1, 0, k - 1), mode="circular"), kernel.view(1, 1, k, k).double(), stride=stride)
    (g,) = torch.autograd.grad(y, x, upstream.double())
    return g


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
    # T2: |H(pi)|^2/|H(0)|^2 = 1/9 on each axis, so P(pi, 0) / P(pi, pi) = 9 exactly
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
    # T3: [1, 2, 1] has polyphase energies (1 + 1, 4) = (2, 4): 2D tile max/min 4
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
    # T8: lattice fraction = M^2 sum (T - mean T)^2 / sum (g - mean g)^2, T the phase means of g
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
    g = torch.randn(1, 35, 37)
    assert checkerboard_metrics(g, 4).shape == (32, 36)
    with pytest.raises(ValueError, match="smaller than the period"):
        checkerboard_metrics(torch.randn(1, 3, 3), 4)
    with pytest.raises(ValueError, match="positive integer"):
        checkerboard_metrics(g, 0)


def test_one_by_one_shortcut_tile_has_zeros():
    # T6: a 1x1 stride-2 convolution only sees phase (0, 0): the tile is [[4, 0], [0, 0]]
    g = strided_conv_input_grad(torch.ones(1, 1), 2, torch.randn(8, 1, 8, 8), 16)
    m = checkerboard_metrics(g, 2)
    assert m.tile == [[4.0, 0.0], [0.0, 0.0]]
    assert math.isinf(m.tile_contrast)
    assert m.to_dict()["tile_contrast"] is None
