"""Overlap arithmetic of transposed convolutions: exact checks of the window counts, the line
amplitudes, stacking, a final stride-1 layer, and the spectrum of a real transposed convolution."""

from __future__ import annotations

import json
import math

import pytest
import torch

from gradviz.cli import main
from gradviz.errors import GradvizError
from gradviz.io.outputs import SOFTWARE
from gradviz.spectrum import checkerboard_metrics
from gradviz.upsampling.overlap import (
    OverlapLayer,
    analyse_overlap,
    overlap_pattern,
    overlap_pattern_2d,
    overlap_prefixes,
    parse_kernel,
    stack,
    transposed_conv_1d,
    transposed_conv_2d,
)


@pytest.mark.parametrize(
    "k, s, expected",
    [(3, 2, [2, 1]), (5, 2, [3, 2]), (5, 3, [2, 2, 1]), (4, 3, [2, 1, 1]), (1, 2, [1, 0]), (4, 2, [2, 2]), (7, 4, [2, 2, 2, 1])],
)
def test_overlap_pattern_known_cases(k, s, expected):
    assert overlap_pattern(stack(k, s)).tolist() == expected


@pytest.mark.parametrize("k", range(1, 10))
@pytest.mark.parametrize("s", range(1, 5))
def test_pattern_is_window_count_and_matches_real_transposed_conv(k, s):
    pattern = overlap_pattern(stack(k, s)).tolist()
    # definition: c[n] = #{j : 0 <= n - s j <= k - 1}, and the closed form ceil / floor
    for p in range(s):
        assert pattern[p] == sum(1 for j in range(-k, k + 1) if 0 <= p - s * j <= k - 1)
        assert pattern[p] == (math.ceil(k / s) if p < k % s else k // s)
    # the interior of an actual transposed convolution of a constant input repeats it
    y = transposed_conv_1d(torch.ones(12), stack(k, s))
    full = range(k - 1, 11 * s + 1)  # outputs reached by every window that can reach them
    assert [y[n].item() for n in full] == [pattern[n % s] for n in full]


def test_2d_pattern_squares_the_unevenness():
    rep = analyse_overlap(stack(3, 2))
    assert overlap_pattern_2d(stack(3, 2)).tolist() == [[4, 2], [2, 1]]
    assert (rep.ratio_1d, rep.ratio_2d) == (2.0, 4.0)
    assert rep.pattern_max == 2 and rep.pattern_min == 1
    assert math.isinf(analyse_overlap(stack(1, 2)).ratio_1d)


@pytest.mark.parametrize("s", [1, 2, 3, 4])
@pytest.mark.parametrize("multiple", [1, 2, 3])
def test_kernel_divisible_by_stride_gives_even_overlap(s, multiple):
    rep = analyse_overlap(stack(s * multiple, s))
    assert rep.even and rep.pattern == [float(multiple)] * s
    assert rep.ratio_1d == 1.0
    assert rep.nondc_over_dc_2d == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("k, s", [(3, 2), (5, 2), (7, 2), (4, 3), (5, 3)])
def test_box_line_amplitude_formula(k, s):
    """|C[q]| / C[0] = |sin(pi q k / s) / (k sin(pi q / s))| for a box kernel."""
    ratios = analyse_overlap(stack(k, s)).line_ratios_1d
    for q in range(1, s):
        expected = abs(math.sin(math.pi * q * k / s) / (k * math.sin(math.pi * q / s)))
        assert ratios[q] == pytest.approx(expected, abs=1e-12)


def test_stacking_two_k3s2_and_final_stride1_layer():
    rep = analyse_overlap(stack(3, 2, layers=2))
    assert rep.period == 4 and rep.pattern == [3, 2, 3, 1]
    assert rep.line_ratios_1d == pytest.approx([1, 1 / 9, 1 / 3, 1 / 9], abs=1e-12)
    # a final stride-1 box of size 2 removes period 2: k3 s2 then box 2 is flat
    assert analyse_overlap(stack(3, 2, final=2)).pattern == [3, 3]
    # the equivalent kernel equals running the layers one after another
    y = transposed_conv_1d(torch.ones(10), stack(3, 2, layers=2, final=3))
    assert y[20:32].tolist() == (analyse_overlap(stack(3, 2, layers=2, final=3)).pattern * 3)


@pytest.mark.parametrize("k, s", [(3, 2), (5, 2), (4, 3), (5, 3)])
def test_constant_kernel_constant_input_spectral_lines(k, s):
    """FFT of the interior of a real 2D transposed convolution: power only on the lattice, at
    (|C[q1]| |C[q2]| / C[0]^2)^2 of DC."""
    n_in, periods = 16, 8
    y = transposed_conv_2d(torch.ones(n_in, n_in), stack(k, s))
    start = s * math.ceil((k - 1) / s)  # first full-overlap output, at phase 0
    crop = y[start : start + periods * s, start : start + periods * s]
    power = torch.fft.fft2(crop).abs().square()
    power = power / power[0, 0]
    expected = torch.zeros_like(power)
    expected[::periods, ::periods] = torch.tensor(analyse_overlap(stack(k, s)).power_2d, dtype=torch.float64)
    torch.testing.assert_close(power, expected, atol=1e-12, rtol=1e-9)
    if (k, s) == (3, 2):
        assert power[periods, 0] == pytest.approx(1 / 9) and power[periods, periods] == pytest.approx(1 / 81)
        assert float(power.sum() - 1) == pytest.approx(19 / 81)
    # gradviz.spectrum agrees: every non-DC bit of energy sits on the lattice
    assert checkerboard_metrics(crop.float()[None], s).lattice_fraction == pytest.approx(1.0, abs=1e-6)


def test_binomial_upsampler_has_no_lines():
    """[1, 4, 6, 4, 1] at stride 2 (the Laplacian-pyramid upsampler): H(pi) = 0."""
    layers = stack([1.0, 4.0, 6.0, 4.0, 1.0], 2)
    rep = analyse_overlap(layers)
    assert rep.pattern == [8.0, 8.0] and rep.even
    assert rep.line_ratios_1d[1] == pytest.approx(0.0, abs=1e-12)
    y = transposed_conv_2d(torch.ones(16, 16), layers)
    crop = y[4:28, 4:28]
    assert torch.equal(crop, torch.full_like(crop, 64.0))
    # while the box kernel of the same size at the same stride has lines
    assert analyse_overlap(stack(5, 2)).line_ratios_1d[1] == pytest.approx(0.2)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: stack(0, 2), "kernel size must be an integer >= 1, got 0"),
        (lambda: stack(3, 0), "stride must be an integer >= 1, got 0"),
        (lambda: stack(3, 2, layers=0), "layers must be an integer >= 1, got 0"),
        (lambda: stack(3, 2, final=-1), "final stride-1 layer size must be an integer >= 0"),
        (lambda: OverlapLayer((), 2), "kernel must have at least one weight"),
        (lambda: parse_kernel("x"), "kernel must be a size from 1 to 1024 or comma-separated weights"),
        (lambda: parse_kernel("0"), "kernel must be a size from 1 to 1024"),
        (lambda: parse_kernel("1,-1"), "kernel weights must be finite with a non-zero sum"),
    ],
)
def test_invalid_overlap_inputs_raise_gradviz_error(make, match):
    with pytest.raises(GradvizError, match=match):
        make()


def test_overlap_prefixes_are_the_rows_of_the_figure():
    layers = stack(3, 2, layers=2, final=2)
    prefixes = overlap_prefixes(layers, n_inputs=6)
    assert [p.label for p in prefixes] == ["k3 s2", "k3 s2 -> k3 s2", "k3 s2 -> k3 s2 -> k2 s1"]
    for i, p in enumerate(prefixes):
        assert p.report == analyse_overlap(layers[: i + 1])
        assert torch.equal(p.output_1d, transposed_conv_1d(torch.ones(6), layers[: i + 1]))
        assert torch.equal(p.output_2d, transposed_conv_2d(torch.ones(6, 6), layers[: i + 1]))


def test_cli_overlap_writes_figure_and_json(tmp_path, capsys):
    out = tmp_path / "overlap.png"
    assert main(["overlap", "--kernel", "3", "--stride", "2", "--depth", "2", "--out", str(out)]) == 0
    data = json.loads(out.with_suffix(".json").read_text())
    assert data == json.loads(json.dumps({"software": SOFTWARE, **analyse_overlap(stack(3, 2, layers=2)).to_dict()}))
    assert data["period"] == 4 and data["pattern"] == [3.0, 2.0, 3.0, 1.0] and data["ratio_2d"] == 9.0
    png = out.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and b"Software\x00" + SOFTWARE.encode() in png  # the mark that lets a later run replace it
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (1100, round((2.4 * 2 + 0.4) * 100))  # 11 x (2.4 rows + 0.4) inches at 100 dpi
    assert "[3.0, 2.0, 3.0, 1.0]" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["--kernel", "0"], ["--stride", "0"], ["--depth", "0"], ["--final", "-2"], ["--out", "x.txt"]])
def test_cli_overlap_bad_input_exits_2_without_output(tmp_path, capsys, argv):
    argv = [a.replace("x.txt", str(tmp_path / "x.txt")) for a in argv]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "o.png")]
    assert main(["overlap", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gradviz overlap: error:") and "\n" not in err
    assert list(tmp_path.iterdir()) == []
