"""Discriminators whose first layer is strided or not, their input gradients, and a short GAN run.

The seed's claim: when the generator is neither biased for nor against checkerboards
(resize-convolution), a stride-2 first layer in the discriminator puts period-2 artifacts into the
gradient it sends the generator, and so into the generator's images.

Discriminator (DCGAN-style, for 3 x 32 x 32 images): a first layer that halves the size, then
``conv 4x4 stride 2`` twice (LeakyReLU 0.2 after each), then a linear layer to one logit. First
layers (``FIRST_LAYERS``):

- ``stride2``: conv 4x4 stride 2 (DCGAN; kernel divisible by stride: even overlap);
- ``stride2-k3``: conv 3x3 stride 2 (uneven overlap);
- ``conv+pool``: conv 3x3 stride 1, LeakyReLU, 2x2 average pooling;
- ``conv+maxpool``: conv 3x3 stride 1, LeakyReLU, 2x2 max pooling.

Data: RGB photographs bundled with scikit-image, averaged down by ``downscale`` and cut into
32 x 32 patches (plus mirror images), scaled to [-1, 1].
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from gradviz.errors import GradvizError, unknown
from gradviz.generators import Generator, parse_design, sample_images
from gradviz.spectrum import CheckerboardMetrics, checkerboard_metrics

__all__ = [
    "FIRST_LAYERS",
    "Discriminator",
    "GanSettings",
    "GanResult",
    "first_layer",
    "input_gradient",
    "measure_discriminator",
    "photo_patches",
    "pick_patches",
    "plot_gradients",
    "plot_training",
    "train_gan",
]

FIRST_LAYERS = ["stride2", "stride2-k3", "conv+pool", "conv+maxpool"]
PHOTOS = ["astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry"]
PERIOD = 8  # the discriminator's total downsampling: 3 halvings


def first_layer(kind: str, c_in: int, c_out: int) -> nn.Sequential:
    """The discriminator's first layer (halves the size), LeakyReLU included."""
    act = nn.LeakyReLU(0.2)
    if kind == "stride2":
        return nn.Sequential(nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), act)
    if kind == "stride2-k3":
        return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), act)
    if kind == "conv+pool":
        return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), act, nn.AvgPool2d(2))
    if kind == "conv+maxpool":
        return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), act, nn.MaxPool2d(2))
    raise unknown("first layer", kind, FIRST_LAYERS)


class Discriminator(nn.Module):
    """first layer -> (conv 4x4 s2, LeakyReLU) x 2 -> linear logit, for 32 x 32 inputs."""

    def __init__(self, first: str, width: int = 32, channels: int = 3, size: int = 32):
        super().__init__()
        if size % PERIOD:
            raise GradvizError(f"image size must be a multiple of {PERIOD}, got {size}")
        self.first = first_layer(first, channels, width)
        self.rest = nn.Sequential(
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * width, 4 * width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Flatten(), nn.Linear(4 * width * (size // PERIOD) ** 2, 1),
        )
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(m.weight, 0.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rest(self.first(x)).flatten()


def photo_patches(size: int = 32, downscale: int = 4, step: int = 8, photos: list[str] | None = None) -> torch.Tensor:
    """(N, 3, size, size) patches in [-1, 1] from scikit-image's bundled RGB photos.

    Each photo is averaged over ``downscale x downscale`` blocks, cut into patches every ``step``
    pixels, and mirrored left-right.
    """
    import skimage.data

    out = []
    for name in photos or PHOTOS:
        img = torch.from_numpy(getattr(skimage.data, name)()[..., :3].copy()).permute(2, 0, 1).float() / 127.5 - 1
        img = F.avg_pool2d(img[None], downscale)
        p = img.unfold(2, size, step).unfold(3, size, step)  # (1, 3, nh, nw, size, size)
        out.append(p.permute(0, 2, 3, 1, 4, 5).reshape(-1, 3, size, size))
    x = torch.cat(out)
    return torch.cat([x, x.flip(-1)])


def pick_patches(n: int, seed: int = 0) -> torch.Tensor:
    """``n`` of the :func:`photo_patches`, drawn without replacement with a seeded generator."""
    data = photo_patches()
    if not 1 <= n <= len(data):
        raise GradvizError(f"number of patches must be between 1 and {len(data)}, got {n}")
    idx = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:n]
    return data[idx]


def input_gradient(disc: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Signed gradient of the summed logits with respect to the input images (one per image)."""
    x = images.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(disc(x).sum(), x)  # input only: no parameter gradients
    return grad.detach()


def measure_discriminator(first: str, images: torch.Tensor, seed: int = 0, width: int = 32) -> tuple[CheckerboardMetrics, torch.Tensor]:
    """Input-gradient metrics (period 8) of a fresh discriminator (``torch.manual_seed(seed)``)."""
    torch.manual_seed(seed)
    disc = Discriminator(first, width=width, size=images.shape[-1])
    grad = input_gradient(disc, images)
    return checkerboard_metrics(grad, PERIOD), grad


@dataclass
class GanSettings:
    """A short non-saturating GAN run (Adam 2e-4, betas 0.5/0.999)."""

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
        if self.first_layer not in FIRST_LAYERS:
            raise unknown("first layer", self.first_layer, FIRST_LAYERS)
        parse_design(self.generator)
        for name in ("steps", "batch", "eval_every", "eval_samples"):
            if getattr(self, name) < (2 if name in ("batch", "eval_samples") else 1):
                raise GradvizError(f"{name.replace('_', '-')} must be a positive integer (batch sizes >= 2)")


@dataclass
class GanResult:
    """Generator-output metrics (and the discriminator's gradient on them) along training."""

    settings: GanSettings
    steps: list[int] = field(default_factory=list)
    output_metrics: list[CheckerboardMetrics] = field(default_factory=list)
    gradient_metrics: list[CheckerboardMetrics] = field(default_factory=list)
    d_loss: list[float] = field(default_factory=list)
    g_loss: list[float] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "settings": asdict(self.settings),
            "steps": self.steps,
            "output_metrics": [m.to_dict() for m in self.output_metrics],
            "gradient_metrics": [m.to_dict() for m in self.gradient_metrics],
            "d_loss": self.d_loss,
            "g_loss": self.g_loss,
        }


def train_gan(settings: GanSettings, data: torch.Tensor, progress: bool = True) -> tuple[GanResult, Generator]:
    """Train G (resize-conv by default) against D with the chosen first layer; every ``eval_every``
    steps (and at step 0) measure G's outputs for a fixed latent batch, and D's input gradient on them."""
    settings.check()
    torch.manual_seed(settings.seed)
    rng = torch.Generator().manual_seed(settings.seed)
    gen = Generator(parse_design(settings.generator), width=settings.g_width, blocks=3)
    disc = Discriminator(settings.first_layer, width=settings.d_width, size=data.shape[-1])
    opt_g = torch.optim.Adam(gen.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=2e-4, betas=(0.5, 0.999))
    bce = nn.BCEWithLogitsLoss()
    result = GanResult(settings)

    def evaluate(step: int) -> None:
        fake = sample_images(gen, settings.eval_samples, seed=settings.seed + 10_000)
        result.steps.append(step)
        result.output_metrics.append(checkerboard_metrics(fake, gen.period))
        result.gradient_metrics.append(checkerboard_metrics(input_gradient(disc, fake), PERIOD))

    evaluate(0)
    ones, zeros = torch.ones(settings.batch), torch.zeros(settings.batch)
    for step in tqdm(range(1, settings.steps + 1), desc=f"gan D={settings.first_layer}", disable=not progress):
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


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_gradients(grads: dict[str, torch.Tensor], path, n_show: int = 4, dpi: int = 90) -> None:
    """One row per first layer: a few signed input gradients (channel sum, each scaled to its own
    max |g|) and the mean energy tile of sum_c g_c^2 over 8 x 8 phases."""
    plt = _pyplot()
    rows = len(grads)
    fig, axes = plt.subplots(rows, n_show + 1, figsize=(1.9 * (n_show + 1), 2.0 * rows + 0.3), squeeze=False)
    for r, (name, g) in enumerate(grads.items()):
        for i in range(n_show):
            ax = axes[r, i]
            gi = g[i % len(g)].sum(0)
            lim = float(gi.abs().max()) or 1.0
            ax.imshow(gi.numpy(), cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_ylabel(name, fontsize=9)
        m = checkerboard_metrics(g, PERIOD)
        ax = axes[r, n_show]
        ax.imshow(m.tile, cmap="viridis", interpolation="nearest")
        ax.set_title(f"pooled tile max/min {m.tile_contrast:.2f}\n(description; lines: {'grid' if m.grid_detected else 'none'})", fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("discriminator input gradients at initialisation (signed, channel sum)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


def plot_training(results: dict[str, list[GanResult]], path, dpi: int = 90) -> None:
    """Against training step: the generator outputs' period-2 line excess and lattice excess over the
    local background, and the period-2 excess of the discriminator's gradient on them (1 = no grid);
    one colour per first layer, one line per seed."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    panels = [
        ("G outputs: period-2 line excess", lambda r: [m.octave_excess[0] for m in r.output_metrics]),
        ("G outputs: lattice excess (all periods)", lambda r: [m.lattice_excess for m in r.output_metrics]),
        ("D gradient on G outputs: period-2 line excess", lambda r: [m.octave_excess[0] for m in r.gradient_metrics]),
    ]
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (title, get) in zip(axes, panels):
        for c, (name, runs) in enumerate(results.items()):
            for j, run in enumerate(runs):
                ax.plot(run.steps, get(run), color=colours[c % len(colours)], alpha=0.6, lw=1,
                        label=f"D first layer {name}" if j == 0 else None)
        ax.axhline(1.0, color="grey", ls=":", label="no grid")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("training step")
        ax.set_yscale("log")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
