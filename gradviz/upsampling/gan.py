"""A short GAN run: does a stride-2 discriminator push a grid into a resize-convolution generator?

The generator (:class:`~gradviz.upsampling.generators.Generator`, ``G_BLOCKS`` blocks: 32 x 32
outputs of period 8, the discriminator's ``PERIOD``) and the discriminator
(:class:`~gradviz.upsampling.discriminators.Discriminator`) are trained with the non-saturating
loss and Adam (``GAN_LR``, ``GAN_BETAS``) on photo patches; along training, the generator's
outputs for a fixed latent batch and the discriminator's input gradient on them are measured.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm

from gradviz.errors import GradvizError
from gradviz.spectrum import CheckerboardMetrics, checkerboard_metrics
from gradviz.upsampling.dcgan import seeded_construction
from gradviz.upsampling.discriminators import FIRST_LAYERS, PERIOD, Discriminator, discriminator_input_gradient
from gradviz.upsampling.generators import Generator, parse_design, sample_images

__all__ = [
    "GAN_BETAS",
    "GAN_LR",
    "EVAL_SEED_OFFSET",
    "G_BLOCKS",
    "GanResult",
    "GanSettings",
    "describe_optimiser",
    "train_gan",
]

# Adam's learning rate and betas, for both networks (DCGAN).
GAN_LR = 2e-4
GAN_BETAS = (0.5, 0.999)
# Upsampling blocks of the generator: 4 * 2**3 = 32 pixel outputs of period 8 (= PERIOD).
G_BLOCKS = 3
# The fixed latent batch of the evaluations is drawn with seed ``settings.seed + EVAL_SEED_OFFSET``.
EVAL_SEED_OFFSET = 10_000


def describe_optimiser() -> str:
    """The optimiser and loss in words, as the study records them.

    Example:
        >>> describe_optimiser()
        'Adam 2e-4, betas 0.5/0.999, non-saturating loss'
    """
    mantissa, exponent = f"{GAN_LR:.0e}".split("e")
    return f"Adam {mantissa}e{int(exponent)}, betas {GAN_BETAS[0]:g}/{GAN_BETAS[1]:g}, non-saturating loss"


@dataclass
class GanSettings:
    """A short non-saturating GAN run (Adam with ``GAN_LR`` and ``GAN_BETAS``, see :func:`describe_optimiser`).

    Args:
        first_layer: the discriminator's first layer, a name of ``FIRST_LAYERS``.
        generator: the generator's design string.
        steps: training steps (one discriminator and one generator update each).
        batch: real and fake images per step (>= 2).
        eval_every: steps between evaluations (step 0 and the last step are evaluated too).
        eval_samples: generator outputs per evaluation (>= 2).
        g_width: the generator's width.
        d_width: the discriminator's width.
        seed: fixes both networks' weights and the data order.

    Example:
        >>> GanSettings(steps=0).check()
        Traceback (most recent call last):
        ...
        gradviz.errors.GradvizError: steps must be a positive integer (batch sizes >= 2)
    """

    first_layer: str = "stride2"
    generator: str = "nearest"
    steps: int = 600
    batch: int = 32
    eval_every: int = 100
    eval_samples: int = 64
    g_width: int = 64
    d_width: int = 32
    seed: int = 0

    def check(self) -> None:
        """Raise :class:`~gradviz.errors.GradvizError` (naming what is valid) for an invalid setting."""
        FIRST_LAYERS[self.first_layer]  # an unknown name raises the registry's one-line error
        parse_design(self.generator)
        for name in ("steps", "batch", "eval_every", "eval_samples"):
            if getattr(self, name) < (2 if name in ("batch", "eval_samples") else 1):
                raise GradvizError(f"{name.replace('_', '-')} must be a positive integer (batch sizes >= 2)")


@dataclass
class GanResult:
    """Generator-output metrics (and the discriminator's gradient on them) along training.

    Args:
        settings: the run's settings.
        steps: the evaluated steps.
        output_metrics: per evaluated step, the generator outputs' metrics (period ``2**G_BLOCKS``).
        gradient_metrics: per evaluated step, the metrics of the discriminator's input gradient on
            those outputs (period ``PERIOD``).
        d_loss: the discriminator's loss at each evaluated step after 0.
        g_loss: the generator's loss at each evaluated step after 0.
    """

    settings: GanSettings
    steps: list[int] = field(default_factory=list)
    output_metrics: list[CheckerboardMetrics] = field(default_factory=list)
    gradient_metrics: list[CheckerboardMetrics] = field(default_factory=list)
    d_loss: list[float] = field(default_factory=list)
    g_loss: list[float] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-ready: the settings, the steps, the metrics' own ``to_dict`` and the losses."""
        return {
            "settings": asdict(self.settings),
            "steps": self.steps,
            "output_metrics": [m.to_dict() for m in self.output_metrics],
            "gradient_metrics": [m.to_dict() for m in self.gradient_metrics],
            "d_loss": self.d_loss,
            "g_loss": self.g_loss,
        }


def train_gan(settings: GanSettings, data: torch.Tensor, progress: bool | None = None) -> tuple[GanResult, Generator]:
    """Train G (resize-conv by default) against D with the chosen first layer.

    Both networks are built as after ``torch.manual_seed(settings.seed)`` (inside
    :func:`gradviz.upsampling.dcgan.seeded_construction`: the caller's random state is untouched);
    the data order and the latents come from a local generator with the same seed. At step 0, every
    ``eval_every`` steps and at the last step, G's outputs for a fixed latent batch are measured,
    and D's input gradient on them.

    Args:
        settings: the run (checked first).
        data: the real images, in [-1, 1].
        progress: show a progress bar (None: only on a terminal).

    Returns:
        ``(result, generator)``: the measurements, and the trained generator.

    Raises:
        GradvizError: invalid settings.

    Shape:
        ``data`` ``(N, 3, 32, 32)`` (the generator's output size).

    Example:
        A run of 100 steps of batch 8 on ``data = photo_patches()``
        (:func:`gradviz.upsampling.discriminators.photo_patches`) with small networks, measured at
        steps 0, 50 and 100, is ``train_gan(GanSettings(steps=100, batch=8, eval_every=50, g_width=16,
        d_width=8), data)`` (tests/test_gan.py runs a tiny one). Settings are checked before any work:

        >>> train_gan(GanSettings(first_layer="stride3"), torch.zeros(4, 3, 32, 32))
        Traceback (most recent call last):
        ...
        gradviz.errors.GradvizError: unknown first layer 'stride3'; valid: stride2, stride2-k3, conv+pool, conv+maxpool
    """
    settings.check()
    rng = torch.Generator().manual_seed(settings.seed)
    with seeded_construction(settings.seed):
        gen = Generator(parse_design(settings.generator), width=settings.g_width, blocks=G_BLOCKS)
        disc = Discriminator(settings.first_layer, width=settings.d_width, size=data.shape[-1])
    opt_g = torch.optim.Adam(gen.parameters(), lr=GAN_LR, betas=GAN_BETAS)
    opt_d = torch.optim.Adam(disc.parameters(), lr=GAN_LR, betas=GAN_BETAS)
    bce = nn.BCEWithLogitsLoss()
    result = GanResult(settings)

    def evaluate(step: int) -> None:
        fake = sample_images(gen, settings.eval_samples, seed=settings.seed + EVAL_SEED_OFFSET)
        result.steps.append(step)
        result.output_metrics.append(checkerboard_metrics(fake, gen.period))
        result.gradient_metrics.append(checkerboard_metrics(discriminator_input_gradient(disc, fake), PERIOD))

    evaluate(0)
    ones, zeros = torch.ones(settings.batch), torch.zeros(settings.batch)
    bar = tqdm(range(1, settings.steps + 1), desc=f"gan D={settings.first_layer}",
               disable=None if progress is None else not progress)
    for step in bar:
        real = data[torch.randint(len(data), (settings.batch,), generator=rng)]
        z = torch.randn(settings.batch, gen.latent, generator=rng)
        fake = gen(z)
        d_loss = bce(disc(real), ones) + bce(disc(fake.detach()), zeros)
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        g_loss = bce(disc(fake), ones)
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        if step % settings.eval_every == 0 or step == settings.steps:
            result.d_loss.append(d_loss.item())
            result.g_loss.append(g_loss.item())
            evaluate(step)
    return result, gen
