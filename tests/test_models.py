"""Model specs, checkpoints, normalisation and eval mode (random init, tiny images, no download)."""

import importlib.util
import urllib.error

import pytest
import torch
import torchvision
from torch import nn

from gradviz.core import architectures
from gradviz.core.checkpoints import read_checkpoint
from gradviz.core.models import MODEL_SPECS_HELP, PixelModel, as_pixel_model, build_architecture, eval_mode, load_model
from gradviz.core.specs import IMAGENET_MEAN, IMAGENET_STD, describe_normalize, parse_normalize, parse_spec
from gradviz.errors import GradvizError

SMALL = "torchvision:squeezenet1_1"  # the fastest torchvision model to build; has `features`

FACTORY_FILE = """\
import torch
from torch import nn
from helper_layers import Block  # a neighbour module: the file's folder is importable

def build(num_classes=5):
    return nn.Sequential(Block(3, 8), nn.ReLU(inplace=True), Block(8, 8), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, num_classes))

def no_args():
    return nn.Sequential(nn.Conv2d(3, 4, 3, stride=2), nn.BatchNorm2d(4))

def not_a_module():
    return {"conv": 1}

def broken():
    return 1 / 0

def with_nan():
    net = nn.Conv2d(3, 2, 3)
    with torch.no_grad():
        net.weight[0, 0, 0, 0] = float("nan")
    return net

helper_value = 3
"""
HELPER_FILE = """\
from torch import nn

class Block(nn.Sequential):
    def __init__(self, cin, cout):
        super().__init__(nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.BatchNorm2d(cout))
"""


@pytest.fixture
def model_file(tmp_path):
    (tmp_path / "helper_layers.py").write_text(HELPER_FILE)
    path = tmp_path / "mynet.py"
    path.write_text(FACTORY_FILE)
    return path


def frozen_eval_out_of_place(model):
    assert isinstance(model, PixelModel) and not model.training and not any(m.training for m in model.modules())
    assert not any(p.requires_grad for p in model.parameters())
    assert not any(getattr(m, "inplace", False) is True for m in model.modules())


# ------------------------------------------------------------------ specs

def test_short_names_keep_their_meaning():
    model = load_model("resnet18", "random", seed=3, device="cpu")
    assert (model.arch, model.weights, model.normalize, model.classifier_trained) == \
        ("resnet18", "random (seed 3)", "imagenet", False)
    assert torch.equal(model.net.conv1.weight, build_architecture("resnet18", 3).conv1.weight)
    frozen_eval_out_of_place(model)


def test_torchvision_spec_matches_the_short_name_and_leaves_the_global_generator_alone():
    state = torch.random.get_rng_state()
    a = load_model("torchvision:resnet18", "random", seed=2, device="cpu")
    assert torch.equal(torch.random.get_rng_state(), state)
    b = load_model("resnet18", "random", seed=2, device="cpu")
    assert a.arch == "torchvision:resnet18" and a.weights == b.weights == "random (seed 2)"
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_any_torchvision_classifier_with_num_classes():
    model = load_model("torchvision:mobilenet_v3_small", "random", device="cpu", num_classes=7)
    frozen_eval_out_of_place(model)  # Hardswish(inplace=True) included
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 7)
    assert model.normalize == "imagenet"


def test_torchvision_normalisation_comes_from_the_weights_metadata(monkeypatch):
    monkeypatch.setattr(torchvision.models, "get_model", lambda name, weights=None, **kw: nn.Conv2d(3, 2, 1))
    model = load_model("torchvision:efficientnet_v2_l", "random", device="cpu")  # its weights use mean 0.5, std 0.5
    assert model.normalize == "mean=0.5 std=0.5"
    assert load_model("torchvision:efficientnet_v2_l", device="cpu", normalize="imagenet").normalize == "imagenet"


def test_imagenet_download_failure_is_one_line(monkeypatch):
    def offline(name, weights=None, **kw):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.models, "get_model", offline)
    with pytest.raises(GradvizError, match="could not download torchvision's ImageNet weights for mobilenet_v3_small"):
        load_model("torchvision:mobilenet_v3_small", "imagenet", device="cpu")
    with pytest.raises(GradvizError, match="imagenet weights have 1000 classes, not num_classes=10"):
        load_model("torchvision:mobilenet_v3_small", "imagenet", device="cpu", num_classes=10)


@pytest.mark.parametrize("spec, message", [
    ("torchvision:mobilenet_v9", r"unknown torchvision model 'mobilenet_v9'; valid: mobilenet_v2, .*\(80 in all\)"),
    ("mobilenet_v3_small", r"unknown model 'mobilenet_v3_small'; valid: vgg11, .*; did you mean torchvision:mobilenet_v3_small\?$"),
    ("vgg12", r"unknown model 'vgg12'; valid: vgg11, .*torchvision:NAME, timm:NAME, path/to/file.py:factory"),
    ("torchvision:", r"names no model; valid: torchvision:NAME"),
    ("mynet.py", r"names a file but no factory; valid: mynet.py:FUNCTION"),
    ("mynet.py:1x", r"'1x' is not a function name"),
])
def test_bad_specs_are_one_line(spec, message):
    with pytest.raises(GradvizError, match=message) as info:
        load_model(spec, device="cpu")
    assert "\n" not in str(info.value)


def test_spec_help_and_parsing():
    assert "torchvision:NAME" in MODEL_SPECS_HELP and "\n" not in MODEL_SPECS_HELP
    assert parse_spec(r"C:\nets\m.py:build").path.name.endswith("m.py")
    assert parse_spec("timm:resnet18.a1_in1k").name == "resnet18.a1_in1k"


# ------------------------------------------------------------------ file models

def test_file_model(model_file):
    spec = f"{model_file}:build"
    model = load_model(spec, "random", seed=1, device="cpu")
    frozen_eval_out_of_place(model)
    assert model.arch == spec and model.weights == "build() in mynet.py (seed 1)" and model.normalize == "imagenet"
    assert model(torch.rand(1, 3, 16, 16)).shape == (1, 5)
    same, other = load_model(spec, seed=1, device="cpu"), load_model(spec, seed=2, device="cpu")
    assert torch.equal(model.net[0][0].weight, same.net[0][0].weight)
    assert not torch.equal(model.net[0][0].weight, other.net[0][0].weight)
    assert load_model(spec, num_classes=3, device="cpu")(torch.rand(1, 3, 16, 16)).shape == (1, 3)


@pytest.mark.parametrize("factory, weights, extra, message", [
    ("nothere", "random", {}, r"has no function 'nothere'; valid: build, no_args, not_a_module, broken, with_nan"),
    ("helper_value", "random", {}, r"has a non-callable 'helper_value'"),
    ("not_a_module", "random", {}, r"not_a_module\(\) in .*mynet.py returned dict, not a torch.nn.Module"),
    ("broken", "random", {}, r"broken\(\) in .*mynet.py raised ZeroDivisionError: division by zero"),
    ("with_nan", "random", {}, r"weight net.weight holds NaN"),
    ("no_args", "imagenet", {}, r"has no imagenet weights"),
    ("no_args", "random", {"num_classes": 3}, r"no_args\(\) in mynet.py takes no num_classes argument"),
])
def test_file_model_errors(model_file, factory, weights, extra, message):
    with pytest.raises(GradvizError, match=message) as info:
        load_model(f"{model_file}:{factory}", weights, device="cpu", **extra)
    assert "\n" not in str(info.value)


def test_file_model_import_errors(tmp_path):
    with pytest.raises(GradvizError, match="model file .*missing.py not found"):
        load_model(f"{tmp_path}/missing.py:build")
    (tmp_path / "bad.py").write_text("import torch\ndef build(:\n")
    with pytest.raises(GradvizError, match=r"importing model file .*bad.py failed \(SyntaxError"):
        load_model(f"{tmp_path}/bad.py:build")
    (tmp_path / "raises.py").write_text("raise RuntimeError('no GPU here\\nsecond line')\n")
    with pytest.raises(GradvizError, match=r"failed \(RuntimeError: no GPU here\)") as info:
        load_model(f"{tmp_path}/raises.py:build")
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------ checkpoints

def _same_weights(model, state):
    own = model.net.state_dict()
    return all(torch.equal(own[k], v.float() if v.is_floating_point() else v) for k, v in state.items())


@pytest.fixture(scope="module")
def small_state():
    return architectures.build_torchvision(parse_spec(SMALL), "random", seed=9).net.state_dict()


@pytest.mark.parametrize("wrap", ["plain", "state_dict", "model", "model_state_dict", "nested", "module.",
                                  "_orig_mod.", "lightning"])
def test_checkpoint_layouts(tmp_path, wrap, small_state):
    state = small_state
    saved = {
        "plain": state,
        "state_dict": {"epoch": 3, "state_dict": state},
        "model": {"model": state, "optimizer": {"lr": 0.1}},
        "model_state_dict": {"model_state_dict": state, "epoch": 1},
        "nested": {"model": {"state_dict": state}, "epoch": 1},
        "module.": {"module." + k: v for k, v in state.items()},
        "_orig_mod.": {"state_dict": {"module._orig_mod." + k: v for k, v in state.items()}},
        "lightning": {"state_dict": {"model." + k: v for k, v in state.items()}},
    }[wrap]
    torch.save(saved, tmp_path / "w.pth")
    model = load_model(SMALL, str(tmp_path / "w.pth"), device="cpu")
    assert model.classifier_trained and model.weights == str(tmp_path / "w.pth")
    assert _same_weights(model, state)
    frozen_eval_out_of_place(model)


def test_fine_tuned_checkpoint_needs_num_classes(tmp_path):
    state = torchvision.models.get_model("mobilenet_v3_small", num_classes=10).state_dict()
    torch.save({"state_dict": state}, tmp_path / "ft.pth")
    with pytest.raises(GradvizError, match=r"does not fit torchvision:mobilenet_v3_small: shape mismatch at "
                                           r"\['classifier.3.weight', 'classifier.3.bias'\] \(file \[10, 1024\], "
                                           r"model \[1000, 1024\]\); a classifier for 10 classes\? pass num_classes=10"):
        load_model("torchvision:mobilenet_v3_small", str(tmp_path / "ft.pth"), device="cpu")
    model = load_model("torchvision:mobilenet_v3_small", str(tmp_path / "ft.pth"), device="cpu", num_classes=10)
    assert _same_weights(model, state) and model(torch.rand(1, 3, 32, 32)).shape == (1, 10)


def test_features_only_checkpoints(tmp_path):
    vgg11_features = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["A"])  # no 120M-weight classifier
    for spec, features in [("vgg11", vgg11_features),
                           (SMALL, torchvision.models.get_model("squeezenet1_1").features)]:
        torch.save(features.state_dict(), tmp_path / "f.pth")
        model = load_model(spec, str(tmp_path / "f.pth"), seed=4, device="cpu")
        assert not model.classifier_trained
        assert model.weights == f"{tmp_path / 'f.pth'} (features only; classifier random, seed 4)"
        assert torch.equal(model.net.features[0].weight, features[0].weight)


def test_file_model_checkpoint(tmp_path, model_file):
    net = load_model(f"{model_file}:build", seed=8, device="cpu").net
    torch.save({"model": net.state_dict()}, tmp_path / "mine.pt")
    model = load_model(f"{model_file}:build", str(tmp_path / "mine.pt"), seed=0, device="cpu")
    assert _same_weights(model, net.state_dict()) and model.weights == str(tmp_path / "mine.pt")


@pytest.mark.parametrize("content, message", [
    ({"epoch": 3, "optimizer": {"lr": 0.1}}, r"does not hold a state dict of tensors: found a dict with keys epoch, "
                                             r"optimizer; valid: a state dict of tensors"),
    ([torch.zeros(2)], r"found a list of 1 items"),
    (torch.zeros(2, 3), r"found a single tensor of shape \[2, 3\]"),
    ({}, r"found an empty dict"),
    (nn.Linear(2, 2), r"holds Python objects besides tensors, which weights_only=True refuses"),
    ({"conv.weight": torch.zeros(1)}, r"does not fit resnet18: 122 keys missing \(e.g. \['conv1.weight', 'bn1.weight'\]\); 1 unexpected keys \(e.g. "
                                      r"\['conv.weight'\]\); valid: a full resnet18 state dict"),
])
def test_checkpoint_errors_say_what_was_found(tmp_path, content, message):
    torch.save(content, tmp_path / "c.pth")
    with pytest.raises(GradvizError, match=message) as info:
        load_model("resnet18", str(tmp_path / "c.pth"), device="cpu")
    assert "\n" not in str(info.value)


def test_checkpoint_files_need_to_exist(tmp_path):
    with pytest.raises(GradvizError, match="weights file not found"):
        load_model(SMALL, str(tmp_path / "none.pth"), device="cpu")
    with pytest.raises(GradvizError, match="unknown weights 'pretrained'"):
        load_model(SMALL, "pretrained", device="cpu")
    with pytest.raises(GradvizError, match="num_classes must be a whole number >= 1"):
        load_model(SMALL, device="cpu", num_classes=0)
    torch.save({"fc.weight": torch.ones(2, 2, dtype=torch.float16)}, tmp_path / "h.pth")
    assert read_checkpoint(tmp_path / "h.pth")["fc.weight"].dtype == torch.float32


# ------------------------------------------------------------------ normalisation

@pytest.mark.parametrize("value, expected", [
    (None, (IMAGENET_MEAN, IMAGENET_STD)),
    ("imagenet", (IMAGENET_MEAN, IMAGENET_STD)),
    (" ImageNet ", (IMAGENET_MEAN, IMAGENET_STD)),
    ("none", ((0.0,) * 3, (1.0,) * 3)),
    ("0.5,0.5", ((0.5,) * 3, (0.5,) * 3)),
    ("0.1, 0.2, 0.3, 0.4, 0.5, 0.6", ((0.1, 0.2, 0.3), (0.4, 0.5, 0.6))),
    (((0.1, 0.2, 0.3), 0.5), ((0.1, 0.2, 0.3), (0.5,) * 3)),
    ([[0.5], [0.25, 0.5, 1.0]], ((0.5,) * 3, (0.25, 0.5, 1.0))),
])
def test_parse_normalize(value, expected):
    assert parse_normalize(value) == expected


@pytest.mark.parametrize("value, message", [
    ("imagenett", r"unknown normalize 'imagenett'; valid: imagenet, none, MEAN,STD"),
    ("0.5,0.5,0.5", r"has 3 numbers"),
    ("0.5,0", r"has a value <= 0"),
    ("0.5,nan", r"not finite"),
    (((0.1, 0.2), 0.5), r"the mean has 2 values; valid: 1 or 3"),
    ((("a", "b", "c"), 0.5), r"the mean is not a list of numbers"),
    (0.5, r"normalize must be text or a \(mean, std\) pair, got float"),
])
def test_parse_normalize_errors(value, message):
    with pytest.raises(GradvizError, match=message):
        parse_normalize(value)


@pytest.mark.parametrize("normalize", ["0.3,0.7", "0.1,0.2,0.3,0.4,0.5,0.6", "none", "imagenet"])
def test_normalisation_is_applied_exactly(normalize):
    model = load_model(SMALL, "random", device="cpu", normalize=normalize)
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in parse_normalize(normalize))
    x = torch.rand(2, 3, 40, 40)
    assert torch.equal(model(x), model.net((x - mean) / std))
    assert model.normalize == describe_normalize(*parse_normalize(normalize))
    assert f"normalize='{model.normalize}'" in repr(model).splitlines()[1]


def test_as_pixel_model_changes_nothing_in_the_module():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(inplace=True)).train()
    net[0].weight.requires_grad_(False)
    model = as_pixel_model(net)
    assert model.net is net and model.normalize == "imagenet" and model.arch == "Sequential"
    assert model.training and net.training and net[2].inplace
    assert not net[0].weight.requires_grad and net[0].bias.requires_grad
    assert as_pixel_model(model) is model
    rewrapped = as_pixel_model(model, "none")
    assert rewrapped.net is net and rewrapped.normalize == "none"
    net.eval()
    assert not as_pixel_model(net).training
    with pytest.raises(GradvizError, match="expected a torch.nn.Module, got str"):
        as_pixel_model("resnet18")


# ------------------------------------------------------------------ eval mode

def test_eval_mode_restores_every_module_also_on_error():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Dropout()).train()
    net[1].eval()  # a frozen BatchNorm stays frozen
    with pytest.raises(RuntimeError, match="boom"):
        with eval_mode(net) as was_training:
            assert was_training and not any(m.training for m in net.modules())
            raise RuntimeError("boom")
    assert [m.training for m in net.modules()] == [True, True, False, True]
    net.eval()
    with eval_mode(net) as was_training:
        assert not was_training
    assert not net.training


def test_eval_mode_makes_batchnorm_per_image():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).train()
    x = torch.rand(4, 3, 8, 8)
    with eval_mode(net):
        alone, together = net(x[:1]), net(x)[:1]
    assert torch.allclose(alone, together, atol=1e-6)


# ------------------------------------------------------------------ timm

def test_timm_missing_says_how_to_get_it(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "timm" else real(name, *a))
    with pytest.raises(GradvizError, match="needs timm, which is not installed; valid: pip install timm"):
        load_model("timm:resnet18", device="cpu")


def test_timm_models():
    timm = pytest.importorskip("timm")
    model = load_model("timm:test_resnet", "random", seed=0, device="cpu", num_classes=4)
    frozen_eval_out_of_place(model)
    cfg = timm.models.get_pretrained_cfg("test_resnet")
    assert model.normalize == describe_normalize(cfg.mean, cfg.std)
    assert model.weights == "random (seed 0)" and model(torch.rand(1, 3, 32, 32)).shape == (1, 4)
    again = load_model("timm:test_resnet", "random", seed=0, device="cpu", num_classes=4)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    with pytest.raises(GradvizError, match=r"unknown timm model 'test_resnett'; valid: test_resnet.*timm.list_models"):
        load_model("timm:test_resnett", device="cpu")


def test_timm_pretrained_failure_is_one_line(monkeypatch):
    timm = pytest.importorskip("timm")

    def offline(name, pretrained=False, **kw):
        raise OSError("no network\nmore")

    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(GradvizError, match="could not get timm's pretrained weights for test_resnet") as info:
        load_model("timm:test_resnet", "imagenet", device="cpu")
    assert "\n" not in str(info.value)


def test_timm_checkpoint(tmp_path):
    pytest.importorskip("timm")
    source = load_model("timm:test_resnet", seed=3, device="cpu", num_classes=6).net
    torch.save({"state_dict": source.state_dict(), "epoch": 1}, tmp_path / "t.pth")
    model = load_model("timm:test_resnet", str(tmp_path / "t.pth"), device="cpu", num_classes=6)
    assert _same_weights(model, source.state_dict()) and model.classifier_trained


def test_built_architectures_carry_what_they_are():
    built = architectures.build_torchvision(parse_spec(SMALL), "random", seed=0)
    assert built.weights == "random (seed 0)" and not built.trained
    assert built.normalize == (IMAGENET_MEAN, IMAGENET_STD)
