"""Generator designs at initialisation: parsing, shapes, ICNR, seeding, the grids they show, CLI."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from gradviz.cli import main
from gradviz.errors import GradvizError
from gradviz.upsampling.generators import (
    DESIGN_EXAMPLES,
    Generator,
    GeneratorDesign,
    measure_generator,
    parse_design,
    sample_images,
)
from gradviz.upsampling.upsamplers import UPSAMPLERS, SubPixelConv, upsampling_block


def test_parse_design_round_trips():
    assert parse_design("deconv4-last2+final3") == GeneratorDesign("deconv4", 2, 3)
    assert parse_design("subpixel-icnr") == GeneratorDesign("subpixel-icnr")
    for name in DESIGN_EXAMPLES:
        assert parse_design(name).name == name


@pytest.mark.parametrize("bad", ["deconv2", "deconv7", "upsample", "nearest-last1", "deconv3-last3", "deconv3+final0", "", "bilinear+x"])
def test_invalid_designs_fail_clearly(bad):
    with pytest.raises(GradvizError, match="valid"):
        parse_design(bad)


def test_block_kinds_put_deconv_last():
    assert parse_design("deconv3-last2").block_kinds(4) == ["nearest", "nearest", "deconv3", "deconv3"]
    assert parse_design("deconv3-last1").block_kinds(3) == ["nearest", "nearest", "deconv3"]
    assert parse_design("bilinear").block_kinds(2) == ["bilinear", "bilinear"]


@pytest.mark.parametrize("kind", ["deconv3", "deconv4", "deconv5", "nearest", "bilinear", "subpixel"])
def test_blocks_double_the_size(kind):
    torch.manual_seed(0)
    assert upsampling_block(kind, 4, 3)(torch.randn(2, 4, 5, 7)).shape == (2, 3, 10, 14)


def test_icnr_subpixel_equals_conv_then_nearest_resize():
    """ICNR makes the 4 sub-pixel kernels equal: pixel shuffle then copies each low-res output to a 2x2 block."""
    torch.manual_seed(0)
    block = SubPixelConv(3, 2).icnr_()
    x = torch.randn(1, 3, 6, 6)
    low = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), block.conv.weight[::4], block.conv.bias[::4])
    torch.testing.assert_close(block(x), F.interpolate(low, scale_factor=2, mode="nearest"))


@pytest.mark.parametrize("name", DESIGN_EXAMPLES)
def test_every_design_builds_and_measures(name):
    result, images = measure_generator(name, samples=4, seed=0, blocks=2, width=8)
    assert images.shape == (4, 3, 16, 16)
    assert images.abs().max() <= 1
    m = result.metrics
    assert m.stride == 4 and m.n_images == 4
    assert sum(m.octave_fractions) == pytest.approx(m.lattice_fraction)


def test_seed_fixes_everything():
    a, ia = measure_generator("deconv3", samples=4, seed=3, blocks=2, width=8)
    b, ib = measure_generator("deconv3", samples=4, seed=3, blocks=2, width=8)
    c, ic = measure_generator("deconv3", samples=4, seed=4, blocks=2, width=8)
    assert torch.equal(ia, ib) and a.to_dict() == b.to_dict()
    assert not torch.equal(ia, ic)


def test_sampling_leaves_the_generator_unchanged():
    torch.manual_seed(0)
    gen = Generator(parse_design("nearest"), width=8, blocks=2).eval()
    before = {k: v.clone() for k, v in gen.state_dict().items()}
    sample_images(gen, 4)
    assert not gen.training
    assert all(torch.equal(before[k], v) for k, v in gen.state_dict().items())


def test_generator_rejects_too_few_channels():
    with pytest.raises(GradvizError, match="need blocks >= 1 and width >= 2\\*\\*blocks, got blocks=3, width=4"):
        Generator(parse_design("nearest"), width=4, blocks=3)


def test_upsamplers_registry_keeps_the_names_and_documents_them():
    assert list(UPSAMPLERS) == ["deconv3", "deconv4", "deconv5", "nearest", "bilinear", "subpixel", "subpixel-icnr"]
    assert DESIGN_EXAMPLES[: len(UPSAMPLERS)] == list(UPSAMPLERS)
    assert all(UPSAMPLERS.describe(name) for name in UPSAMPLERS)
    with pytest.raises(GradvizError, match="unknown upsampling 'deconv9'; valid: deconv3, deconv4"):
        upsampling_block("deconv9", 4, 3)


def test_measuring_leaves_the_global_random_state_alone():
    state = torch.random.get_rng_state()
    a, _ = measure_generator("deconv3", samples=2, seed=5, blocks=1, width=4)
    assert torch.equal(state, torch.random.get_rng_state())
    torch.manual_seed(123)  # whatever the caller's state, the seed alone fixes the result
    b, _ = measure_generator("deconv3", samples=2, seed=5, blocks=1, width=4)
    assert a.to_dict() == b.to_dict()


def test_deconvolution_shows_a_grid_at_init_and_resize_convolution_does_not():
    """The ordering the upsampling study reports (docs/upsampling.md, section 2), at a small size:
    every transposed-convolution run has its period-2 lines far above their neighbourhood and a
    detected grid; every resize-convolution run (nearest, bilinear, ICNR sub-pixel) has them below
    (a hole, not a grid) and no detected grid; so every deconv run ranks above every resize run."""
    seeds = [0, 1]

    def runs(designs):
        return [measure_generator(d, samples=8, seed=s, blocks=2, width=16)[0].metrics for d in designs for s in seeds]

    deconv = runs(["deconv3", "deconv4"])
    resize = runs(["nearest", "bilinear", "subpixel-icnr"])
    assert all(m.grid_detected for m in deconv) and not any(m.grid_detected for m in resize)
    deconv_p2, resize_p2 = [m.octave_excess[0] for m in deconv], [m.octave_excess[0] for m in resize]
    assert max(resize_p2) < 1 < 5 < min(deconv_p2)  # "far above 1": at least 5x the neighbourhood


def test_cli_generators_writes_metrics_and_grid(tmp_path):
    out = tmp_path / "gen"
    argv = ["generators", "--upsample", "deconv3,nearest", "--samples", "4", "--blocks", "2", "--width", "8", "--out", str(out)]
    assert main(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == [".gradviz.json", "metrics.json", "report.html", "samples.png"]
    written = json.loads((out / "metrics.json").read_text())
    expected = [measure_generator(d, samples=4, seed=0, blocks=2, width=8)[0].to_dict() for d in ("deconv3", "nearest")]
    assert written == json.loads(json.dumps(expected))
    png = (out / "samples.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(png[16:20], "big") == round(1.6 * 6 * 90)  # 6 samples a row, 1.6 inches each, 90 dpi
    page = (out / "report.html").read_text()  # a verdict card per design, as the metrics say
    for row in written:
        status = "grid" if row["metrics"]["grid_detected"] else "clear"
        assert f'<div class="card {status}" data-layer="{row["design"]}">' in page
    assert '<img src="samples.png"' in page



@pytest.mark.parametrize("argv, says", [(["--upsample", "nearest,deconv9"], "deconv9"), (["--upsample", ","], "upsample"),
                                        (["--samples", "1"], "samples"), (["--blocks", "0"], "blocks")])
def test_cli_generators_bad_input_exits_2_without_output(tmp_path, capsys, argv, says):
    out = tmp_path / "gen"
    assert main(["generators", *argv, "--width", "8", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gradviz generators: error:") and "\n" not in err and says in err
    assert not out.exists()
