"""Transforms: the roll is undone exactly, ranges and sizes are as documented, a seed fixes every draw."""

import pytest
import torch
from torch import nn

from gradviz.errors import GradvizError
from gradviz.optvis.transforms import (
    Compose,
    Pad,
    RandomCrop,
    RandomRoll,
    RandomRotate,
    RandomScale,
    crop,
    lucid_transforms,
    rescale,
    roll,
    rotate,
    unroll,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_unroll_inverts_roll_exactly():
    x = torch.randn(2, 3, 10, 12, generator=_gen())
    for shift in [(0, 0), (3, -5), (-10, 12), (7, 25)]:
        assert torch.equal(unroll(roll(x, shift), shift), x)
    assert roll(x, (1, 0))[0, 0, 1, 0] == x[0, 0, 0, 0]  # y[i, j] = x[i - dy, j - dx]


def test_gradient_through_roll_is_the_unrolled_gradient():
    """DeepDream rolls, steps and rolls back; differentiating f(roll(x)) gives exactly that update."""
    conv = nn.Conv2d(3, 4, 3, stride=2, padding=1).requires_grad_(False)
    torch.nn.init.normal_(conv.weight, generator=_gen(1))
    x = torch.rand(1, 3, 16, 16, generator=_gen(2), requires_grad=True)
    shift = (3, -2)
    (g_through,) = torch.autograd.grad(conv(roll(x, shift)).square().sum(), x)
    y = roll(x.detach(), shift).requires_grad_(True)
    (g_at_rolled,) = torch.autograd.grad(conv(y).square().sum(), y)
    assert torch.equal(g_through, unroll(g_at_rolled, shift))


def test_random_roll_covers_exactly_its_range():
    jitter, gen = RandomRoll(2), _gen()
    x = torch.zeros(1, 1, 8, 8)
    seen = set()
    for _ in range(300):
        jitter(x, gen)
        seen.add(jitter.last_shift)
    assert seen == {(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)}


def test_zero_jitter_is_identity():
    x = torch.rand(1, 3, 8, 8, generator=_gen())
    assert RandomRoll(0)(x, _gen()) is x


def test_pad_and_crop_sizes_and_offsets():
    x = torch.arange(36.0).view(1, 1, 6, 6)
    padded = Pad(2, fill=-1.0)(x, _gen())
    assert padded.shape[-2:] == (10, 10) and padded[0, 0, 0, 0] == -1.0
    crop = RandomCrop(4)
    for seed in range(20):
        out = crop(padded, _gen(seed))
        assert out.shape[-2:] == (6, 6)
        # the crop is a window of the padded image at an offset in [0, 4]
        hits = [(oy, ox) for oy in range(5) for ox in range(5) if torch.equal(padded[..., oy : oy + 6, ox : ox + 6], out)]
        assert hits


def test_crop_larger_than_image_is_refused():
    with pytest.raises(GradvizError, match="crop jitter"):
        RandomCrop(8)(torch.zeros(1, 3, 8, 8), _gen())


def test_scale_and_rotate():
    x = torch.rand(1, 3, 20, 20, generator=_gen())
    assert torch.equal(RandomScale([1.0])(x, _gen()), x)
    assert RandomScale([1.1])(x, _gen()).shape[-2:] == (22, 22)
    assert torch.equal(RandomRotate([0])(x, _gen()), x)
    # a quarter turn of a square image moves pixels exactly onto the grid
    quarter = RandomRotate([90])(x, _gen())
    assert any(torch.allclose(quarter, torch.rot90(x, k, dims=(-2, -1)), atol=1e-5) for k in (1, 3))


def test_same_seed_same_transform():
    x = torch.rand(2, 3, 32, 32, generator=_gen())
    chain = Compose([RandomRoll(4), lucid_transforms()])
    a, b, c = chain(x, _gen(5)), chain(x, _gen(5)), chain(x, _gen(6))
    assert torch.equal(a, b)
    assert a.shape != c.shape or not torch.equal(a, c)


@pytest.mark.parametrize(
    "transform,core",
    [(RandomRoll(3), roll), (RandomCrop(5), lambda x, o: crop(x, o, 5)),
     (RandomScale([0.8, 1.0, 1.25]), rescale), (RandomRotate([-10, 0, 10]), rotate)],
)
def test_a_transform_is_its_core_applied_to_its_draw(transform, core):
    """The random draw and the deterministic core are apart: t(x, gen) == core(x, t.draw(gen)),
    and both consume the generator alike."""
    x = torch.rand(2, 3, 16, 16, generator=_gen())
    for seed in range(5):
        g1, g2 = _gen(seed), _gen(seed)
        assert torch.equal(transform(x, g1), core(x, transform.draw(g2)))
        assert torch.equal(g1.get_state(), g2.get_state())
