"""The optimisation: octaves, objective ascent, seeding, batching, the exact shift average, and bad input."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from gradviz.cli import main
from gradviz.core.gradients import input_gradient
from gradviz.core.objectives import OBJECTIVES, channel, deepdream
from gradviz.core.taps import Taps, hook_count
from gradviz.errors import GradvizError
from gradviz.io.outputs import is_gradviz_file
from gradviz.optvis.dream import DreamSettings, dream, octave_sizes
from gradviz.optvis.optimizers import OPTIMIZERS
from gradviz.optvis.parameterization import PARAMETERIZATIONS, FourierImage, make_parameterization, start_images
from gradviz.optvis.reference import shift_averaged_gradient
from gradviz.optvis.render import save_images, to_uint8
from gradviz.spectrum import checkerboard_metrics

LAYER = "features.10"  # vgg11: relu after conv4_1, stride 8


def _settings(**kw) -> DreamSettings:
    return DreamSettings(**{"steps": 4, "progress": False, **kw})


def test_octave_sizes_chain():
    assert octave_sizes(224, 4, 1.4) == [81, 114, 160, 224]  # round(224/1.4)=160, round(160/1.4)=114, ...
    assert octave_sizes(100, 1, 1.4) == [100]
    sizes = octave_sizes(300, 5, 1.3)
    assert all(round(big / 1.3) == small for small, big in zip(sizes, sizes[1:]))


def test_octave_smaller_than_stride_is_refused():
    with pytest.raises(GradvizError, match="total stride 32"):
        octave_sizes(64, 4, 1.4, min_size=32)


def test_short_optimisation_raises_objective_and_records_history(vgg11):
    result = dream(vgg11, channel(LAYER, 3), start_images("noise", 64), _settings(jitter=4, octaves=2))
    assert result.octave_sizes == [46, 64]
    assert [(r.octave, r.size) for r in result.history] == [(0, 46)] * 4 + [(1, 64)] * 4
    assert result.history[-1].objective > result.history[0].objective
    assert result.images.shape == (1, 3, 64, 64) and 0 <= result.images.min() and result.images.max() <= 1
    assert result.stride == 8
    assert all(0 < r.lattice_fraction < 1 and r.lattice_excess > 0 for r in result.history)  # a real, non-zero update
    assert hook_count(vgg11) == 0


def test_recorded_step_metrics_are_those_of_each_update(vgg11):
    """Step t's record holds the objective at x_t and the metrics of x_{t+1} - x_t, by value.

    A run of t steps is the first t steps of a longer run with the same seed, so x_t is the
    image of a t-step run."""
    start = start_images("noise", 32, batch=2, seed=1)
    objective = channel(LAYER, [3, 7])
    settings = dict(steps=3, progress=False)
    result = dream(vgg11, objective, start, DreamSettings(**settings))
    xs = [start] + [dream(vgg11, objective, start, DreamSettings(**{**settings, "steps": t})).images for t in (1, 2, 3)]
    assert torch.equal(xs[-1], result.images)
    for t, record in enumerate(result.history):
        with Taps(vgg11, objective.layers) as taps:
            values = objective(taps.forward(xs[t]))
        assert record.values == pytest.approx(values.tolist(), rel=1e-5)
        assert record.objective == pytest.approx(float(values.mean()), rel=1e-5)
        m = checkerboard_metrics(xs[t + 1] - xs[t], result.stride, n_null=0)
        assert record.lattice_fraction == pytest.approx(m.lattice_fraction, rel=1e-6)
        assert record.lattice_excess == pytest.approx(m.lattice_excess, rel=1e-6)
        assert record.tile_contrast == pytest.approx(m.tile_contrast, rel=1e-6)
        assert record.octave_fractions == pytest.approx(m.octave_fractions, rel=1e-6)
        assert record.octave_excess == pytest.approx(m.octave_excess, rel=1e-6)
    assert len(result.history[0].octave_excess) == 3  # stride 8: periods 2, 4, 8
    untracked = dream(vgg11, objective, start, DreamSettings(**settings, track_metrics=False))
    assert torch.equal(untracked.images, result.images)
    assert all(r.lattice_fraction is None and r.octave_excess == [] for r in untracked.history)


@pytest.mark.parametrize("optimizer,param", [("normalized", "pixel"), ("adam", "fourier")])
def test_same_seed_same_image(vgg11, optimizer, param):
    start = start_images("noise", 48)
    kw = dict(jitter=3, crop_jitter=2, scales=(0.9, 1.0, 1.1), angles=(-5, 0, 5), optimizer=optimizer, parameterization=param)
    a = dream(vgg11, deepdream(LAYER), start, _settings(seed=1, **kw)).images
    b = dream(vgg11, deepdream(LAYER), start, _settings(seed=1, **kw)).images
    c = dream(vgg11, deepdream(LAYER), start, _settings(seed=2, **kw)).images
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("optimizer", ["normalized", "adam"])
def test_batch_equals_one_by_one(vgg11, optimizer):
    start = start_images("noise", 48, batch=3, seed=4)
    channels = [0, 5, 9]
    settings = _settings(jitter=4, optimizer=optimizer)
    batch = dream(vgg11, channel(LAYER, channels), start, settings)
    for i, c in enumerate(channels):
        single = dream(vgg11, channel(LAYER, c), start[i : i + 1], settings)
        torch.testing.assert_close(batch.images[i : i + 1], single.images, atol=1e-4, rtol=0)
        assert batch.history[-1].values[i] == pytest.approx(single.history[-1].values[0], rel=1e-4)


def test_fourier_parameterisation_reproduces_its_start():
    x = start_images("noise", 32, batch=2, seed=3)
    torch.testing.assert_close(FourierImage.from_image(x)().detach(), x, atol=1e-5, rtol=0)
    torch.testing.assert_close(make_parameterization("fourier", x)().detach(), x, atol=1e-5, rtol=0)


def test_unknown_names_are_refused_with_the_valid_ones():
    with pytest.raises(GradvizError, match=r"unknown optimizer 'sgd'; valid: normalized, adam"):
        DreamSettings(optimizer="sgd").check()
    with pytest.raises(GradvizError, match=r"unknown parameterisation 'wavelet'; valid: pixel, fourier"):
        DreamSettings(parameterization="wavelet").check()


def test_shift_average_removes_a_grid_locked_pattern():
    """T9: a circular stride-2 box convolution gives a period-2 gradient; averaging over Z_2^2 flattens it."""
    conv = nn.Conv2d(1, 1, 3, stride=2, padding=1, padding_mode="circular", bias=False)
    nn.init.ones_(conv.weight)
    net = nn.Sequential(conv).requires_grad_(False)
    x = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    objective = channel("0", 0)
    plain = input_gradient(net, x, objective)
    # the gradient is the 2D overlap count 4:2:2:1 (Distill); the energy tile holds its squares, max/min 16
    assert checkerboard_metrics(plain, 2).tile_contrast == pytest.approx(16.0)
    averaged = shift_averaged_gradient(net, x, objective, period=2)
    torch.testing.assert_close(averaged, torch.full_like(averaged, float(plain.mean())), atol=1e-7, rtol=0)


def test_bad_image_suffix_is_refused(tmp_path):
    with pytest.raises(GradvizError, match="must end in"):
        save_images(torch.zeros(1, 3, 4, 4), tmp_path / "x.gif")
    assert not list(tmp_path.iterdir())


def test_cli_choices_and_help_come_from_the_registries(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "10000")  # no wrapping (argparse may break a line at a hyphen)
    assert main(["dream", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for registry, flag in ((OBJECTIVES, "--objective"), (OPTIMIZERS, "--optimizer"), (PARAMETERIZATIONS, "--param")):
        assert f"{flag} {{{','.join(registry)}}}" in text
        assert all(f"{name}: {registry.describe(name)}" in text for name in registry)


def _cli(tmp_path, *extra):
    out = tmp_path / "dream.png"
    args = ["dream", "--model", "vgg11", "--weights", "random", "--size", "64", "--steps", "2", "--quiet", "--out", str(out)]
    return main(args + list(extra)), out


def test_cli_writes_image_and_history(tmp_path, vgg11):
    rc, out = _cli(tmp_path, "--layer", LAYER, "--channel", "1,2", "--jitter", "2", "--device", "cpu")
    assert rc == 0 and is_gradviz_file(out) and is_gradviz_file(out.with_suffix(".json"))
    # the same optimisation in-process (the CLI's model is vgg11, random, seed 0): same pixels, same history
    direct = dream(vgg11, channel(LAYER, [1, 2]), start_images("noise", 64, batch=2, seed=0),
                   DreamSettings(steps=2, jitter=2, progress=False))
    with Image.open(out) as im:
        assert np.array_equal(np.asarray(im), to_uint8(direct.images))  # (64, 128, 3): two images side by side
    summary = json.loads(out.with_suffix(".json").read_text())
    assert (summary["model"], summary["weights"], summary["start"], summary["stride"]) == ("vgg11", "random (seed 0)", "noise", 8)
    assert summary["octave_sizes"] == [64] and summary["settings"]["jitter"] == 2
    np.testing.assert_allclose([r["values"] for r in summary["history"]], [r.values for r in direct.history], rtol=1e-6)
    assert summary["update_metrics"]["lattice_fraction"] == pytest.approx(direct.update_metrics().lattice_fraction, rel=1e-6)


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--layer", "features.99", "--channel", "1"], "unknown layer 'features.99'"),
        (["--layer", LAYER, "--channel", "999"], "channel 999 out of range"),
        (["--layer", LAYER, "--channel", "1", "--octaves", "4"], "smaller than the model's total stride 32"),
        (["--layer", LAYER, "--objective", "deepdream", "--image", "UNREADABLE"], "cannot read image"),
    ],
)
def test_cli_bad_arguments_fail_cleanly(tmp_path, capsys, extra, message):
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    extra = [str(bad) if e == "UNREADABLE" else e for e in extra]
    rc, out = _cli(tmp_path, *extra)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and message in err[0] and "valid" in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jpg"]


def test_a_silent_channel_is_reported_as_stalled(vgg11):
    # A channel whose ReLU output is zero everywhere has a zero gradient: nothing can move.
    net = nn.Sequential(nn.Conv2d(3, 2, 3, stride=2, padding=1), nn.ReLU())
    with torch.no_grad():
        net[0].weight.zero_()
        net[0].bias.copy_(torch.tensor([-1.0, 1.0]))
    net.requires_grad_(False)
    start = start_images("grey", 32, batch=1, seed=0)
    silent = dream(net, channel("1", 0), start, DreamSettings(steps=2, progress=False))
    assert silent.stalled and torch.equal(silent.images, silent.start)
    live = dream(vgg11, deepdream(LAYER), start_images("noise", 32, batch=1, seed=0), DreamSettings(steps=2, progress=False))
    assert not live.stalled
