"""The fix-it path: a model with its downsampling replaced, saved, rebuilt and measured."""

import json

import pytest
import torch

from gradviz.cli import main
from gradviz.core.models import load_model
from gradviz.downsampling.fix import FIX_KEY, fixed_recipe, load_fixed, save_fixed
from gradviz.downsampling.variants import build_variant
from gradviz.errors import GradvizError
from gradviz.io.outputs import is_gradviz_file


@pytest.mark.parametrize("arch, variant", [("vgg11", "blurpool3"), ("vgg11", "avgpool"), ("resnet18", "blurpool3-stem")])
def test_saved_fix_rebuilds_the_same_network(tmp_path, arch, variant):
    model = load_model(arch, "random", seed=3, device="cpu")
    path = tmp_path / "fixed.pth"
    fixed = save_fixed(model, variant, path)
    again = load_fixed(path, device="cpu", seed=99)  # another seed: every parameter comes from the file
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    assert torch.equal(again(x), fixed(x)) and torch.equal(fixed(x), build_variant(model, variant)(x))
    assert not torch.equal(fixed(x), model(x))  # the downsampling did change
    recipe = fixed_recipe(path)
    assert recipe["model"] == arch and recipe["downsampling"] == variant and recipe["retrained"] is False
    assert "not retrained" in again.weights and is_gradviz_file(path)
    assert set(torch.load(path, weights_only=True)) == {"state_dict", FIX_KEY}


def test_a_fine_tuned_head_is_kept(tmp_path):
    model = load_model("resnet18", "random", seed=0, device="cpu", num_classes=10)
    save_fixed(model, "blurpool2", tmp_path / "fixed.pth")
    again = load_fixed(tmp_path / "fixed.pth", device="cpu")
    assert again(torch.rand(1, 3, 32, 32)).shape == (1, 10) and fixed_recipe(tmp_path / "fixed.pth")["num_classes"] == 10


def test_fix_command_then_report_before_and_after(tmp_path, capsys):
    fixed = tmp_path / "fixed.pth"
    base = ["--model", "vgg11", "--weights", "random", "--seed", "0"]
    assert main(["fix", *base, "--downsampling", "blurpool3", "--out", str(fixed)]) == 0
    assert "not retrained" in capsys.readouterr().out
    assert main(["fix", *base, "--downsampling", "blurpool3", "--out", str(fixed), "--quiet"]) == 0  # its own file
    for name, weights in (("before", "random"), ("after", str(fixed))):
        assert main(["report", "--model", "vgg11", "--weights", weights, "--size", "32", "--layers", "features.2",
                     "--noise-images", "2", "--quiet", "--out", str(tmp_path / name)]) == 0
    after = json.loads((tmp_path / "after" / "report.json").read_text())
    assert "downsampling blurpool3 (not retrained)" in after["weights"]
    assert main(["html", str(tmp_path / "before"), str(tmp_path / "after"), "--out", str(tmp_path / "page.html")]) == 0


def test_fix_refusals(tmp_path, capsys):
    mine = tmp_path / "mine.pth"
    mine.write_bytes(b"the user's own file")
    cases = [
        (["--model", "vgg11", "--weights", "random", "--downsampling", "blurpool3", "--out", str(mine)], "was not written by gradviz"),
        (["--model", "vgg11", "--weights", "random", "--downsampling", "relaxed-ish", "--out", str(tmp_path / "a.pth")], "unknown variant 'relaxed-ish' for vgg11; valid: maxpool"),
        (["--model", "torchvision:squeezenet1_1", "--weights", "random", "--downsampling", "blurpool3", "--out", str(tmp_path / "b.pth")], "need a torchvision VGG or ResNet"),
        (["--model", "vgg11", "--weights", "random", "--downsampling", "blurpool3", "--out", str(tmp_path / "c.txt")], "must end in .pt, .pth"),
    ]
    for argv, message in cases:
        assert main(["fix", *argv]) == 2
        assert message in capsys.readouterr().err
    assert mine.read_bytes() == b"the user's own file" and sorted(p.name for p in tmp_path.iterdir()) == ["mine.pth"]
    fixed = tmp_path / "fixed.pth"
    save_fixed(load_model("vgg11", "random", device="cpu"), "avgpool", fixed)
    assert main(["report", "--model", "vgg13", "--weights", str(fixed), "--size", "32", "--out", str(tmp_path / "r")]) == 2
    assert "holds a fixed vgg11, not vgg13" in capsys.readouterr().err
    with pytest.raises(GradvizError, match="was not written by gradviz fix"):
        load_fixed(mine)
