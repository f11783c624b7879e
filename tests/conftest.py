import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from gradviz.core.models import load_model

os.environ.setdefault("MPLBACKEND", "Agg")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


def write_noise_photos(folder: Path, n: int, shape: tuple[int, int], prefix: str = "") -> Path:
    """``n`` seeded uniform-noise RGB PNGs of ``shape`` (H, W) in ``folder`` (created), named ``<prefix><i>.png``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    width = len(str(n - 1))
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (*shape, 3), dtype=np.uint8)).save(folder / f"{prefix}{i:0{width}d}.png")
    return folder


# Random-init models (seed 0, CPU), one per test module: the same weights every run, no download.
@pytest.fixture(scope="module")
def vgg11():
    return load_model("vgg11", "random", seed=0, device="cpu")


@pytest.fixture(scope="module")
def resnet18():
    return load_model("resnet18", "random", seed=0, device="cpu")


def strided_conv_input_grad(kernel: torch.Tensor, stride: int, upstream: torch.Tensor, size: int) -> torch.Tensor:
    """Input gradient of a circularly padded strided 2D convolution, for a given upstream gradient."""
    k = kernel.shape[-1]
    x = torch.zeros(upstream.shape[0], 1, size, size, dtype=torch.float64, requires_grad=True)
    # Circular padding on the right/bottom keeps every phase equivalent (no image border).
    y = F.conv2d(F.pad(x, (0, k - 1, 0, k - 1), mode="circular"), kernel.view(1, 1, k, k).double(), stride=stride)
    (g,) = torch.autograd.grad(y, x, upstream.double())
    return g


def default_signals() -> None:
    """``preexec_fn`` for a child that a test signals: SIGINT and SIGTERM as a terminal gives them. A suite
    started in the background (``nohup ... &``) runs with SIGINT ignored, which children would inherit."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
