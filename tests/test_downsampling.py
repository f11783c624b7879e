"""Downsampling variants and kernel predictions: shapes, exact identities, clear errors."""

import copy

import pytest
import torch
from torch import nn

from gradviz.cli.compare import parse_variants
from gradviz.core.layermap import layer_map
from gradviz.core.models import PixelModel
from gradviz.core.taps import Taps, hook_count
from gradviz.downsampling.compare import comparison_layers
from gradviz.downsampling.kernels import harmonic_power, predict_layer, predict_lines, strided_layers
from gradviz.downsampling.variants import (
    AS_BUILT,
    BLUR_SIZES,
    RESNET_VARIANTS,
    VGG_VARIANTS,
    BlurPool2d,
    Blurred,
    RelaxedMaxPool2d,
    binomial_kernel,
    build_variant,
    variants_for,
)
from gradviz.errors import GradvizError
from gradviz.spectrum import checkerboard_metrics

SIZE = 64  # the smallest size every variant supports (see gradviz.downsampling.compare.MIN_SIZE)


def _stage_outputs(model, x, stages):
    with torch.no_grad(), Taps(model, [name for name, _ in stages]) as taps:
        return taps.forward(x)


@pytest.mark.parametrize("family", ["vgg", "resnet"])
def test_every_variant_keeps_stage_shapes(family, vgg11, resnet18):
    model = vgg11 if family == "vgg" else resnet18
    names = VGG_VARIANTS if family == "vgg" else RESNET_VARIANTS
    stages = comparison_layers(model, layer_map(model, SIZE))
    assert [s for _, s in stages] == [2, 4, 8, 16, 32]
    x = torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    ref = _stage_outputs(model, x, stages)
    for name in names:
        out = _stage_outputs(build_variant(model, name), x, stages)
        assert {k: v.shape for k, v in out.items()} == {k: v.shape for k, v in ref.items()}, name
    assert hook_count(model) == 0


def test_as_built_variants_are_the_original(vgg11, resnet18):
    x = torch.rand(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    assert AS_BUILT == {"vgg": "maxpool", "resnet": "stride"}
    for model, name in [(vgg11, AS_BUILT["vgg"]), (resnet18, AS_BUILT["resnet"])]:
        with torch.no_grad():
            assert torch.equal(build_variant(model, name)(x), model(x))


def test_loaded_model_is_never_modified(vgg11):
    before = {k: v.clone() for k, v in vgg11.state_dict().items()}
    types = [type(m) for m in vgg11.modules()]
    for name in VGG_VARIANTS:
        build_variant(vgg11, name)
    assert [type(m) for m in vgg11.modules()] == types
    assert all(torch.equal(before[k], v) for k, v in vgg11.state_dict().items())


def test_stride_variant_is_the_subsampled_convolution(vgg11):
    """conv at stride 2 == stride-1 conv sampled at even pixels, exactly (float64)."""
    original = copy.deepcopy(vgg11).double()
    variant = build_variant(original, "stride")
    x = torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    with torch.no_grad():
        conv, strided = original.net.features[0], variant.net.features[0]
        assert strided.stride == (2, 2) and conv.stride == (1, 1)
        assert torch.allclose(strided(x), conv(x)[..., ::2, ::2], rtol=0, atol=1e-12)
    # The first stage (the former pool, now Identity) is ReLU(conv) subsampled by two.
    with torch.no_grad(), Taps(original, ["features.1"]) as t1, Taps(variant, ["features.2"]) as t2:
        a, b = t1.forward(x)["features.1"], t2.forward(x)["features.2"]
    assert isinstance(variant.net.features[2], nn.Identity)
    assert torch.allclose(b, a[..., ::2, ::2], rtol=0, atol=1e-12)


@pytest.mark.parametrize("size", BLUR_SIZES)
def test_binomial_response_is_zero_at_nyquist(size):
    power = harmonic_power(binomial_kernel(size)[None, None], 2)
    assert power[0, 0] == pytest.approx(1.0, abs=1e-12)  # normalised: H(0) = 1
    assert power[1, 0] == power[0, 1] == pytest.approx(0.0, abs=1e-24)
    assert power[1, 1] == pytest.approx(0.0, abs=1e-24)


def _constant_upstream_gradient(layer: nn.Module, size: int = 32) -> torch.Tensor:
    """d(sum of outputs)/d(input) for a constant one-channel input: the backward of ones."""
    x = torch.ones(1, 1, size, size, dtype=torch.float64, requires_grad=True)
    layer(x).sum().backward()
    return x.grad[0, 0]


def _box_conv() -> nn.Conv2d:
    conv = nn.Conv2d(1, 1, 3, stride=2, padding=1, bias=False).double()
    nn.init.ones_(conv.weight)
    return conv


@pytest.mark.parametrize("size", BLUR_SIZES)
def test_blur_removes_the_constant_input_lattice_of_a_strided_conv(size):
    interior = slice(8, -8)  # away from the zero padding of the conv and the reflect padding of the blur
    plain = _constant_upstream_gradient(_box_conv())[interior, interior]
    # Distill's overlap pattern of a 3x3 stride-2 kernel, all energy on the lattice
    # (even pixels see one output, odd pixels two, with padding 1).
    assert torch.equal(plain[:2, :2], torch.tensor([[1.0, 2.0], [2.0, 4.0]], dtype=torch.float64))
    assert checkerboard_metrics(plain, 2).lattice_fraction == pytest.approx(1.0, abs=1e-12)
    blurred = _constant_upstream_gradient(Blurred(_box_conv(), size).double())[interior, interior]
    assert torch.allclose(blurred, torch.full_like(blurred, 9.0 / 4.0), rtol=0, atol=1e-12)  # 9 taps / 4 phases


def test_kernel_predictions_match_the_overlap_facts():
    """3x3 box at stride 2: line/DC (1/3)^2 at (pi, 0) and (1/9)^2 at (pi, pi); polyphase tile max/min 4."""
    p = predict_layer("box", _box_conv(), input_stride=4)
    assert p.line_period == 8
    assert p.harmonic_to_dc["1,0"] == pytest.approx(1 / 9, abs=1e-12)
    assert p.harmonic_to_dc["0,1"] == pytest.approx(1 / 9, abs=1e-12)
    assert p.harmonic_to_dc["1,1"] == pytest.approx(1 / 81, abs=1e-12)
    assert p.tile_contrast == pytest.approx(4.0, abs=1e-12)
    # A 1x1 stride-2 convolution gives gradient to one phase in four: infinite contrast (None in JSON).
    one = predict_layer("shortcut", nn.Conv2d(2, 3, 1, stride=2), input_stride=1)
    assert one.tile_contrast is None and sorted(sum(one.tile, [])) == pytest.approx([0, 0, 0, 4])
    # [1, 2, 1] binomial: polyphase energies (2, 4)/16 per dimension -> 2D max/min 4.
    assert predict_layer("b3", BlurPool2d(3), 1).tile_contrast == pytest.approx(4.0)


def test_blurpool_variant_predicts_no_lines_but_the_aliased_stem(resnet18):
    preds = {p.layer: p for p in predict_lines(build_variant(resnet18, "blurpool4"), SIZE)}
    assert preds["conv1"].kind == "conv" and max(preds["conv1"].harmonic_to_dc.values()) > 0.01
    assert preds["maxpool"].kind == "maxblurpool4"
    blurred = [p for name, p in preds.items() if name.startswith("layer")]
    assert len(blurred) == 6  # conv and 1x1 shortcut of layer2, layer3, layer4
    assert all(v == pytest.approx(0, abs=1e-20) for p in blurred for v in p.harmonic_to_dc.values())
    stem = {p.layer: p for p in predict_lines(build_variant(resnet18, "blurpool4-stem"), SIZE)}
    assert max(stem["conv1"].harmonic_to_dc.values()) == pytest.approx(0, abs=1e-20)


def test_relaxed_pool_is_max_forward_average_backward():
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(3), requires_grad=True)
    up = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(4))
    y = RelaxedMaxPool2d(2, 2)(x)
    assert torch.equal(y, nn.functional.max_pool2d(x, 2, 2))
    (g,) = torch.autograd.grad((y * up).sum(), x)
    (g_avg,) = torch.autograd.grad((nn.functional.avg_pool2d(x, 2, 2) * up).sum(), x)
    assert torch.allclose(g, g_avg, rtol=0, atol=1e-7)


def test_bad_variant_names_fail_with_the_valid_list(vgg11, resnet18):
    with pytest.raises(GradvizError, match=r"unknown variant 'blurpool9' for vgg11; valid: maxpool, stride"):
        build_variant(vgg11, "blurpool9")
    with pytest.raises(GradvizError, match=r"unknown variant 'relaxed' for resnet18; valid: stride, blurpool2"):
        build_variant(resnet18, "relaxed")
    with pytest.raises(GradvizError, match="unknown variant 'avgpool' for resnet18"):
        parse_variants(resnet18, "stride,avgpool")
    with pytest.raises(GradvizError, match="no variant given; valid: maxpool"):
        parse_variants(vgg11, " , ")
    assert parse_variants(vgg11, "stride, maxpool,stride") == ["stride", "maxpool"]


def test_a_model_that_is_neither_vgg_nor_resnet_fails_clearly():
    model = PixelModel(nn.Sequential(nn.Conv2d(3, 4, 3, stride=2)))
    with pytest.raises(GradvizError, match="need a torchvision VGG or ResNet, got Sequential"):
        build_variant(model, "stride")


def test_registries_keep_the_names_and_descriptions(vgg11, resnet18):
    assert list(VGG_VARIANTS) == ["maxpool", "stride", "avgpool", "blurpool2", "blurpool3", "blurpool4", "blurpool5",
                                  "relaxed"]
    assert list(RESNET_VARIANTS) == ["stride", *[f"blurpool{n}" for n in BLUR_SIZES],
                                     *[f"blurpool{n}-stem" for n in BLUR_SIZES]]
    assert VGG_VARIANTS.describe("blurpool3") == "max-pool 2x2 stride 1, then binomial blur 3x3 stride 2"
    assert VGG_VARIANTS.describe("stride") == "the convolution before each pool at stride 2, pool removed"
    assert RESNET_VARIANTS.describe("blurpool4") == (
        "binomial blur 4x4 before every strided convolution of layer2-4 and in the max-pool")
    assert RESNET_VARIANTS.describe("blurpool5-stem") == "blurpool5, and the stem convolution blurred too"
    assert variants_for(vgg11) is VGG_VARIANTS and variants_for(resnet18) is RESNET_VARIANTS
    with pytest.raises(GradvizError, match="unknown ResNet variant 'avgpool'; valid: stride, blurpool2"):
        RESNET_VARIANTS["avgpool"]


def test_comparison_layers_are_the_pool_outputs_for_vgg_and_the_stages_for_resnet(vgg11, resnet18):
    vgg_map, resnet_map = layer_map(vgg11, SIZE), layer_map(resnet18, SIZE)
    assert comparison_layers(vgg11, vgg_map) == [("features.2", 2), ("features.5", 4), ("features.10", 8),
                                                 ("features.15", 16), ("features.20", 32)]
    # The report's stages are the last layer at each stride, which the `stride` variant moves.
    assert [r.name for r in vgg_map.stages] == ["features.4", "features.9", "features.14", "features.19", "features"]
    assert comparison_layers(resnet18, resnet_map) == [(r.name, r.stride) for r in resnet_map.stages]
    assert [r.name for r in resnet_map.stages] == ["relu", "layer1", "layer2", "layer3", "layer4"]


def test_strided_layers_reuse_a_given_layer_map(resnet18):
    variant = build_variant(resnet18, "blurpool3-stem")
    lmap = layer_map(variant, SIZE)
    calls = []
    handle = variant.register_forward_pre_hook(lambda module, inputs: calls.append(1))
    try:
        found = strided_layers(variant, lmap=lmap)
    finally:
        handle.remove()
    assert calls == []  # no second probe
    assert [(name, type(m).__name__, r) for name, m, r in found] == [
        ("conv1", "Blurred", 1), ("maxpool", "MaxBlurPool2d", 2),
        ("layer2.0.conv1", "Blurred", 4), ("layer2.0.downsample.0", "Blurred", 4),
        ("layer3.0.conv1", "Blurred", 8), ("layer3.0.downsample.0", "Blurred", 8),
        ("layer4.0.conv1", "Blurred", 16), ("layer4.0.downsample.0", "Blurred", 16),
    ]
    assert [p.to_dict() for p in predict_lines(variant, SIZE)] == [p.to_dict() for p in predict_lines(variant, lmap=lmap)]
