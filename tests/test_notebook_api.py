"""The notebook-grade Python API: gradviz.build_report on any module and any form of images, the
report's views (repr, HTML, pandas, figures), objectives by module reference and "layer:n", and
one-line errors for what is not valid."""

import json
import math
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import torchvision
from torch import nn
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

import gradviz
from conftest import write_noise_photos
from gradviz.core.gradients import input_gradient
from gradviz.core.models import PixelModel
from gradviz.core.objectives import as_objective, channel, class_logit, deepdream, make_objective, neuron
from gradviz.errors import GradvizError
from gradviz.io.image_inputs import as_image_set
from gradviz.io.images import ImageSet, load_images
from gradviz.optvis.dream import DreamResult, DreamSettings, StepRecord
from gradviz.report.render import report_page
from gradviz.spectrum.readings import COLUMNS

LAYERS = ["layer1", "layer2"]
SIZE = 32


@pytest.fixture(scope="module")
def net():
    """A plain torchvision ResNet18 (random init, seed 0), as a user brings it: in train mode."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return torchvision.models.resnet18()


@pytest.fixture(scope="module")
def images():
    return torch.rand(5, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def report(net, images):
    return gradviz.build_report(net, images, layers=LAYERS, batch_size=2, progress=False)


def numbers(report):
    return [layer.to_dict() for layer in report.layers]


def close(a, b) -> bool:
    """Equal, floats to 1e-4 (batches of other sizes may round differently), walking lists and dicts."""
    if isinstance(a, float) and isinstance(b, float):
        return a == pytest.approx(b, rel=1e-4, abs=1e-9)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    return a == b


def assert_same_numbers(a, b):
    assert len(a.layers) == len(b.layers)
    for x, y in zip(numbers(a), numbers(b)):
        assert x.keys() == y.keys()
        assert not [key for key in x if not close(x[key], y[key])], x["name"]


# --- images in every accepted form give the same report ------------------------------------------------------

def test_a_dataloader_gives_the_numbers_of_the_tensor(net, images, report):
    labels = torch.arange(5)
    pairs = DataLoader(TensorDataset(images, labels), batch_size=2)
    plain = DataLoader(images, batch_size=2)  # yields tensors, not pairs
    for loader in (pairs, plain):
        streamed = gradviz.build_report(net, loader, layers=LAYERS, progress=False)
        assert streamed.n_images == 5 and streamed.images == "a DataLoader" and streamed.image_size == SIZE
        assert_same_numbers(streamed, report)
        assert [layer.metrics.n_images for layer in streamed.layers] == [5, 5]
    assert report.images == "a tensor" and report.n_images == 5


def test_a_dataloader_of_unknown_length_is_counted(net, images, report):
    class Stream(IterableDataset):
        def __iter__(self):
            return iter(images)

    streamed = gradviz.build_report(net, DataLoader(Stream(), batch_size=2), layers=LAYERS, progress=False)
    assert streamed.n_images == 5
    assert_same_numbers(streamed, report)


def test_a_folder_a_list_of_paths_and_an_image_set_agree(net, tmp_path):
    folder = write_noise_photos(tmp_path / "photos", 3, (40, 48), prefix="p")
    paths = sorted(folder.iterdir())
    by_folder = gradviz.build_report(net, str(folder), size=SIZE, layers=["layer1"], progress=False)
    by_list = gradviz.build_report(net, paths, size=SIZE, layers=["layer1"], progress=False)
    by_set = gradviz.build_report(net, load_images(folder, size=SIZE), layers=["layer1"], progress=False)
    assert by_folder.n_images == by_list.n_images == 3 and by_folder.image_size == SIZE
    assert by_list.images == f"3 files in {folder}"
    assert numbers(by_folder) == numbers(by_set)
    assert_same_numbers(by_list, by_folder)


# --- any module, measured in eval mode --------------------------------------------------------------------------

def test_a_module_in_train_mode_is_measured_in_eval_mode_and_restored(net, images, report):
    net.train()
    bn = net.bn1.running_mean.clone()
    trained = gradviz.build_report(net, images, layers=LAYERS, batch_size=2, progress=False)
    assert net.training and all(m.training for m in net.modules())
    assert torch.equal(net.bn1.running_mean, bn)  # no forward pass ran in train mode
    assert any("train mode" in note for note in trained.notes)
    net.eval()
    evaluated = gradviz.build_report(net, images, layers=LAYERS, batch_size=2, progress=False)
    net.train()
    assert not any("train mode" in note for note in evaluated.notes)
    assert numbers(trained) == numbers(evaluated)


def test_a_plain_module_gets_imagenet_normalisation_unless_told(net, images, report):
    wrapped = PixelModel(net)  # ImageNet's mean and std
    assert numbers(gradviz.build_report(wrapped, images, layers=LAYERS, batch_size=2, progress=False)) == numbers(report)
    assert report.normalize == "imagenet" and report.model == "ResNet"
    raw = gradviz.build_report(net, images, layers=["layer1"], normalize="none", progress=False)
    assert raw.normalize != "imagenet"
    assert raw.layers[0].metrics.lattice_fraction != pytest.approx(report.layers[0].metrics.lattice_fraction, rel=1e-6)


def test_layers_by_module_reference_and_alone(net, images, report):
    one = gradviz.build_report(net, images, layers=net.layer1, batch_size=2, progress=False)
    assert [layer.name for layer in one.layers] == ["layer1"]
    assert numbers(one) == numbers(report)[:1]


# --- the report's views -----------------------------------------------------------------------------------------

def test_reprs_are_short(report, tmp_path):
    assert len(repr(report)) < 300 and repr(report).startswith("Report('ResNet'")
    for layer in report.layers:
        assert len(repr(layer)) < 300 and layer.metrics.verdict[:20] in repr(layer)
    many = gradviz.Report("m" * 500, "w" * 500, "i" * 500, 9, 64, 0, "cpu", "gradient", report.layers * 20,
                          notes=["n" * 500] * 7)
    assert len(repr(many)) < 300 and "+36 more" in repr(many) and "7 notes" in repr(many)
    images = ImageSet(files=[tmp_path / "a.png"], size=8, source="x" * 1000)
    assert len(repr(images)) < 300
    steps = [StepRecord(0, i, 64, 0.5 + i, [0.1] * 64, 0.01, [0.01] * 5, 1.5, 1.2, [1.0] * 5) for i in range(200)]
    result = DreamResult(torch.zeros(8, 3, 64, 64), torch.zeros(8, 3, 64, 64), steps, [32, 45, 64], 8, "o" * 500,
                         DreamSettings())
    assert len(repr(result)) < 300 and "200 steps" in repr(result) and "0.5 -> 199.5" in repr(result)
    assert len(repr(steps[3])) < 300 and "step=3" in repr(steps[3])


def _html_rows(page: str) -> list[list[str]]:
    body = re.search(r"<tbody>(.*)</tbody>", page).group(1)
    return [re.findall(r"<td>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", body)]


def test_the_html_table_is_the_page_table(report):
    page = report._repr_html_()
    rows = _html_rows(page)
    assert len(rows) == len(report.layers)
    assert re.findall(r"<th>(.*?)</th>", page) == list(COLUMNS)
    markdown = report_page(report)
    for row, layer in zip(rows, report.layers):
        assert row[:3] == [layer.name, str(layer.stride), layer.metrics.verdict]
        assert "| " + " | ".join(row) + " |" in markdown  # the same cells as the Markdown page
    assert "input normalisation: imagenet" in page and "a tensor (5 images at 32 px)" in page


def test_to_pandas_holds_to_dict(report):
    pd = pytest.importorskip("pandas")
    df = report.to_pandas()
    assert isinstance(df, pd.DataFrame) and len(df) == len(report.layers)
    for (_, row), layer in zip(df.iterrows(), report.layers):
        d = layer.to_dict()
        assert list(df.columns) == list(d)
        for key, value in d.items():
            got = row[key]
            if value is None:
                assert got is None or (isinstance(got, float) and math.isnan(got)), key
            else:
                assert got == value, key


def test_to_pandas_without_pandas_says_so(report, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas -> ImportError
    with pytest.raises(GradvizError, match="to_pandas needs pandas, which is not installed; valid: pip install pandas"):
        report.to_pandas()


def test_plot_draws_without_pyplot_and_computing_without_matplotlib():
    code = textwrap.dedent("""
        import json, sys, torch, gradviz
        net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, stride=2, padding=1), torch.nn.ReLU())
        report = gradviz.build_report(net, torch.rand(2, 3, 16, 16), layers=["1"], progress=False)
        computing = "matplotlib" in sys.modules
        figures = report.plot()
        print(json.dumps([computing, {k: [type(f).__name__, len(f.axes)] for k, f in figures.items()},
                          "matplotlib" in sys.modules, "matplotlib.pyplot" in sys.modules]))
    """)
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    computing, figures, drawing, pyplot = json.loads(out.strip().splitlines()[-1])
    assert not computing and drawing and not pyplot  # pyplot, and with it a backend choice, is never loaded
    assert figures == {"headline.png": ["Figure", 2], "spectra.png": ["Figure", 3], "gradients.png": ["Figure", 3],
                       "tiles.png": ["Figure", 2], "radial.png": ["Figure", 1]}


# --- objectives by module reference and "layer:n" ---------------------------------------------------------------

def test_objectives_by_module_and_shorthand_give_the_named_gradients(resnet18):
    x = torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    named = input_gradient(resnet18, x, channel("layer4.1", 3))
    block = resnet18.net.layer4[-1]
    by_module = channel(block, 3)
    assert by_module.name == "channel(<BasicBlock>, 3)"
    assert by_module.bind(resnet18).name == "channel(layer4.1, 3)" and by_module.bind(resnet18).layers == ("layer4.1",)
    assert torch.equal(input_gradient(resnet18, x, by_module.bind(resnet18)), named)
    assert torch.equal(input_gradient(resnet18, x, channel("layer4.1:3")), named)
    assert torch.equal(input_gradient(resnet18, x, as_objective("layer4.1:3")), named)
    assert torch.equal(input_gradient(resnet18, x, make_objective("channel", "layer4.1:3")), named)
    mixed = (channel(block, 3) - 0.5 * deepdream(resnet18.net.layer2)).bind(resnet18)
    expected = input_gradient(resnet18, x, channel("layer4.1", 3) - 0.5 * deepdream("layer2"))
    assert mixed.layers == ("layer4.1", "layer2")
    assert torch.allclose(input_gradient(resnet18, x, mixed), expected)
    assert as_objective("logits:7").name == class_logit(7).name
    assert neuron("layer3:2").name == "neuron(layer3, 2, None, None)"


@pytest.mark.parametrize("make, message", [
    (lambda: channel("layer4"), r"channel objective on layer4 needs a channel index; valid: channel\('layer4', n\) or channel\('layer4:n'\)"),
    (lambda: channel("layer4:x"), r"channel objective 'layer4:x': expected 'layer:n' with n a channel number"),
    (lambda: channel(4, 1), r"channel objective given a layer of type int; valid: a dotted name"),
    (lambda: deepdream("layer4:3"), r"deepdream objective takes a whole layer, got 'layer4:3'; valid: deepdream\('layer4'\)"),
    (lambda: as_objective("layer4"), r"objective given as 'layer4'; valid: an Objective"),
    (lambda: as_objective(3), r"objective given as 3; valid"),
    (lambda: channel(nn.Conv2d(3, 3, 1), 0)({"a": torch.zeros(1, 3, 2, 2)}), r"module \(Conv2d\) not bound to a model"),
    (lambda: channel("layer9", 0)({"layer1": torch.zeros(1, 3, 2, 2)}),
     r"layer 'layer9' is not among the captured activations \(layer1\)"),
])
def test_objective_errors_are_one_line(make, message):
    with pytest.raises(GradvizError, match=message) as info:
        make()
    assert "\n" not in str(info.value)


def test_binding_a_module_of_another_model_is_refused(resnet18):
    with pytest.raises(GradvizError, match="module Conv2d is not a layer of this model"):
        channel(nn.Conv2d(3, 3, 1), 0).bind(resnet18)


# --- images that are not valid: one line saying what was given and what is valid -------------------------------

def _loader_of(*batches):
    return DataLoader(list(batches), batch_size=None)


@pytest.mark.parametrize("given, message", [
    (torch.rand(3, 32, 32), r"images tensor of shape \(3, 32, 32\); valid: \(B, 3, H, W\) \(one image: x\[None\]\)"),
    (torch.rand(2, 32, 32, 3), r"shape \(2, 32, 32, 3\); valid: \(B, 3, H, W\) with 3 colour channels \(channels last"),
    (np.zeros((2, 32, 32, 3), dtype=np.float32), r"images given as a numpy array of shape \(2, 32, 32, 3\) \(float32\).*valid: a \(B, 3, H, W\) float tensor"),
    (torch.rand(2, 3, 32, 40), r"images of 32x40 px; valid: square images of one size"),
    ((torch.rand(2, 3, 32, 32) * 255).to(torch.uint8), r"images tensor of dtype torch.uint8; valid: float pixels in \[0, 1\] \(x.float\(\) / 255"),
    (torch.randn(2, 3, 32, 32) * 3, r"images values span \[-\S+, \S+\]; valid: pixels in \[0, 1\] \(normalisation happens inside the model"),
    (torch.full((1, 3, 32, 32), float("nan")), r"images tensor holds NaN or infinite values"),
    (torch.zeros(0, 3, 32, 32), r"holds no images"),
    ([torch.rand(3, 32, 32)] * 2, r"images given as a list of 2 tensors; stack them: torch.stack\(images\)"),
    ([], r"images given as an empty list; valid"),
    ({"x": 1}, r"images given as a builtins.dict; valid"),
    (_loader_of({"image": torch.rand(2, 3, 32, 32)}), r"DataLoader batch 0 is a dict; valid: \(B, 3, H, W\) tensors or \(tensor, label\) pairs"),
    (_loader_of(), r"the DataLoader yields no batches"),
])
def test_bad_images_are_refused_in_one_line(given, message):
    with pytest.raises(GradvizError, match=message) as info:
        as_image_set(given)
    assert "\n" not in str(info.value)


def test_a_dataloader_batch_of_another_size_is_named(net):
    loader = _loader_of(torch.rand(2, 3, 32, 32), (torch.rand(2, 3, 64, 64), torch.zeros(2)))
    with pytest.raises(GradvizError, match=r"DataLoader batch 1 of 64 px after images of 32 px; valid: images of one size"):
        gradviz.build_report(net, loader, layers=["layer1"], progress=False)


def test_build_report_refuses_bad_arguments_in_one_line(net, images):
    with pytest.raises(GradvizError, match=r"images tensor of shape \(3, 32, 32\)"):
        gradviz.build_report(net, images[0], progress=False)
    with pytest.raises(GradvizError, match=r"size=64 given for images of 32 px; valid: size=None"):
        gradviz.build_report(net, images, size=64, progress=False)
    with pytest.raises(GradvizError, match=r"layers=\[\] names no layer"):
        gradviz.build_report(net, images, layers=[], progress=False)
    with pytest.raises(GradvizError, match="expected a torch.nn.Module, got str"):
        gradviz.build_report("resnet18", images, progress=False)
