"""Models, taps, objectives and gradients on random-init networks and tiny images."""

import pytest
import torch
from captum.attr import IntegratedGradients
from torch import nn

from gradviz.core.gradients import IG_STEPS, ObjectiveModule, attribution, input_gradient, input_gradients
from gradviz.core.layermap import layer_map
from gradviz.core.models import MODEL_NAMES, PixelModel, build_architecture, load_model
from gradviz.core.objectives import channel, class_logit, deepdream, make_objective, neuron
from gradviz.core.taps import Taps, hook_count
from gradviz.errors import GradvizError


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_architecture_runs_at_random_init(name):
    model = load_model(name, "random", seed=0, device="cpu")
    lmap = layer_map(model, 64)
    assert lmap.total_stride == 32
    stages = lmap.stages
    assert [s.stride for s in stages] == [2, 4, 8, 16, 32]
    # at 32 px the stride-32 output is 1x1: its period is the whole image, so it is no stage
    assert [s.name for s in layer_map(model, 32).stages] == [s.name for s in stages[:-1]]
    objectives = {s.name: deepdream(s.name) for s in stages}
    objectives["logits"] = class_logit("top")
    x = torch.rand(2, 3, 32, 32)
    grads = input_gradients(model, x, objectives)
    for g in grads.values():
        assert g.shape == x.shape and torch.isfinite(g).all() and g.abs().sum() > 0
    assert hook_count(model) == 0
    assert not any(p.requires_grad for p in model.parameters())


def test_random_weights_follow_the_seed():
    a, b, c = (build_architecture("resnet18", s) for s in (3, 3, 4))
    assert torch.equal(a.conv1.weight, b.conv1.weight)
    assert not torch.equal(a.conv1.weight, c.conv1.weight)


def test_taps_see_pre_relu_values_with_inplace_relu():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(4, 2, 3))
    x = torch.randn(1, 3, 8, 8)
    expected = net[0](x)
    with Taps(net, ["0", "1"]) as taps:
        acts = taps.forward(x)
    assert (acts["0"] < 0).any()  # the in-place ReLU did not overwrite the conv output
    assert torch.equal(acts["0"], expected)
    assert torch.equal(acts["1"], expected.clamp(min=0))
    assert net[1].inplace is True  # restored
    assert hook_count(net) == 0


def test_hooks_removed_on_error(vgg11):
    with pytest.raises(RuntimeError, match="boom"):
        with Taps(vgg11, ["features.3"]) as taps:
            taps.forward(torch.rand(1, 3, 32, 32))
            raise RuntimeError("boom")
    assert hook_count(vgg11) == 0
    with pytest.raises(GradvizError, match="out of range"):
        input_gradient(vgg11, torch.rand(1, 3, 32, 32), channel("features.3", 999))
    assert hook_count(vgg11) == 0


def test_forward_stops_at_the_deepest_tapped_layer(vgg11):
    calls = []
    handle = vgg11.net.features[10].register_forward_hook(lambda *a: calls.append(1))
    try:
        input_gradient(vgg11, torch.rand(1, 3, 32, 32), deepdream("features.3"))
        assert calls == []
        input_gradient(vgg11, torch.rand(1, 3, 32, 32), deepdream("features.12"))
        assert calls == [1]
    finally:
        handle.remove()


def test_gradient_matches_plain_autograd_and_batch_equals_one_by_one(resnet18):
    x = torch.rand(3, 3, 32, 32)
    obj = channel("layer2", [1, 5, 9])
    g = input_gradient(resnet18, x, obj)
    for i, c in enumerate([1, 5, 9]):
        xi = x[i : i + 1].clone().requires_grad_(True)
        with Taps(resnet18, ["layer2"]) as taps:
            a = taps.forward(xi)["layer2"]
        (gi,) = torch.autograd.grad(a[0, c].mean(), xi)
        assert torch.allclose(g[i], gi[0], atol=1e-6, rtol=1e-4)


def test_shared_forward_equals_separate_passes(resnet18):
    x = torch.rand(2, 3, 32, 32)
    objs = {"a": deepdream("layer1"), "b": class_logit(3), "c": neuron("layer3", 2) - 0.5 * deepdream("relu")}
    shared = input_gradients(resnet18, x, objs)
    for key, obj in objs.items():
        assert torch.allclose(shared[key], input_gradient(resnet18, x, obj), atol=1e-7)


def test_captum_sources(resnet18):
    x = torch.rand(2, 3, 32, 32)
    obj = channel("layer2", [0, 4])
    g = input_gradient(resnet18, x, obj)
    assert torch.allclose(attribution(resnet18, x, obj, "saliency"), g, atol=1e-7)
    sg1 = attribution(resnet18, x, obj, "smoothgrad", seed=1)
    assert torch.equal(sg1, attribution(resnet18, x, obj, "smoothgrad", seed=1))
    assert not torch.allclose(sg1, g)
    with pytest.raises(GradvizError, match="valid: gradient, saliency"):
        attribution(resnet18, x, obj, "gradcam")


def test_integrated_gradients_are_captums_and_complete(resnet18):
    x = torch.rand(2, 3, 32, 32)
    obj = deepdream("layer1")
    ig = attribution(resnet18, x, obj, "integrated-gradients")
    forward = ObjectiveModule(resnet18, obj)
    with torch.enable_grad():
        ref, delta = IntegratedGradients(forward).attribute(x.clone().requires_grad_(True), baselines=0.0,
                                                            n_steps=IG_STEPS, return_convergence_delta=True)
    assert torch.equal(ig, ref.detach())
    with torch.no_grad():
        gap = forward(x) - forward(torch.zeros_like(x))
    # completeness: the attributions add up to f(x) - f(0), up to the Riemann sum's error, which is
    # 1-2% of the gap here at IG_STEPS = 32 steps (and 6-16% at 4 steps, where this would fail)
    assert (ig.flatten(1).sum(1) - gap).abs().max() < 0.05 * gap.abs().min()


def test_layer_table_strides(resnet18):
    rows = layer_map(resnet18, 64)
    assert rows["conv1"].stride == 2 and rows["maxpool"].stride == 4 and rows["layer4"].stride == 32
    assert rows["layer4"].shape == (512, 2, 2)
    assert rows["fc"].stride is None


def test_objective_arithmetic(vgg11):
    acts = {"features.3": torch.arange(2 * 4 * 2 * 2, dtype=torch.float32).view(2, 4, 2, 2)}
    a, b = channel("features.3", 1), deepdream("features.3")
    combo = 2 * a - b / 4 + 1
    expected = 2 * a(acts) - b(acts) / 4 + 1
    assert torch.equal(combo(acts), expected)
    assert combo.layers == ("features.3",)
    assert torch.equal(channel("features.3", [0, 3])(acts), torch.stack([acts["features.3"][0, 0].mean(), acts["features.3"][1, 3].mean()]))


def test_bad_names_fail_with_valid_list(vgg11):
    with pytest.raises(GradvizError, match="unknown layer 'features.99'; valid: features"):
        input_gradient(vgg11, torch.rand(1, 3, 32, 32), deepdream("features.99"))
    with pytest.raises(GradvizError, match="unknown model 'vgg12'; valid: vgg11"):
        load_model("vgg12")
    with pytest.raises(GradvizError, match="unknown objective 'dream'"):
        make_objective("dream", "features.3")
    with pytest.raises(GradvizError, match="unknown device"):
        load_model("vgg11", device="tpu")


def test_weight_files(tmp_path):
    features_only = build_architecture("vgg11", seed=5).features.state_dict()
    torch.save(features_only, tmp_path / "features.pth")
    model = load_model("vgg11", str(tmp_path / "features.pth"), device="cpu")
    assert not model.classifier_trained
    assert torch.equal(model.net.features[0].weight, features_only["0.weight"])
    full = build_architecture("vgg11", seed=6).state_dict()
    torch.save({k: v.half() for k, v in full.items()}, tmp_path / "full_fp16.pth")
    model = load_model("vgg11", str(tmp_path / "full_fp16.pth"), device="cpu")
    assert model.classifier_trained and model.net.classifier[0].weight.dtype == torch.float32
    (tmp_path / "corrupt.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(GradvizError, match="corrupt"):
        load_model("vgg11", str(tmp_path / "corrupt.pth"))
    with pytest.raises(GradvizError, match="not found"):
        load_model("vgg11", str(tmp_path / "missing.pth"))
    with pytest.raises(GradvizError, match="does not fit resnet18"):
        load_model("resnet18", str(tmp_path / "features.pth"))


def test_pixel_model_normalises_inside():
    net = nn.Identity()
    model = PixelModel(net)
    x = torch.full((1, 3, 2, 2), 0.485)
    assert torch.allclose(model(x)[0, 0], torch.zeros(2, 2))
