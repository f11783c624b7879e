"""DCGAN-style generators with configurable upsampling, and their checkerboards at initialisation.

A design string is ``<upsample>[-last<n>][+final<m>]``:

- ``<upsample>``: a name of :data:`gradviz.upsampling.upsamplers.UPSAMPLERS` (``deconv3``,
  ``deconv4``, ``deconv5``, ``nearest``, ``bilinear``, ``subpixel``, ``subpixel-icnr``), used in
  every upsampling block;
- ``-last1`` / ``-last2`` (only after ``deconvK``): transposed convolution only in the last one or
  two blocks, nearest resize-convolution before;
- ``+final<m>``: a final stride-1 m x m convolution after the last upsampling block.

The generator maps ``z`` (``latent`` numbers) through a linear layer to ``4 x 4`` features, then
``blocks`` upsampling blocks (each doubling the size, halving the channels, BatchNorm + ReLU), and
``tanh``; outputs are ``(3, 4 * 2**blocks, 4 * 2**blocks)``. Weights use the DCGAN init
(:func:`gradviz.upsampling.dcgan.dcgan_init_`). The metrics of the outputs use the period
``S = 2**blocks``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from gradviz.errors import GradvizError
from gradviz.spectrum import CheckerboardMetrics, SpectrumAccumulator
from gradviz.upsampling.dcgan import dcgan_init_, seeded_construction
from gradviz.upsampling.upsamplers import UPSAMPLERS, SubPixelConv, upsampling_block

__all__ = [
    "DESIGN_EXAMPLES",
    "LATENT",
    "SAMPLE_BATCH",
    "Generator",
    "GeneratorDesign",
    "GeneratorResult",
    "measure_generator",
    "measure_generators",
    "parse_design",
    "sample_images",
]

DESIGN_EXAMPLES = list(UPSAMPLERS) + ["deconv3-last1", "deconv4-last2", "deconv4+final3", "nearest+final3"]
_DESIGN = re.compile(r"^(?P<up>[a-z0-9-]+?)(?:-last(?P<last>\d+))?(?:\+final(?P<final>\d+))?$")
# Length of the latent vector z.
LATENT = 64
# Latent vectors per forward pass in :func:`sample_images`.
SAMPLE_BATCH = 64
# The upsampler of the blocks before the transposed convolutions of a ``-last<n>`` design.
BEFORE_DECONV = "nearest"


@dataclass(frozen=True)
class GeneratorDesign:
    """How a generator upsamples: ``upsample`` in every block, or deconv only in the last ``deconv_last``.

    Args:
        upsample: a name of ``UPSAMPLERS``.
        deconv_last: 0 (every block uses ``upsample``), or the number of last blocks that do.
        final_kernel: 0 (none), or the size of a final stride-1 convolution.

    Example:
        >>> d = GeneratorDesign("deconv3", deconv_last=1, final_kernel=3)
        >>> d.name, d.block_kinds(3)
        ('deconv3-last1+final3', ['nearest', 'nearest', 'deconv3'])
    """

    upsample: str
    deconv_last: int = 0  # 0: every block uses ``upsample``
    final_kernel: int = 0  # 0: no final stride-1 layer

    @property
    def name(self) -> str:
        """The design string (what :func:`parse_design` reads)."""
        last = f"-last{self.deconv_last}" if self.deconv_last else ""
        final = f"+final{self.final_kernel}" if self.final_kernel else ""
        return f"{self.upsample}{last}{final}"

    def block_kinds(self, blocks: int) -> list[str]:
        """The upsampler of each of ``blocks`` blocks, first to last."""
        if not self.deconv_last:
            return [self.upsample] * blocks
        n = min(self.deconv_last, blocks)
        return [BEFORE_DECONV] * (blocks - n) + [self.upsample] * n


def parse_design(text: str) -> GeneratorDesign:
    """Parse a design string ``<upsample>[-last<n>][+final<m>]`` (see the module docstring).

    Args:
        text: the design string.

    Returns:
        the design.

    Raises:
        GradvizError: the string is not a valid design; the message names what is valid.

    Example:
        >>> parse_design("deconv4-last2+final3")
        GeneratorDesign(upsample='deconv4', deconv_last=2, final_kernel=3)
        >>> parse_design("nearest-last1")
        Traceback (most recent call last):
        ...
        gradviz.errors.GradvizError: -last<n> needs a deconv upsampler, got 'nearest-last1'; valid: deconv3-last1, deconv4-last2, ...
    """
    match = _DESIGN.match(text.strip())
    valid = "<upsample>[-last1|-last2][+final<m>] with upsample one of " + ", ".join(UPSAMPLERS)
    if not match:
        raise GradvizError(f"invalid generator design {text!r}; valid: {valid}")
    up, last, final = match["up"], match["last"], match["final"]
    UPSAMPLERS[up]  # an unknown name raises the registry's one-line error
    if last is not None:
        if not up.startswith("deconv"):
            raise GradvizError(f"-last<n> needs a deconv upsampler, got {text!r}; valid: deconv3-last1, deconv4-last2, ...")
        if int(last) not in (1, 2):
            raise GradvizError(f"-last{last} in {text!r}: valid: -last1, -last2")
    if final is not None and int(final) < 1:
        raise GradvizError(f"+final{final} in {text!r}: the final kernel size must be >= 1; valid: +final1, +final3, ...")
    return GeneratorDesign(up, int(last or 0), int(final or 0))


class Generator(nn.Module):
    """z -> linear -> (width, 4, 4) -> ``blocks`` x2 upsampling blocks -> tanh image.

    Weights are drawn from torch's global generator (DCGAN init); build it inside
    :func:`gradviz.upsampling.dcgan.seeded_construction` to fix them.

    Args:
        design: how the blocks upsample.
        latent: length of z.
        width: channels after the linear layer; each block halves them (at least ``2**blocks``).
        blocks: upsampling blocks (>= 1).
        channels: channels of the image.

    Raises:
        GradvizError: ``blocks < 1`` or ``width < 2**blocks``.

    Shape:
        ``(B, latent)`` -> ``(B, channels, 4 * 2**blocks, 4 * 2**blocks)``, values in (-1, 1).

    Example:
        >>> gen = Generator(parse_design("nearest"), latent=8, width=8, blocks=2)
        >>> gen(torch.zeros(2, 8)).shape, gen.period
        (torch.Size([2, 3, 16, 16]), 4)
    """

    def __init__(self, design: GeneratorDesign, latent: int = LATENT, width: int = 128, blocks: int = 3,
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
        self.apply(dcgan_init_)
        for m in self.modules():  # the DCGAN init redrew the sub-pixel kernels: make them equal again
            if isinstance(m, SubPixelConv) and m.icnr:
                m.icnr_()

    @property
    def period(self) -> int:
        """The lattice period of the outputs, ``2**blocks``."""
        return 2**self.blocks

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.body(self.project(z)))


def sample_images(gen: Generator, n: int, seed: int = 0, batch: int = SAMPLE_BATCH) -> torch.Tensor:
    """``n`` samples from ``z ~ N(0, I)`` drawn with a seeded generator.

    BatchNorm uses batch statistics (as in DCGAN training), without updating the running averages;
    the generator's state and training flag are left as they were.

    Args:
        gen: the generator.
        n: number of samples.
        seed: seed of the latent vectors (a local ``torch.Generator``).
        batch: latent vectors per forward pass.

    Returns:
        the images, on the generator's device.

    Shape:
        ``(n, channels, 4 * 2**blocks, 4 * 2**blocks)``.

    Example:
        >>> gen = Generator(parse_design("nearest"), latent=8, width=8, blocks=1)
        >>> torch.equal(sample_images(gen, 3, seed=1), sample_images(gen, 3, seed=1))
        True
    """
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
    """Checkerboard metrics of one design's outputs at initialisation.

    Args:
        design: the design string (or a label).
        seed: the seed of the weights (the latents use ``seed + 1``).
        samples: the number of outputs measured.
        image_size: their height and width.
        metrics: their checkerboard metrics (period ``2**blocks``).
    """

    design: str
    seed: int
    samples: int
    image_size: int
    metrics: CheckerboardMetrics

    def to_dict(self) -> dict:
        """JSON-ready: the fields, with the metrics' own ``to_dict``."""
        return {"design": self.design, "seed": self.seed, "samples": self.samples,
                "image_size": self.image_size, "metrics": self.metrics.to_dict()}


def measure_generator(design: GeneratorDesign | str, samples: int = 64, seed: int = 0, blocks: int = 3,
                      width: int = 128, device: str = "cpu") -> tuple[GeneratorResult, torch.Tensor]:
    """Build a design at random initialisation, draw outputs and measure their checkerboards.

    The weights are fixed by ``seed`` (drawn as after ``torch.manual_seed(seed)``, inside
    :func:`gradviz.upsampling.dcgan.seeded_construction`, so the caller's random state is untouched);
    the latent vectors by ``seed + 1``.

    Args:
        design: a design or its string.
        samples: outputs to draw (>= 2: BatchNorm needs a batch).
        seed: the seed.
        blocks: upsampling blocks; the period of the metrics is ``2**blocks``.
        width: channels after the linear layer.
        device: where the generator runs.

    Returns:
        ``(result, images)``: the metrics, and the images (for a sample grid).

    Raises:
        GradvizError: a bad design, ``samples < 2``, or a width too small for the blocks.

    Shape:
        images ``(samples, 3, 4 * 2**blocks, 4 * 2**blocks)``.

    Example:
        >>> result, images = measure_generator("deconv3", samples=4, blocks=1, width=4)
        >>> result.design, result.image_size, result.metrics.stride, tuple(images.shape)
        ('deconv3', 8, 2, (4, 3, 8, 8))
    """
    if isinstance(design, str):
        design = parse_design(design)
    if samples < 2:
        raise GradvizError(f"samples must be >= 2 (BatchNorm needs a batch), got {samples}")
    with seeded_construction(seed):
        gen = Generator(design, width=width, blocks=blocks)
    gen = gen.to(device)
    images = sample_images(gen, samples, seed=seed + 1)
    acc = SpectrumAccumulator(gen.period)
    acc.add(images)
    return GeneratorResult(design.name, seed, samples, images.shape[-1], acc.metrics()), images


def measure_generators(designs: list[str], samples: int = 64, seed: int = 0, blocks: int = 3,
                       width: int = 128, progress: bool | None = None) -> list[tuple[GeneratorResult, torch.Tensor]]:
    """:func:`measure_generator` for each design, in order.

    All designs are parsed first, so a bad name fails before any work.

    Args:
        designs: design strings.
        samples, seed, blocks, width: as for :func:`measure_generator` (the same for every design).
        progress: show a progress bar (None: only on a terminal).

    Returns:
        ``[(result, images), ...]``, one per design.

    Example:
        >>> [r.design for r, _ in measure_generators(["nearest", "bilinear"], samples=2, blocks=1, width=2)]
        ['nearest', 'bilinear']
    """
    parsed = [parse_design(d) for d in designs]
    return [measure_generator(d, samples, seed, blocks, width) for d in tqdm(parsed, desc="generators",
                                                                             disable=None if progress is None else not progress)]
