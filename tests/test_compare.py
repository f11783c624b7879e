"""The comparison report: files, fairness of the as-built variant, determinism, clear errors."""

import json

import pytest
import torch

from gradviz.cli import main
from gradviz.compare import compare_variants, write_report
from gradviz.errors import GradvizError
from gradviz.images import ImageSet
from gradviz.models import load_model

SIZE = 64


@pytest.fixture(scope="module")
def images():
    x = torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    return ImageSet(x, ["noise:0", "noise:1"], "test noise (seed 0)")


@pytest.fixture(scope="module")
def resnet():
    return load_model("resnet18", "random", seed=0, device="cpu")


@pytest.fixture(scope="module")
def comparison(resnet, images):
    return compare_variants(resnet, ["stride", "blurpool3"], images, seed=0)


def test_report_files_and_contents(comparison, tmp_path):
    files = write_report(comparison, tmp_path / "out")
    for f in files:
        assert (tmp_path / "out" / f).stat().st_size > 0
    data = json.loads((tmp_path / "out" / "comparison.json").read_text())
    assert data["arch"] == "resnet18" and data["weights"].startswith("random")
    as_built, blur = data["variants"]
    assert [s["layer"] for s in as_built["stages"]] == ["relu", "layer1", "layer2", "layer3", "layer4"]
    # The as-built variant is the original: its activations agree exactly (cosine 1).
    assert all(s["cosine_mean"] == pytest.approx(1.0, abs=1e-9) for s in as_built["stages"])
    # The stem is untouched by blurpool3, so the first stage is the original's too; deeper stages move.
    assert blur["stages"][0]["cosine_mean"] == pytest.approx(1.0, abs=1e-9)
    assert blur["stages"][-1]["cosine_mean"] < 1.0
    m = blur["stages"][2]["metrics"]
    assert m["stride"] == 8 and len(m["octave_fractions"]) == 3
    assert sum(m["octave_fractions"]) == pytest.approx(m["lattice_fraction"], rel=1e-4)
    # Blurred strided layers predict no lines at their period; the as-built strided convs do.
    lines = {v["name"]: {l["period"]: l["predicted_to_dc"] for l in v["lines"]} for v in data["variants"]}
    assert lines["blurpool3"][8] == pytest.approx(0.0, abs=1e-12) and lines["stride"][8] > 0.01
    report = (tmp_path / "out" / "report.md").read_text()
    assert "## Where the lines come from" in report and "![summary.png](summary.png)" in report


def test_same_inputs_give_the_same_numbers(resnet, images, comparison):
    again = compare_variants(resnet, ["stride", "blurpool3"], images, seed=0)
    assert again.to_dict() == comparison.to_dict()


def test_bad_layer_and_size_fail_without_output(resnet, images, tmp_path):
    with pytest.raises(GradvizError, match="unknown layer 'layer9'; valid: e.g. relu, layer1"):
        compare_variants(resnet, ["stride"], images, layers=["layer9"])
    with pytest.raises(GradvizError, match="layer fc has stride None; valid: layers at a stride of 2, 4, 8"):
        compare_variants(resnet, ["stride"], images, layers=["fc"])
    small = ImageSet(images.images[:, :, :48, :48], images.names, "cropped")
    with pytest.raises(GradvizError, match="--size must be a multiple of 32 and at least 64, got 48"):
        compare_variants(resnet, ["stride"], small)


def test_cli_errors_exit_2_and_write_nothing(tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["compare", "--model", "resnet18", "--variants", "stride,relaxed", "--size", "64", "--out", str(out)]) == 2
    assert "unknown variant 'relaxed' for resnet18; valid: stride, blurpool2" in capsys.readouterr().err
    assert main(["compare", "--model", "vgg11", "--size", "100", "--out", str(out)]) == 2
    assert "--size must be a multiple of 32" in capsys.readouterr().err
    assert not out.exists()


def test_cli_writes_a_report(tmp_path, capsys):
    out = tmp_path / "report"
    folder = tmp_path / "imgs"
    folder.mkdir()
    from PIL import Image
    import numpy as np

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (70, 80, 3), dtype=np.uint8)).save(folder / "a.png")
    argv = ["compare", "--model", "vgg11", "--variants", "stride,avgpool", "--images", str(folder),
            "--size", "64", "--layers", "features.5,features.20", "--device", "cpu", "--out", str(out)]
    assert main(argv) == 0
    data = json.loads((out / "comparison.json").read_text())
    assert [v["name"] for v in data["variants"]] == ["stride", "avgpool"]
    assert [s["stride"] for s in data["variants"][0]["stages"]] == [4, 32]
    assert (out / "stage-features_5.png").exists() and "wrote" in capsys.readouterr().out
