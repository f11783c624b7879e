"""The comparison report: files, fairness of the as-built variant, determinism, clear errors."""

import json

import pytest
import torch
from PIL import Image

from conftest import write_noise_photos
from gradviz.cli import main
from gradviz.core.layermap import layer_map
from gradviz.downsampling.compare import compare_variants
from gradviz.downsampling.render import write_comparison
from gradviz.errors import GradvizError
from gradviz.io.images import ImageSet
from gradviz.io.outputs import is_gradviz_file

SIZE = 64
STAGES = ["relu", "layer1", "layer2", "layer3", "layer4"]


@pytest.fixture(scope="module")
def images():
    x = torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    return ImageSet(x, ["noise:0", "noise:1"], "test noise (seed 0)")


@pytest.fixture(scope="module")
def comparison(resnet18, images):
    return compare_variants(resnet18, ["stride", "blurpool3"], images, seed=0)


def _png(path):
    with Image.open(path) as im:
        return im.format, im.size, im.info.get("Software", "")


def test_report_files_and_contents(comparison, tmp_path):
    files = write_comparison(comparison, tmp_path / "out")
    assert files == ["comparison.json", "report.html", "report.md", "summary.png", *[f"stage-{s}.png" for s in STAGES]]
    for f in files[3:]:
        fmt, (w, h), software = _png(tmp_path / "out" / f)
        assert fmt == "PNG" and w > 200 and h > 100 and software.startswith("gradviz")
        assert is_gradviz_file(tmp_path / "out" / f)
    # summary: 6 panels in 2 rows; a stage figure: one row per variant
    assert _png(tmp_path / "out" / "summary.png")[1][0] > _png(tmp_path / "out" / "summary.png")[1][1]
    data = json.loads((tmp_path / "out" / "comparison.json").read_text())
    assert data["arch"] == "resnet18" and data["weights"].startswith("random")
    assert data["image_names"] == ["noise:0", "noise:1"] and data["size"] == SIZE
    as_built, blur = data["variants"]
    assert as_built["description"] == "strided convolutions and max-pool (as built)"
    assert [s["layer"] for s in as_built["stages"]] == STAGES
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
    # The page prints the JSON's numbers: cosines with 3 decimals, "n/a" where a test cannot run (NaN).
    cos = " | ".join(f"{s['cosine_mean']:.3f} ({s['cosine_min']:.3f})" for s in blur["stages"])
    assert f"| blurpool3 | {cos} |" in report
    assert blur["stages"][-1]["metrics"]["tile_p_value"] is None  # 2x2 maps at S = 32: no tile test
    assert report.count("n/a (n/a)") >= 2
    page = (tmp_path / "out" / "report.html").read_text()  # every variant's cards, as its metrics say
    for variant in data["variants"]:
        for stage in variant["stages"]:
            status = "grid" if stage["metrics"]["grid_detected"] else "clear"
            assert f'<div class="card {status}" data-layer="{stage["layer"]}">' in page
    assert page.count('<div class="card ') == sum(len(v["stages"]) for v in data["variants"])
    assert all(f'<img src="{name}"' in page for name in files if name.endswith(".png"))


def test_same_inputs_give_the_same_numbers(resnet18, images, comparison):
    again = compare_variants(resnet18, ["stride", "blurpool3"], images, seed=0, lmap=layer_map(resnet18, SIZE))
    assert again.to_dict() == comparison.to_dict()


def test_bad_layer_and_size_fail_without_output(resnet18, images, tmp_path):
    with pytest.raises(GradvizError, match="unknown layer 'layer9'; valid: e.g. relu, layer1"):
        compare_variants(resnet18, ["stride"], images, layers=["layer9"])
    with pytest.raises(GradvizError, match="layer fc has stride None; valid: layers at a stride of 2, 4, 8"):
        compare_variants(resnet18, ["stride"], images, layers=["fc"])
    small = ImageSet(images.images[:, :, :48, :48], images.names, "cropped")
    with pytest.raises(GradvizError, match="--size must be a multiple of 32 and at least 64, got 48"):
        compare_variants(resnet18, ["stride"], small)
    with pytest.raises(GradvizError, match="the layer map is at 96 px, the images at 64 px"):
        compare_variants(resnet18, ["stride"], images, lmap=layer_map(resnet18, 96))


def test_cli_errors_exit_2_and_write_nothing(tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["compare", "--model", "resnet18", "--weights", "random", "--variants", "stride,relaxed", "--size", "64",
                 "--out", str(out)]) == 2
    assert "unknown variant 'relaxed' for resnet18; valid: stride, blurpool2" in capsys.readouterr().err
    assert main(["compare", "--model", "vgg11", "--size", "100", "--out", str(out)]) == 2
    assert "--size must be a multiple of 32" in capsys.readouterr().err
    assert not out.exists()


def test_cli_help_lists_the_registered_variants(capsys):
    assert main(["compare", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "VGG variants: maxpool, stride, avgpool, blurpool2, blurpool3, blurpool4, blurpool5, relaxed." in text
    assert "a multiple of 32, >= 64 (default: 224)" in text


def test_cli_writes_a_report(tmp_path, capsys):
    out = tmp_path / "report"
    folder = write_noise_photos(tmp_path / "imgs", 1, (70, 80))
    argv = ["compare", "--model", "vgg11", "--weights", "random", "--variants", "stride,avgpool", "--images", str(folder),
            "--size", "64", "--layers", "features.5,features.20", "--device", "cpu", "--out", str(out)]
    assert main(argv) == 0
    data = json.loads((out / "comparison.json").read_text())
    assert [v["name"] for v in data["variants"]] == ["stride", "avgpool"]
    assert [s["stride"] for s in data["variants"][0]["stages"]] == [4, 32]
    assert data["image_names"] == ["0.png"]
    assert _png(out / "stage-features_5.png")[0] == "PNG" and is_gradviz_file(out / "stage-features_5.png")
    printed = capsys.readouterr().out.splitlines()
    for line, v in zip(printed, data["variants"]):
        deepest = v["stages"][-1]
        assert line.startswith(f"{v['name']:15s} features.20: ") and line.endswith(f"cos {deepest['cosine_mean']:.3f}")
    assert printed[-1] == f"wrote {out}/: comparison.json, report.html, report.md, summary.png, stage-features_5.png, stage-features_20.png"
