"""DCGAN-style generators with configurable upsampling, and their checkerboards at initialisation.

A design string is ``<upsample>[-last<n>][+final<m>]``:

- ``deconv3``, ``deconv4``, ``deconv5``: every upsampling block is a transposed convolution of
  kernel k, stride 2 (uneven overlap unless 2 divides k);
- ``nearest``, ``bilinear``: resize by 2, then a 3x3 stride-1 convolution (resize-convolution);
- ``subpixel``: a 3x3 convolution to 4x the channels, then pixel shuffle; ``subpixel-icnr``
  initialises it with ICNR (the 4 sub-pixel kernels equal), so at init it is nearest resize-conv;
- ``-last1`` / ``-last2`` (only after ``deconvK``): transposed convolution only in the last one or
  two blocks, nearest resize-convolution before;
- ``+final<m>``: a final stride-1 m x m convolution after the last upsampling block.

The generator maps ``z`` (``latent`` numbers) through a linear layer to ``4 x 4`` features, then
``blocks`` upsampling blocks (each doubling the size, halving the channels, BatchNorm + ReLU), and
``tanh``; outputs are ``(3, 4 * 2**blocks, 4 * 2**blocks)``. Weights use the DCGAN init N(0, 0.02).
The metrics of the outputs use the period ``S = 2**blocks``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn
from tqdm import tqdm

from gradviz.errors import GradvizError, unknown
from gradviz.spectrum import CheckerboardMetrics, SpectrumAccumulator

__all__ = [
    "DESIGN_EXAMPLES",
    "GeneratorDesign",
    "Generator",
    "ResizeConv",
    "SubPixelConv",
    "GeneratorResult",
    "measure_generator",
    "measure_generators",
    "parse_design",
    "plot_samples",
    "sample_images",
    "upsampling_block",
]

UPSAMPLERS = ["deconv3", "deconv4", "deconv5", "nearest", "bilinear", "subpixel", "subpixel-icnr"]
DESIGN_EXAMPLES = UPSAMPLERS + ["deconv3-last1", "deconv4-last2", "deconv4+final3", "nearest+final3"]
_DESIGN = re.compile(r"^(?P<up>[a-z0-9-]+?)(?:-last(?P<last>\d+))?(?:\+final(?P<final>\d+))?$")


@dataclass(frozen=True)
class GeneratorDesign:
    """How a generator upsamples: ``upsample`` in every block, or deconv only in the last ``deconv_last``."""

    upsample: str
    deconv_last: int = 0  # 0: every block uses ``upsample``
    final_kernel: int = 0  # 0: no final stride-1 layer

    @property
    def name(self) -> str:
        last = f"-last{self.deconv_last}" if self.deconv_last else ""
        final = f"+final{self.final_kernel}" if self.final_kernel else ""
        return f"{self.upsample}{last}{final}"

    def block_kinds(self, blocks: int) -> list[str]:
        """The upsampler of each block, first to last."""
        if not self.deconv_last:
            return [self.upsample] * blocks
        n = min(self.deconv_last, blocks)
        return ["nearest"] * (blocks - n) + [self.upsample] * n


def parse_design(text: str) -> GeneratorDesign:
    """Parse ``<upsample>[-last<n>][+final<m>]``; raise :class:`GradvizError` naming what is valid."""
    match = _DESIGN.match(text.strip())
    valid = "<upsample>[-last1|-last2][+final<m>] with upsample one of " + ", ".join(UPSAMPLERS)
    if not match:
        raise GradvizError(f"invalid generator design {text!r}; valid: {valid}")
    up, last, final = match["up"], match["last"], match["final"]
    if up not in UPSAMPLERS:
        raise unknown("upsampling", up, UPSAMPLERS)
    if last is not None:
        if not up.startswith("deconv"):
            raise GradvizError(f"-last<n> needs a deconv upsampler, got {text!r}; valid: deconv3-last1, deconv4-last2, ...")
        if int(last) not in (1, 2):
            raise GradvizError(f"-last{last} in {text!r}: valid: -last1, -last2")
    if final is not None and int(final) < 1:
        raise GradvizError(f"+final{final} in {text!r}: the final kernel size must be >= 1; valid: +final1, +final3, ...")
    return GeneratorDesign(up, int(last or 0), int(final or 0))


class ResizeConv(nn.Module):
    """Resize by 2 (``nearest`` or ``bilinear``), then a 3x3 stride-1 convolution."""

    def __init__(self, c_in: int, c_out: int, mode: str = "nearest"):
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode=mode)
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1, padding_mode="replicate")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.up(x))


class SubPixelConv(nn.Module):
    """3x3 convolution to ``4 c_out`` channels, then pixel shuffle by 2 (sub-pixel convolution)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, 4 * c_out, 3, padding=1, padding_mode="replicate")
        self.shuffle = nn.PixelShuffle(2)

    def icnr_(self) -> SubPixelConv:
        """ICNR: copy one kernel to the 4 sub-pixel positions (channel ``c*4 + i`` -> output ``c``)."""
        with torch.no_grad():
            w, b = self.conv.weight, self.conv.bias
            w.copy_(w[::4].repeat_interleave(4, dim=0))
            b.copy_(b[::4].repeat_interleave(4, dim=0))
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.conv(x))


def upsampling_block(kind: str, c_in: int, c_out: int) -> nn.Module:
    """One x2 upsampling layer of the given kind (see the module docstring)."""
    if kind.startswith("deconv"):
        k = int(kind[len("deconv"):])
        pad = (k - 1) // 2
        return nn.ConvTranspose2d(c_in, c_out, k, stride=2, padding=pad, output_padding=2 - k + 2 * pad)
    if kind in ("nearest", "bilinear"):
        return ResizeConv(c_in, c_out, kind)
    if kind.startswith("subpixel"):
        return SubPixelConv(c_in, c_out)
    raise unknown("upsampling", kind, UPSAMPLERS)


def _dcgan_init(module: nn.Module) -> None:
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class Generator(nn.Module):
    """z -> linear -> (width, 4, 4) -> ``blocks`` x2 upsampling blocks -> tanh image."""

    def __init__(self, design: GeneratorDesign, latent: int = 64, width: int = 128, blocks: int = 3,
                 channels: int = 3):
        super().__init__()
        if blocks < 1 or width < 2**blocks:
            raise GradvizError(f"need blocks >= 1 and width >= 2**blocks, got blocks={blocks}, width={width}")
        self.design, self.latent, self.blocks = design, latent, blocks
        self.project = nn.Sequential(nn.Linear(latent, width * 16), nn.Unflatten(1, (width, 4, 4)),
                                     nn.BatchNorm2d(width), nn.ReLU())
        layers: list[nn.Module] = []
        c = width
        kinds = design.block_kinds(blocks)
        for i, kind in enumerate(kinds):
            last = i == blocks - 1 and not design.final_kernel
            c_out = channels if last else c // 2
            layers.append(upsampling_block(kind, c, c_out))
            if not last:
                layers += [nn.BatchNorm2d(c_out), nn.ReLU()]
            c = c_out
        if design.final_kernel:
            layers.append(nn.Conv2d(c, channels, design.final_kernel, padding="same", padding_mode="replicate"))
        self.body = nn.Sequential(*layers)
        self.apply(_dcgan_init)
        if design.upsample == "subpixel-icnr":
            for m in self.modules():
                if isinstance(m, SubPixelConv):
                    m.icnr_()

    @property
    def period(self) -> int:
        return 2**self.blocks

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.body(self.project(z)))


def sample_images(gen: Generator, n: int, seed: int = 0, batch: int = 64) -> torch.Tensor:
    """``n`` samples from ``z ~ N(0, I)`` drawn with a seeded generator; BatchNorm uses batch statistics
    (as in DCGAN training), without updating the running averages."""
    device = next(gen.parameters()).device
    rng = torch.Generator(device="cpu").manual_seed(seed)
    z = torch.randn(n, gen.latent, generator=rng).to(device)
    was_training = gen.training
    gen.train()
    saved = {k: v.clone() for k, v in gen.state_dict().items()}
    try:
        with torch.no_grad():
            out = torch.cat([gen(zb) for zb in z.split(batch)])
    finally:
        gen.load_state_dict(saved)
        gen.train(was_training)
    return out


@dataclass
class GeneratorResult:
    """Checkerboard metrics of one design's outputs at initialisation."""

    design: str
    seed: int
    samples: int
    image_size: int
    metrics: CheckerboardMetrics

    def to_dict(self) -> dict:
        return {"design": self.design, "seed": self.seed, "samples": self.samples,
                "image_size": self.image_size, "metrics": self.metrics.to_dict()}


def measure_generator(design: GeneratorDesign | str, samples: int = 64, seed: int = 0, blocks: int = 3,
                      width: int = 128, device: str = "cpu") -> tuple[GeneratorResult, torch.Tensor]:
    """Build the design with ``torch.manual_seed(seed)``, draw ``samples`` outputs and measure them
    with period ``2**blocks``. Returns the result and the images (for a sample grid)."""
    if isinstance(design, str):
        design = parse_design(design)
    if samples < 2:
        raise GradvizError(f"samples must be >= 2 (BatchNorm needs a batch), got {samples}")
    torch.manual_seed(seed)
    gen = Generator(design, width=width, blocks=blocks).to(device)
    images = sample_images(gen, samples, seed=seed + 1)
    acc = SpectrumAccumulator(gen.period)
    acc.add(images)
    return GeneratorResult(design.name, seed, samples, images.shape[-1], acc.metrics()), images


def measure_generators(designs: list[str], samples: int = 64, seed: int = 0, blocks: int = 3,
                       width: int = 128) -> list[tuple[GeneratorResult, torch.Tensor]]:
    """:func:`measure_generator` for each design (parsed first, so a bad name fails before any work)."""
    parsed = [parse_design(d) for d in designs]
    return [measure_generator(d, samples, seed, blocks, width) for d in tqdm(parsed, desc="generators", disable=None)]


def plot_samples(results: list[tuple[GeneratorResult, torch.Tensor]], path, n_show: int = 6, dpi: int = 90,
                 title: str = "generator samples at initialisation") -> None:
    """A row of samples per design, each image stretched to its own min..max (outputs at init are faint)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = len(results)
    fig, axes = plt.subplots(rows, n_show, figsize=(1.6 * n_show, 1.75 * rows + 0.3), squeeze=False)
    for r, (res, images) in enumerate(results):
        for i in range(n_show):
            ax = axes[r, i]
            img = images[i % len(images)].float()
            img = (img - img.min()) / (img.max() - img.min() + 1e-12)
            ax.imshow(img.permute(1, 2, 0).cpu().numpy(), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        m = res.metrics
        axes[r, 0].set_ylabel(res.design, fontsize=8)
        axes[r, 0].set_title(f"lattice excess {m.lattice_excess:.3g} (p {m.p_value:.2g}), share {m.lattice_fraction:.3f}",
                             fontsize=7, loc="left")
    fig.suptitle(f"{title} (each image min-max stretched)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
