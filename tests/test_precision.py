"""The arithmetic of the passes: the channels-last layout, bf16 autocast, TF32 flags, and the weights check."""

import json

import pytest
import torch
from torch import nn

from gradviz.cli import main
from gradviz.core.gradients import input_gradients, preferred_memory_format
from gradviz.core.models import check_finite_parameters, load_model
from gradviz.core.objectives import deepdream, layer_mean
from gradviz.core.precision import PRECISIONS, compute_precision
from gradviz.errors import GradvizError
from gradviz.io.images import builtin_images
from gradviz.report import build_report


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1),
                         nn.ReLU()).double().requires_grad_(False)


def test_channels_last_gives_the_same_gradients_in_float64():
    net = small_net()
    x = torch.rand(3, 3, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    objectives = {"a": deepdream("1"), "b": layer_mean("3")}
    plain = input_gradients(net, x, objectives)
    last = input_gradients(net, x, objectives, torch.channels_last)
    for key in objectives:
        assert last[key].is_contiguous()
        torch.testing.assert_close(last[key], plain[key], rtol=1e-12, atol=1e-15)


def test_preferred_layout_follows_the_model():
    assert preferred_memory_format(small_net()) is torch.channels_last
    assert preferred_memory_format(nn.Sequential(nn.Flatten(), nn.Linear(3, 2))) is torch.contiguous_format


def test_bf16_autocast_runs_the_passes_in_bfloat16_and_returns_float32():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()).requires_grad_(False)
    seen = []
    net[0].register_forward_hook(lambda m, args, out: seen.append(out.dtype))
    x = torch.rand(2, 3, 8, 8)
    with compute_precision("bf16", torch.device("cpu")):
        (g,) = input_gradients(net, x, {"g": layer_mean("1")}).values()
    assert seen == [torch.bfloat16] and g.dtype == torch.float32
    exact = input_gradients(net, x, {"g": layer_mean("1")})["g"]
    assert (g - exact).norm() / exact.norm() < 0.02  # bfloat16 keeps 8 bits of mantissa


def test_precision_restores_the_tf32_flags():
    conv, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    before = (conv.allow_tf32, matmul.allow_tf32)
    with compute_precision("float32", torch.device("cuda")):  # flags only: no CUDA call is made
        assert (conv.allow_tf32, matmul.allow_tf32) == (False, False)
    with pytest.raises(RuntimeError), compute_precision("tf32", torch.device("cuda")):
        assert (conv.allow_tf32, matmul.allow_tf32) == (True, True)
        raise RuntimeError("an error inside the block")
    assert (conv.allow_tf32, matmul.allow_tf32) == before


def test_report_records_its_precision():
    model = load_model("vgg11", "random", seed=0, device="cpu")
    images = builtin_images(32, seed=0, noise=0).images[:2]
    report = build_report(model, images, layers=["features.2"], progress=False, precision="bf16")
    assert report.precision == "bf16" and report.to_dict()["precision"] == "bf16"
    with pytest.raises(GradvizError, match="precision tf32 needs a CUDA device, not cpu"):
        build_report(model, images, layers=["features.2"], progress=False, precision="tf32")
    with pytest.raises(GradvizError, match="unknown precision 'fp8'; valid: " + ", ".join(PRECISIONS)):
        build_report(model, images, layers=["features.2"], progress=False, precision="fp8")


def test_cli_precision(tmp_path, capsys):
    common = ["report", "--model", "vgg11", "--weights", "random", "--size", "32", "--layers", "features.2", "--quiet"]
    assert main(common + ["--precision", "tf32", "--out", str(tmp_path / "a")]) == 2
    assert "precision tf32 needs a CUDA device" in capsys.readouterr().err and not (tmp_path / "a").exists()
    assert main(common + ["--precision", "bf16", "--out", str(tmp_path / "b")]) == 0
    assert json.loads((tmp_path / "b" / "report.json").read_text())["precision"] == "bf16"
    assert '<th scope="row">precision</th><td>bf16</td>' in (tmp_path / "b" / "report.html").read_text()


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64])
def test_finite_check_finds_one_bad_weight(bad, dtype):
    net = nn.Linear(4, 3).to(dtype)
    check_finite_parameters(net)
    net.weight.data[2, 1] = bad
    with pytest.raises(GradvizError, match="weight holds NaN or infinite values"):
        check_finite_parameters(net)
