"""Shift-averaged attribution: equal to the explicit average, exact removal of a grid, and the report's sources."""

import json

import pytest
import torch
from captum.attr import DeepLift, GuidedBackprop, InputXGradient, IntegratedGradients, NoiseTunnel, Saliency
from torch import nn

from gradviz.cli import main
from gradviz.core.gradients import attribution, parse_source, source_names
from gradviz.core.models import PixelModel, load_model
from gradviz.core.objectives import deepdream
from gradviz.core.shift_average import ShiftAverage, all_shifts, choose_shifts, roll, shift_average, unroll
from gradviz.errors import GradvizError
from gradviz.report import build_report
from gradviz.spectrum import checkerboard_metrics


def strided_net() -> nn.Module:
    """A float64 classifier with two stride-2 3x3 convolutions (uneven overlap: a period-4 grid)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 6, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(6, 6, 3, stride=2, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3)).double().eval()


def images(n=2, size=16):
    return torch.rand(n, 3, size, size, dtype=torch.float64, generator=torch.Generator().manual_seed(1))


def explicit(method, x, shifts, **kwargs):
    """The definition, one shift at a time: mean_d unroll(A(roll(x, d)), d)."""
    total = torch.zeros_like(x)
    for d in shifts:
        rolled = {k: (roll(v, d) if k == "baselines" and isinstance(v, torch.Tensor) else v) for k, v in kwargs.items()}
        total += unroll(method.attribute(roll(x, d).requires_grad_(True), **rolled).detach(), d)
    return total / len(shifts)


METHODS = {
    "saliency": (lambda net: Saliency(net), {"target": 1, "abs": False}),
    "integrated-gradients": (lambda net: IntegratedGradients(net), {"target": 1, "n_steps": 8}),
    "input-x-gradient": (lambda net: InputXGradient(net), {"target": torch.tensor([0, 2])}),
    "guided-backprop": (lambda net: GuidedBackprop(net), {"target": 2}),
    "deeplift": (lambda net: DeepLift(net), {"target": 0, "baselines": "image"}),
}


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize("per_pass", [1, 3])
def test_equals_the_explicit_average(name, per_pass):
    make, kwargs = METHODS[name]
    net, x = strided_net(), images()
    if kwargs.get("baselines") == "image":  # an image-shaped baseline is rolled with its copy
        kwargs = {**kwargs, "baselines": torch.rand(x.shape, dtype=x.dtype, generator=torch.Generator().manual_seed(2))}
    averaged = ShiftAverage(make(net), period=4, shifts_per_pass=per_pass).attribute(x.clone().requires_grad_(True), **kwargs)
    reference = explicit(make(net), x, all_shifts(4), **kwargs)
    if per_pass == 1:  # the same calls in the same order: the same numbers
        assert torch.equal(averaged, reference)
    else:  # batched copies: float64 rounding only
        torch.testing.assert_close(averaged, reference, rtol=1e-12, atol=1e-15)


def test_a_sample_of_shifts_is_seeded_and_distinct():
    a, b, c = choose_shifts(8, 10, seed=3), choose_shifts(8, 10, seed=3), choose_shifts(8, 10, seed=4)
    assert a == b and a != c and len(set(a)) == 10 and all(0 <= dy < 8 and 0 <= dx < 8 for dy, dx in a)
    net, x = strided_net(), images()
    wrapper = ShiftAverage(Saliency(net), period=8, n_shifts=10, seed=3)
    assert wrapper.shifts == a
    torch.testing.assert_close(wrapper.attribute(x.clone().requires_grad_(True), target=0),
                               explicit(Saliency(net), x, a, target=0), rtol=1e-12, atol=1e-15)


def test_a_grid_locked_map_loses_its_grid_exactly():
    # A(x) = x + a fixed period-4 pattern: the average keeps x and the pattern's mean only
    pattern = torch.rand(4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(5)).repeat(4, 4)
    x = images(1)
    out = shift_average(lambda batch, chunk: batch + pattern, x, all_shifts(4))
    torch.testing.assert_close(out, x + pattern.mean(), rtol=0, atol=1e-14)


def test_the_grid_of_a_random_resnet_is_removed():
    # issue 14's example: captum Saliency on a random ResNet18's logit 0, 4 images at 128 px, period 4
    model = load_model("resnet18", "random", seed=0, device="cpu")
    x = torch.rand(4, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    plain = Saliency(model).attribute(x.clone().requires_grad_(True), target=0, abs=False)
    averaged = ShiftAverage(Saliency(model), period=4).attribute(x.clone().requires_grad_(True), target=0, abs=False)
    before, after = checkerboard_metrics(plain, 4), checkerboard_metrics(averaged, 4)
    assert before.grid_detected
    assert not after.grid_detected and after.octave_excess[0] < 1.2 < 2 < before.octave_excess[0]


def test_refusals():
    net = strided_net()
    with pytest.raises(GradvizError, match="has no attribute\\(\\) method"):
        ShiftAverage(net, period=2)
    with pytest.raises(GradvizError, match="valid: 1 to 4 \\(the shifts of period 2\\)"):
        ShiftAverage(Saliency(net), period=2, n_shifts=5)
    with pytest.raises(GradvizError, match="return_convergence_delta"):
        ShiftAverage(IntegratedGradients(net), period=2).attribute(images(), target=0, return_convergence_delta=True)
    with pytest.raises(GradvizError, match="a map shaped like its input"):
        shift_average(lambda batch, chunk: batch.mean(1), images(), all_shifts(2))
    with pytest.raises(GradvizError, match="takes a \\(B, C, H, W\\) batch"):
        shift_average(lambda batch, chunk: batch, torch.rand(3, 8, 8), all_shifts(2))


def test_noise_tunnel_can_be_wrapped():
    net, x = strided_net(), images()
    torch.manual_seed(0)
    out = ShiftAverage(NoiseTunnel(Saliency(net)), period=2).attribute(
        x.clone().requires_grad_(True), target=0, nt_type="smoothgrad", nt_samples=2, stdevs=0.1)
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_sources_compose_with_shift_averaging():
    assert {"shift-average", "saliency+shift-average", "smoothgrad+shift-average"} <= set(source_names())
    assert parse_source("integrated-gradients+shift-average") == ("integrated-gradients", True)
    for bad in ("gradient+shift-average", "saliency+blur", "shift-average+saliency", "nope"):
        with pytest.raises(GradvizError, match="unknown gradient source"):
            parse_source(bad)
    model = PixelModel(strided_net().float()).eval().requires_grad_(False)
    x = images().float()
    objective = deepdream("2")
    a = attribution(model, x, objective, "shift-average", period=4)
    b = attribution(model, x, objective, "saliency+shift-average", period=4)
    c = explicit(Saliency(lambda z: objective.bind(model)(_acts(model, z, "2"))), x, all_shifts(4), abs=False)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-9)
    torch.testing.assert_close(a, c, rtol=1e-5, atol=1e-9)


def _acts(model, x, layer):
    from gradviz.core.taps import Taps

    with Taps(model, [layer], stop=True) as taps:
        return taps.forward(x)


def test_report_with_shift_averaging_has_no_grid_where_the_plain_one_has(tmp_path):
    model = load_model("resnet18", "random", seed=0, device="cpu")
    x = torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    plain = build_report(model, x, layers=["layer1"], progress=False)
    averaged = build_report(model, x, layers=["layer1"], source="shift-average", progress=False)
    assert plain.layers[0].metrics.grid_detected and not averaged.layers[0].metrics.grid_detected
    assert any("averaged over all S x S circular shifts" in note for note in averaged.notes)
    with pytest.raises(GradvizError, match="applies to a shift-averaged source"):
        build_report(model, x, layers=["layer1"], n_shifts=4, progress=False)
    out = tmp_path / "r"
    assert main(["report", "--model", "resnet18", "--weights", "random", "--size", "64", "--layers", "layer1",
                 "--source", "saliency+shift-average", "--shifts", "8", "--noise-images", "2", "--quiet",
                 "--out", str(out)]) == 0
    data = json.loads((out / "report.json").read_text())
    assert data["source"] == "saliency+shift-average" and "at most 8 (seeded)" in " ".join(data["notes"])
