"""The report command end to end on a random-init ResNet18 at 64 px, and its bad-input errors."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

import gradviz.core.layermap as layermap
from conftest import write_noise_photos
from gradviz.cli import main
from gradviz.core.layermap import PROBE_SIZE, STRIDE_STEP
from gradviz.core.models import build_architecture, load_model
from gradviz.core.taps import hook_count
from gradviz.io.images import builtin_images
from gradviz.report import build_report
from gradviz.report.render import make_figures

REQUIRED = {"name", "stride", "objective", "lattice_fraction", "null_fraction", "octave_fractions", "tile_contrast", "tile_cv", "tile",
            "lattice_excess", "octave_excess", "octave_p_values", "p_value", "grid_detected", "shared_tile_cv",
            "tile_p_value", "verdict"}


@pytest.fixture()
def photos(tmp_path):
    return write_noise_photos(tmp_path / "photos", 3, (70, 80), prefix="p")


def test_report_writes_json_markdown_and_figures(tmp_path, photos):
    out = tmp_path / "rep"
    rc = main(["report", "--model", "resnet18", "--weights", "random", "--images", str(photos), "--size", "64", "--out", str(out), "--batch-size", "2"])
    assert rc == 0
    data = json.loads((out / "report.json").read_text())
    assert data["model"] == "resnet18" and data["device"] == "cpu" and data["seed"] == 0
    assert set(data["versions"]) >= {"torch", "torchvision", "captum"}
    names = [layer["name"] for layer in data["layers"]]
    assert names == ["relu", "layer1", "layer2", "layer3", "layer4", "logits"]
    for layer in data["layers"]:
        assert REQUIRED <= set(layer)
        assert len(layer["octave_fractions"]) == int(np.log2(layer["stride"]))
        assert layer["null_fraction"] == pytest.approx((layer["stride"] ** 2 - 1) / (64 * 64 - 1))
        assert len(layer["octave_excess"]) == len(layer["octave_p_values"]) == int(np.log2(layer["stride"]))
        assert layer["grid_detected"] == (layer["p_value"] < 0.05)
        assert layer["verdict"].startswith("grid" if layer["grid_detected"] else "no detectable grid")
    # random-init ResNet18: strided 1x1 and 3x3 convolutions put a grid in every stage's gradient
    assert data["layers"][0]["grid_detected"]
    for png in ("headline.png", "spectra.png", "gradients.png", "tiles.png", "radial.png"):
        with Image.open(out / png) as im:
            assert im.format == "PNG" and im.info["Software"].startswith("gradviz") and min(im.size) > 100
    page = (out / "report.md").read_text()
    assert "excess by octave" in page and "white-noise" not in page
    for layer in data["layers"]:  # one table row per layer: name, period, verdict as in the JSON
        assert f"| {layer['name']} | {layer['stride']} | {layer['verdict']} |" in page


def test_report_is_deterministic_and_leaves_no_hooks():
    model = load_model("resnet18", "random", seed=0, device="cpu")
    images = builtin_images(32, seed=0, noise=2)
    a = build_report(model, images, progress=False)
    b = build_report(model, images, progress=False)
    assert [x.to_dict() for x in a.layers] == [x.to_dict() for x in b.layers]
    assert hook_count(model) == 0
    figures = make_figures(a)
    assert set(figures) == {"headline.png", "spectra.png", "gradients.png", "tiles.png", "radial.png"}
    # one panel per layer (two in the spectra and the gradients: mean of spectra and spectrum of the mean; the map
    # and its crop), one colourbar each, and the headline's excess and energy-share panels
    n = len(a.layers)
    assert {name: len(fig.axes) for name, fig in figures.items()} == {
        "headline.png": 2, "spectra.png": 2 * n + 1, "gradients.png": 2 * n + 1, "tiles.png": n + 1, "radial.png": 1}


def test_build_report_probes_the_model_once(resnet18):
    sizes = []
    handle = resnet18.register_forward_pre_hook(lambda module, args: sizes.append(tuple(args[0].shape)))
    try:
        build_report(resnet18, builtin_images(32, seed=0, noise=5), progress=False, batch_size=8)  # 17 images
        # the probe's two small passes (the strides), then one forward pass per batch: no pass at 32 px to plan
        big = PROBE_SIZE + STRIDE_STEP
        assert sizes == [(1, 3, PROBE_SIZE, PROBE_SIZE), (1, 3, big, big), (8, 3, 32, 32), (8, 3, 32, 32), (1, 3, 32, 32)]
        probe = layermap.probe_map(resnet18, 32)
        sizes.clear()
        build_report(resnet18, builtin_images(32, seed=0, noise=0), progress=False, probe=probe)  # 12 images
        assert sizes == [(8, 3, 32, 32), (4, 3, 32, 32)]  # given the probe, the batches only
    finally:
        handle.remove()


def test_features_only_weights_leave_logits_out(tmp_path, photos):
    torch.save(build_architecture("vgg11", seed=1).features.state_dict(), tmp_path / "f.pth")
    out = tmp_path / "rep"
    assert main(["report", "--model", "vgg11", "--weights", str(tmp_path / "f.pth"), "--images", str(photos), "--size", "32", "--out", str(out)]) == 0
    data = json.loads((out / "report.json").read_text())
    assert "logits" not in [layer["name"] for layer in data["layers"]]
    assert any("untrained" in note for note in data["notes"])


def test_layers_option_and_channel_objective(tmp_path, photos):
    out = tmp_path / "rep"
    rc = main(["report", "--model", "vgg11", "--weights", "random", "--images", str(photos), "--size", "32",
               "--layers", "features.5,features.7", "--objective", "channel", "--channel", "3", "--out", str(out)])
    assert rc == 0
    layers = json.loads((out / "report.json").read_text())["layers"]
    assert [(x["name"], x["stride"], x["objective"]) for x in layers] == [
        ("features.5", 4, "channel(features.5, 3)"), ("features.7", 4, "channel(features.7, 3)")]


def bad_cases(tmp_path, photos):
    empty = tmp_path / "empty"
    empty.mkdir()
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.png").write_bytes(b"not an image")
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(tiny / "t.png")
    (tmp_path / "corrupt.pth").write_bytes(b"junk")
    torch.save(build_architecture("vgg11").features.state_dict(), tmp_path / "vgg11f.pth")
    base = ["report", "--weights", "random", "--images", str(photos), "--size", "32"]
    return [
        (["report", "--model", "alexnet", "--weights", "random"], "unknown model 'alexnet'; valid: vgg11"),
        (base + ["--model", "vgg11", "--layers", "features.77"], "unknown layer 'features.77'"),
        (["report", "--model", "vgg11", "--weights", str(tmp_path / "nope.pth")], "weights file not found"),
        (["report", "--model", "vgg11", "--weights", "bogus"], "unknown weights 'bogus'"),
        (["report", "--model", "vgg11", "--weights", str(tmp_path / "corrupt.pth")], "corrupt"),
        (["report", "--model", "resnet18", "--weights", str(tmp_path / "vgg11f.pth")], "does not fit resnet18"),
        (["report", "--model", "vgg11", "--weights", "random", "--images", str(empty)], "holds no images"),
        (["report", "--model", "vgg11", "--weights", "random", "--images", str(junk)], "cannot read image"),
        (["report", "--model", "vgg11", "--weights", "random", "--images", str(tiny)], "smaller than the network's stride 32"),
        (base[:-1] + ["16", "--model", "vgg11"], "smaller than the network's stride 32"),
    ]


def test_bad_input_one_line_exit_2_no_output(tmp_path, photos, capsys):
    for argv, message in bad_cases(tmp_path, photos):
        out = tmp_path / "out"
        rc = main(argv + ["--out", str(out)])
        err = capsys.readouterr().err.strip()
        assert rc == 2, argv
        assert message in err and len(err.splitlines()) == 1, err
        assert not out.exists()
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_layers_command(capsys):
    assert main(["layers", "--model", "resnet18", "--size", "64"]) == 0
    text = capsys.readouterr().out
    assert "layer4" in text and "<- stage output" in text and "logits" in text
