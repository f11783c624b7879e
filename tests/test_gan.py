"""Discriminator first layers, their input gradients, and a tiny GAN run."""

from __future__ import annotations

import json

import pytest
import torch

from gradviz.cli import main
from gradviz.errors import GradvizError
from gradviz.spectrum import checkerboard_metrics
from gradviz.upsampling.discriminators import (
    FIRST_LAYERS,
    PERIOD,
    Discriminator,
    discriminator_input_gradient,
    first_layer,
    measure_discriminator,
    photo_patches,
    pick_patches,
)
from gradviz.upsampling.gan import GanSettings, describe_optimiser, train_gan


@pytest.mark.parametrize("kind", FIRST_LAYERS)
def test_first_layers_halve_the_size(kind):
    torch.manual_seed(0)
    assert first_layer(kind, 3, 4)(torch.randn(2, 3, 16, 16)).shape == (2, 4, 8, 8)
    assert Discriminator(kind, width=4)(torch.randn(2, 3, 32, 32)).shape == (2,)


def test_strided_conv_gradient_is_the_overlap_pattern():
    """Backward of a 3x3 stride-2 conv with a constant kernel and ones upstream = transposed conv:
    gradient values 4, 2, 2, 1 per 2x2 phase, energies 16, 4, 4, 1."""
    layer = first_layer("stride2-k3", 1, 1)
    with torch.no_grad():
        layer[0].weight.fill_(1.0)
        layer[0].bias.zero_()
    grad = discriminator_input_gradient(layer, torch.ones(1, 1, 16, 16))  # positive input: LeakyReLU is the identity
    interior = grad[0, 0, 2:14, 2:14]
    # with padding 1, windows start at odd rows: odd pixels are covered twice per axis
    assert interior[:2, :2].tolist() == [[1.0, 2.0], [2.0, 4.0]]
    assert checkerboard_metrics(interior[None], 2).tile_contrast == pytest.approx(16.0)


def test_photo_patches_shape_and_range():
    x = photo_patches(size=16, downscale=8, step=16, photos=["astronaut"])
    assert x.shape == (2 * 16, 3, 16, 16)
    assert x.min() >= -1 and x.max() <= 1
    torch.testing.assert_close(x[16:], x[:16].flip(-1))


def test_tiny_gan_run_is_seeded_and_measured():
    data = photo_patches(size=32, downscale=8, step=16, photos=["astronaut"])
    settings = GanSettings(steps=2, batch=4, eval_every=1, eval_samples=4, g_width=8, d_width=4, seed=1)
    a, _ = train_gan(settings, data, progress=False)
    b, _ = train_gan(settings, data, progress=False)
    assert a.steps == [0, 1, 2] and len(a.output_metrics) == len(a.gradient_metrics) == 3
    assert len(a.d_loss) == 2
    assert a.to_dict() == b.to_dict()


@pytest.mark.parametrize("bad, match", [
    (GanSettings(first_layer="stride3"), "unknown first layer 'stride3'; valid: stride2, stride2-k3, conv\\+pool"),
    (GanSettings(generator="deconv9"), "unknown upsampling 'deconv9'"),
    (GanSettings(steps=0), "steps must be a positive integer"),
    (GanSettings(batch=1), "batch must be a positive integer \\(batch sizes >= 2\\)"),
])
def test_bad_gan_settings_fail_before_training(bad, match):
    with pytest.raises(GradvizError, match=match):
        train_gan(bad, torch.zeros(4, 3, 32, 32), progress=False)


def test_first_layers_registry_keeps_the_names_and_documents_them():
    assert list(FIRST_LAYERS) == ["stride2", "stride2-k3", "conv+pool", "conv+maxpool"]
    assert all(FIRST_LAYERS.describe(name) for name in FIRST_LAYERS)
    with pytest.raises(GradvizError, match="unknown first layer 'pool'; valid: stride2, stride2-k3"):
        first_layer("pool", 3, 4)
    assert describe_optimiser() == "Adam 2e-4, betas 0.5/0.999, non-saturating loss"


def test_measure_discriminator_is_seeded_and_leaves_the_global_random_state_alone():
    images = photo_patches(size=16, downscale=8, step=16, photos=["astronaut"])[:4]
    state = torch.random.get_rng_state()
    a = measure_discriminator("stride2", images, seed=2, width=4)
    assert torch.equal(state, torch.random.get_rng_state())
    torch.manual_seed(99)
    b = measure_discriminator("stride2", images, seed=2, width=4)
    assert torch.equal(a.gradient, b.gradient) and a.metrics.to_dict() == b.metrics.to_dict()
    assert a.metrics.to_dict() == checkerboard_metrics(a.gradient, PERIOD).to_dict()


def test_cli_discriminator(tmp_path, capsys):
    out = tmp_path / "disc"
    assert main(["discriminator", "--first-layer", "stride2,conv+pool", "--patches", "4", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [".gradviz.json", "gradients.png", "metrics.json"]
    written = json.loads((out / "metrics.json").read_text())
    images = pick_patches(4, 0)
    assert written == {f: json.loads(json.dumps(measure_discriminator(f, images, seed=0).metrics.to_dict()))
                       for f in ("stride2", "conv+pool")}
    assert (out / "gradients.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["discriminator", "--first-layer", "stride2,pool", "--out", str(tmp_path / "bad")]) == 2
    assert "unknown first layer 'pool'; valid: stride2" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
